"""``examples/kg_pipeline.py --smoke`` trains CAT and RotH (on the ball) through PyKEEN and prints their metrics."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "kg"


def test_kg_pipeline_example_smoke(run_example: Callable[..., str]) -> None:
    if not (DATA / "FB15k-237").is_dir():
        pytest.skip(f"FB15k-237 not found under {DATA}")
    out = run_example("kg_pipeline.py", "--smoke", "--data-root", str(DATA), timeout=300)
    rows = [line for line in out.splitlines() if "filtered MRR" in line]
    assert [row.split(" loss")[0].strip() for row in rows] == ["CAT", "RotH (on the ball, RiemannianAdam)"]
    for row in rows:
        mrr = float(re.search(r"filtered MRR (\S+)", row).group(1))  # type: ignore[union-attr]
        assert 0.0 < mrr <= 1.0
