"""``examples/kg_fast_training.py --smoke`` trains through ``pipeline(training_loop="fastlcwa")``, so it cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "kg_fast_training.py"
DATA = ROOT.parent / "shared" / "data" / "kg"


def test_kg_fast_training_example_smoke() -> None:
    if not (DATA / "WN18RR" / "train.txt").is_file():
        pytest.skip(f"WN18RR not found under {DATA}")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--data-root", str(DATA)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("wn18rr: ") and "training triples" in lines[0]
    losses = [float(line.split()[-1]) for line in lines if line.startswith("epoch ")]
    assert len(losses) == 2 and losses[1] < losses[0]
    mrr = float(next(line for line in lines if line.startswith("test ")).split()[2])
    assert 0.0 < mrr <= 1.0
