"""``examples/train_tsp_policy.py --smoke`` trains, exports, reloads and decodes a tiny policy, so it cannot rot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def test_train_tsp_policy_example_smoke(tmp_path: Path, run_example: Callable[..., str]) -> None:
    lines = run_example("train_tsp_policy.py", "--smoke", "--out", str(tmp_path)).splitlines()
    assert lines[0].startswith("trained 4 steps: ") and "aug_gap_n20=" in lines[0]
    assert (tmp_path / "weights" / "example.safetensors").is_file()
    rows = {line[:20].strip(): float(line[20:32]) for line in lines[3:]}
    assert set(rows) == {"greedy", "multi-start", "multi-start + x8"}
    # more candidates never give a longer best tour
    assert rows["multi-start + x8"] <= rows["multi-start"] <= rows["greedy"]
