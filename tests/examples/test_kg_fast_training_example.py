"""``examples/kg_fast_training.py --smoke`` trains through ``pipeline(training_loop="fastlcwa")``, so it cannot rot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "kg"


def test_kg_fast_training_example_smoke(run_example: Callable[..., str]) -> None:
    if not (DATA / "WN18RR" / "train.txt").is_file():
        pytest.skip(f"WN18RR not found under {DATA}")
    lines = run_example("kg_fast_training.py", "--smoke", "--data-root", str(DATA)).splitlines()
    assert lines[0].startswith("wn18rr: ") and "training triples" in lines[0]
    losses = [float(line.split()[-1]) for line in lines if line.startswith("epoch ")]
    assert len(losses) == 2 and losses[1] < losses[0]
    mrr = float(next(line for line in lines if line.startswith("test ")).split()[2])
    assert 0.0 < mrr <= 1.0
