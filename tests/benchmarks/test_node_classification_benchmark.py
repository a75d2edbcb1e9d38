"""``benchmarks/node_classification.py --smoke``: runs, writes every run to runs.jsonl, resumes, writes the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "node_classification.py"
DATA = Path(os.environ.get("GEOATTN_DATA") or ROOT.parent / "shared" / "data" / "graphs")


def _run(out: Path) -> str:
    args = ["--smoke", "--datasets", "disease", "--models", "cat,gat", "--seeds", "0", "--epochs", "2"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--data-root", str(DATA), "--out-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_benchmark_smoke_resumes_and_reports(tmp_path: Path) -> None:
    if not (DATA / "disease_nc").is_dir():
        pytest.skip(f"Disease not found under {DATA} (set GEOATTN_DATA)")
    out = _run(tmp_path)
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
    again = _run(tmp_path)  # a restart skips every finished run
    assert "4 runs (4 already in" in again and "[   1/4]" not in again
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 4
