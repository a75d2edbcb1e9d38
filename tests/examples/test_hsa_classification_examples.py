"""``examples/hsa_{imdb,sst,multimodal}.py --smoke``: each trains and scores every variant, writes its
results, and skips them when re-run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def _needs(folder: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not (DATA / folder).is_dir(), reason=f"data not found under {DATA}")


@pytest.mark.parametrize(
    ("script", "variants", "note", "rerun"),
    [
        pytest.param("hsa_imdb.py", ["hsa", "flat"], "", False, id="imdb", marks=_needs("imdb")),
        pytest.param("hsa_sst.py", ["hsa", "flat"], "", True, id="sst", marks=_needs("sst")),
        pytest.param(
            "hsa_multimodal.py",
            ["hsa", "flat", "text", "image"],
            "constructed",
            False,
            id="multimodal",
            marks=_needs("sst"),
        ),
    ],
)
def test_hsa_classification_example_smoke(
    tmp_path: Path,
    run_example: Callable[..., str],
    script: str,
    variants: list[str],
    note: str,
    rerun: bool,
) -> None:
    out = run_example(script, "--smoke", "--out", str(tmp_path))
    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [(r["variant"], r["seed"]) for r in rows] == [(v, 0) for v in variants]
    assert len({r["params"] for r in rows}) == 1  # every variant is the same model
    assert all(r["steps"] == r["max_steps"] == 4 and 0.0 <= r["test_accuracy"] <= 1.0 for r in rows)
    table = (tmp_path / "results.md").read_text()
    assert all(f"| {v} | 1 |" in table for v in variants) and table.splitlines()[0] in out
    assert note in out.lower()  # e.g. that the multimodal pairing is constructed
    if rerun:  # a second call finds every run done and only rewrites the table
        again = run_example(script, "--smoke", "--out", str(tmp_path))
        assert all(f"{v} seed 0: already in" in again for v in variants)
        assert len((tmp_path / "results.jsonl").read_text().splitlines()) == len(variants)
