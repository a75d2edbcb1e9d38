"""``examples/train_tree_embedding.py --smoke`` runs, so the example cannot rot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def test_example_smoke(tmp_path: Path, run_example: Callable[..., str]) -> None:
    out = run_example("train_tree_embedding.py", "--smoke", "--out", str(tmp_path), timeout=120)
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [row[0] for row in rows] == ["hyperbolic", "euclidean", "signed"]
    assert float(rows[0][1]) < 0 and float(rows[1][1]) == 0  # k: learned negative, fixed flat
    for geometry in ("hyperbolic", "euclidean", "signed"):
        assert (tmp_path / geometry / "checkpoints" / "step_00000005.pt").is_file()
