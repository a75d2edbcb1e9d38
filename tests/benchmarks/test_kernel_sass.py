"""``benchmarks/kernel_sass.py``: instruction counts of the manifold-attention kernels, compiled offline."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import triton
from benchmarks_helpers import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "kernel_sass.py"
kernel_sass = load_script(SCRIPT, "kernel_sass")


def test_replication_is_read_from_the_exp2_count_per_owned_score() -> None:
    config = triton.Config({"BLOCK_N": 64, "BLOCK_M": 32}, num_warps=8, num_stages=2)  # 8 scores per thread
    for exp2, expected in ((8, "1x"), (16, "2x")):
        loop = kernel_sass.Loop(400, Counter({"FFMA": 300, "MUFU": exp2}), Counter({"EX2": exp2}))
        (row,) = kernel_sass.rows("dq", config, [loop], all_loops=False)
        assert row[:2] == ["backward dQ", "64x32, 8 warps, 2 st."] and row[5:8] == ["8", expected, "50.0"]


@pytest.mark.skipif(not kernel_sass.NVDISASM.is_file(), reason="this Triton wheel ships no nvdisasm")
def test_the_forward_spends_three_mufu_operations_per_score(
    run_script: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the k < -0.5 arm: sqrt and lg2 for the distance, exp2 for the softmax (and a few exp2 per row to rescale)
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # machine code needs compiled kernels (the suite interprets)
    out = run_script("benchmarks/kernel_sass.py", "--smoke", timeout=300)
    (row,) = [line for line in out.splitlines() if line.startswith("| forward")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "128x64, 8 warps, 2 st." and cells[3] == "EX2 1.1 LG2 1 SQRT 1" and cells[6] == "1x"
    instructions, per_thread = int(cells[4]), int(cells[5])
    assert per_thread == 32 and cells[7] == f"{instructions / per_thread:.1f}"  # the report's one decimal
    assert re.search(r"sm_90, bfloat16, D = 64", out)


def test_the_interpreter_is_refused_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(SystemExit, match=r"TRITON_INTERPRET='1' runs Triton's interpreter"):
        kernel_sass.main(["--smoke"])
