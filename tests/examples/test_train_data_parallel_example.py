"""``examples/train_data_parallel.py --smoke``: TSP and KG training on 2 gloo processes, each resumed on 1."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "kg"


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "FB15k-237").is_dir(), reason=f"FB15k-237 not found under {DATA}")
def test_data_parallel_example_smoke(run_example: Callable[..., str], tmp_path: Path) -> None:
    out = run_example("train_data_parallel.py", "--smoke", "--out", str(tmp_path), timeout=400)
    tsp = re.findall(r"tsp: (\d+) steps on (\d+) process", out)
    kg = re.findall(r"kg: (\d+) epochs on (\d+) process\(es\), last loss \S+, test MRR (\S+),", out)
    assert tsp == [("3", "2"), ("4", "1")]  # 3 steps on 2 processes, then one more on 1 from their checkpoint
    assert [(e, p) for e, p, _ in kg] == [("2", "2"), ("3", "1")]
    assert all(0.0 < float(mrr) <= 1.0 for _, _, mrr in kg)
    assert out.count("$ torchrun --standalone --nproc-per-node=2 -m geoattn.train") == 2
