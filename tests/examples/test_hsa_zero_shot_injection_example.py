"""``examples/hsa_zero_shot_injection.py --smoke`` injects HSA into all-MiniLM-L6-v2, so the example cannot rot."""

from __future__ import annotations

from collections.abc import Callable


def test_hsa_zero_shot_injection_example_smoke(run_example: Callable[..., str]) -> None:
    out = run_example("hsa_zero_shot_injection.py", "--smoke")
    flat = next(line for line in out.splitlines() if line.startswith("flat tree"))
    assert float(flat.split()[-1]) < 1e-4  # HSA on the flat tree is the original model
    rows = [
        line.split()
        for line in out.splitlines()
        if line.split()[:1] in (["b=2"], ["b=4"], ["text"]) and line.endswith("%")
    ]
    assert len(rows) == 9
    for row in rows:
        mean_cos, saved = float(row[-3]), float(row[-1].rstrip("%"))
        assert 0.5 < mean_cos <= 1.0 + 1e-6 and 0.0 < saved < 100.0
    assert "text tree of" in out and "[CLS]" in out
