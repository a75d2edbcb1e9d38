"""``examples/kg_pipeline.py --smoke`` trains CAT and RotH (on the ball) through PyKEEN and prints their metrics."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "kg_pipeline.py"
DATA = ROOT.parent / "shared" / "data" / "kg"


def test_kg_pipeline_example_smoke() -> None:
    if not (DATA / "FB15k-237").is_dir():
        pytest.skip(f"FB15k-237 not found under {DATA}")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--data-root", str(DATA)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "filtered MRR" in line]
    assert [row.split(" loss")[0].strip() for row in rows] == ["CAT", "RotH (on the ball, RiemannianAdam)"]
    for row in rows:
        mrr = float(re.search(r"filtered MRR (\S+)", row).group(1))  # type: ignore[union-attr]
        assert 0.0 < mrr <= 1.0
