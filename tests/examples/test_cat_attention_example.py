"""``examples/cat_attention.py --smoke`` runs and prints routing weights, so the example cannot rot."""

from __future__ import annotations

from collections.abc import Callable


def test_cat_attention_example_smoke(run_example: Callable[..., str]) -> None:
    out = run_example("cat_attention.py", "--smoke", "--seed", "1")
    assert "euclidean" in out and "hyperbolic" in out and "spherical" in out
    for line in ("layer 0 ", "layer 1 ", "conv1 tree nodes", "conv2 ring nodes"):
        routing = next(row for row in out.splitlines() if row.startswith(line) and "curvature" not in row)
        weights = [float(w) for w in routing.split()[-3:]]
        assert abs(sum(weights) - 1.0) < 2e-3, routing
