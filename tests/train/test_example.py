"""``examples/train_tree_embedding.py --smoke`` runs, so the example cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "train_tree_embedding.py"


def test_example_smoke(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == ["hyperbolic", "euclidean", "signed"]
    assert float(rows[0][1]) < 0 and float(rows[1][1]) == 0  # k: learned negative, fixed flat
    for geometry in ("hyperbolic", "euclidean", "signed"):
        assert (tmp_path / geometry / "checkpoints" / "step_00000005.pt").is_file()
