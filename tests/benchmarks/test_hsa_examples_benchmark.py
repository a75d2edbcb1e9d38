"""``benchmarks/hsa_examples.py --smoke``: runs the HSA-vs-flat comparisons and writes the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from benchmarks_helpers import load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "hsa_examples.py"
DATA = ROOT.parent / "shared" / "data"


@pytest.mark.skipif(not (DATA / "sst").is_dir(), reason=f"SST not found under {DATA}")
def test_benchmark_smoke_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = load_script(SCRIPT, "hsa_examples_benchmark")
    report = tmp_path / "report.md"
    threads = torch.get_num_threads()
    try:  # in-process (the smoke mode runs on one thread)
        script.main(
            [
                "--smoke",
                "--data-root",
                str(DATA),
                "--examples",
                "sst",
                "multimodal",
                "--variants",
                "hsa",
                "flat",
                "--out",
                str(tmp_path / "runs"),
                "--report",
                str(report),
            ]
        )
    finally:
        torch.set_num_threads(threads)
    text = report.read_text()
    assert text.startswith("## HSA examples") and "- git:" in text and "- command:" in text
    for name in ("sst", "multimodal"):
        rows = [
            json.loads(line) for line in (tmp_path / "runs" / name / "results.jsonl").read_text().splitlines()
        ]
        assert sorted(r["variant"] for r in rows) == ["flat", "hsa"]
        assert rows[0]["params"] == rows[1]["params"] and f"### hsa/{name}" in text
    assert text.count("HSA - flat:") == 2 and "constructed" in text.lower()
    assert "| hsa " in capsys.readouterr().out
