"""``benchmarks/node_classification.py --smoke``: runs, writes every run to runs.jsonl, resumes, writes the report;
``--cat-variants`` does the same for CAT's variants at the selected setting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "node_classification.py"
DATA = Path(os.environ.get("GEOATTN_DATA") or ROOT.parent / "shared" / "data" / "graphs")


def _run(out: Path, *extra: str, ok: bool = True) -> str:
    # One thread: with torch's default, a busy machine can make each run ~50x slower.
    args = ["--smoke", "--datasets", "disease", "--seeds", "0", "--epochs", "2", "--threads", "1", *extra]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--data-root", str(DATA), "--out-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode == 0) == ok, result.stderr
    return result.stdout if ok else result.stderr


def test_benchmark_smoke_resumes_and_reports(tmp_path: Path) -> None:
    if not (DATA / "disease_nc").is_dir():
        pytest.skip(f"Disease not found under {DATA} (set GEOATTN_DATA)")
    assert "run the main benchmark there first" in _run(tmp_path, "--cat-variants", ok=False)
    out = _run(tmp_path, "--models", "cat,gat")
    runs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 4  # 2 models x 2 grid points x 1 seed
    assert {(r["model"], r["dropout"]) for r in runs} == {
        ("cat", 0.0),
        ("cat", 0.5),
        ("gat", 0.0),
        ("gat", 0.5),
    }
    assert all(r["epochs_run"] <= 2 and 0.0 <= r["test_accuracy"] <= 1.0 for r in runs)
    cat = [r for r in runs if r["model"] == "cat"]
    assert all(set(r["routing"]["depth"]) == {"0", "1", "2", "3", "4", "5"} for r in cat)
    assert cat[0]["routing"]["depth"]["5"]["nodes"] == 783  # the leaves
    report = (tmp_path / "node_classification.md").read_text()
    for text in (
        "### Test accuracy (%)",
        "| CAT ",
        "| GATConv ",
        "torch_geometric",
        "- git:",
        "- command:",
        "Where CAT's router sends Disease nodes",
        "HGCN 74.5",
    ):
        assert text in report, text
    assert "[   4/4]" in out
    again = _run(tmp_path, "--models", "cat,gat")  # a restart skips every finished run
    assert "4 runs (4 already in" in again and "[   1/4]" not in again
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 4
    _check_cat_variants(tmp_path, [r for r in runs if r["model"] == "cat"])


def _check_cat_variants(tmp_path: Path, cat: list[dict[str, Any]]) -> None:
    """``--cat-variants`` after the main smoke run: 5 variants at CAT's selected setting, resumed."""
    out = _run(tmp_path, "--cat-variants")
    runs = [json.loads(line) for line in (tmp_path / "ablation.jsonl").read_text().splitlines()]
    variants = {
        tuple(r["variant"][k] for k in ("score", "aggregation", "shared_projections")): r for r in runs
    }
    assert len(runs) == 5 and set(variants) == {
        ("distance", "midpoint", True),
        ("distance", "tangent", True),
        ("tangent_dot", "midpoint", True),
        ("tangent_dot", "tangent", True),
        ("distance", "midpoint", False),
    }
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 4  # the main runs are untouched
    best = max(cat, key=lambda r: (r["val_accuracy"], r["val_macro_f1"], -r["val_loss"]))
    assert {(r["model"], r["lr"], r["weight_decay"], r["dropout"]) for r in runs} == {
        ("cat", best["lr"], best["weight_decay"], best["dropout"])
    }
    separate, shared = variants[("distance", "midpoint", False)], variants[("distance", "midpoint", True)]
    assert separate["params"] > shared["params"]
    report = (tmp_path / "node_classification_ablation.md").read_text()
    for text in (
        "### Test accuracy (%)",
        "### Test macro-F1 (%)",
        "| distance + midpoint (default) ",
        "| tangent_dot + tangent ",
        "| distance + midpoint, projections per branch ",
        "### Selected hyper-parameters (from runs.jsonl)",
        f"| disease | {best['lr']:g} ",
        "- git:",
        "- command:",
        "- machine:",
        "Default variant against the main benchmark's runs",
    ):
        assert text in report, text
    assert "[   5/5]" in out
    again = _run(tmp_path, "--cat-variants")
    assert "5 runs (5 already in" in again and "[   1/5]" not in again
    assert len((tmp_path / "ablation.jsonl").read_text().splitlines()) == 5
