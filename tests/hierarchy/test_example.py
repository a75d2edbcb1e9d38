"""``examples/hierarchical_attention.py --smoke`` runs and reports what it demonstrates, so it cannot rot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks_helpers import BENCHMARKS, load_script

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "hierarchical_attention.py"


def _number(pattern: str, text: str) -> float:
    match = re.search(pattern, text)
    assert match is not None, f"{pattern!r} not in output:\n{text}"
    return float(match.group(1))


def test_example_smoke() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert _number(r"rows of the HSA matrix sum to 1: max error (\S+)", out) < 1e-5
    assert _number(r"DP == dense closed form: max error (\S+)", out) < 1e-4
    # HSA is closer to softmax than both baselines on this toy document
    hsa = _number(r"HSA \(this hierarchy\)\s+(\S+)", out)
    assert hsa < _number(r"softmax within the sentence only\s+(\S+)", out)
    assert hsa < _number(r"uniform attention \(mean value\)\s+(\S+)", out)
    assert _number(r"attention logits: flat 16384, hierarchical \d+ \(saved (\S+)%\)", out) > 90
    first, last = (float(v) for v in re.search(r"loss (\S+) -> (\S+) in 3 steps", out).groups())  # type: ignore[union-attr]
    assert last < first


def test_benchmark_smoke(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """benchmarks/hsa.py --smoke runs all three methods, prints its tables and writes its report."""
    bench = load_script(BENCHMARKS / "hsa.py", "bench_hsa")
    out = tmp_path / "hsa.md"
    argv = [
        "--smoke",
        "--sizes",
        "16,64",
        "--depths",
        "2,3",
        "--heads",
        "2",
        "--head-dim",
        "8",
        "--rep",
        "1",
        "--out",
        str(out),
    ]
    monkeypatch.setattr(sys, "argv", ["hsa.py", *argv])  # the report records the command from sys.argv
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    assert _number(r"check: flat-tree HSA vs SDPA at N=16, float32: max \|diff\| = (\S+)", printed) < 1e-5
    report = out.read_text()
    assert re.search(r"\| 64\s+\| 3\s+\| 4x4x4\s+\| fwd\+bwd \| \d+\.\d\d", report)
    assert re.search(r"\| hsa\s+\| fwd\s+\| 2\s+\| 16\.\.64\s+\| -?\d+\.\d\d", report)
    for field in ("- device:", "- torch:", "- git:", "- seed: 0", "- command: `", "--smoke"):
        assert field in report
