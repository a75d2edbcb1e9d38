"""``benchmarks/hsa_injection.py --smoke``: SST-2 slice, MiniLM with HSA injected, probes, FLOPs; a rerun resumes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "sst"


def test_hsa_injection_benchmark_smoke(tmp_path: Path, run_script: Callable[..., str]) -> None:
    if not (DATA / "test.txt").is_file():
        pytest.skip(f"SST not found under {DATA}")
    out = tmp_path / "hsa_injection.md"
    args = ["--smoke", "--data-root", str(DATA), "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    stdout = run_script("benchmarks/hsa_injection.py", *args, timeout=300)
    assert "layer-cache check max |diff|" in stdout

    def computed(text: str) -> int:  # progress lines of configurations computed in this run
        return sum(line.startswith(("b=2 ", "text ")) for line in text.splitlines())

    assert computed(stdout) == 3
    report = out.read_text()
    rows = [
        line.split("|")[1:-1] for line in report.splitlines() if line.startswith("| ") and "---" not in line
    ]
    header, *body = rows
    assert [h.strip() for h in header][:3] == ["tree", "replaced layers", "cos to original"]
    assert [(r[0].strip(), r[1].strip()) for r in body] == [
        ("none", "none"),
        ("b=2", "5"),
        ("b=2", "all (0-5)"),
        ("text", "last 2 (4-5)"),
    ]
    for row in body[1:]:
        cos, saved = float(row[2]), float(row[6].strip().rstrip("%"))
        assert 0.5 < cos < 1.0 and 0.0 < saved < 100.0
    assert "Goal (issue 8)" in report and "- git:" in report
    # a rerun takes every row from the cache
    again = run_script("benchmarks/hsa_injection.py", *args, timeout=300)
    assert computed(again) == 0 and out.read_text().split("- command:")[1] == report.split("- command:")[1]
