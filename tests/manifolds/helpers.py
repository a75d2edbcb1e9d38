"""Shared sampling helpers for the manifold tests: random points at a chosen fraction of the ball radius."""

from __future__ import annotations

import math

import torch

# Curvatures every property is checked at: hyperbolic, tiny of both signs, exactly zero, spherical.
CURVATURES = [-1.5, -1e-7, 0.0, 1e-7, 0.8]
DTYPES = [torch.float32, torch.float64]
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}


def random_points(
    shape: tuple[int, ...], k: float, dtype: torch.dtype, *, generator: torch.Generator, radius: float = 0.7
) -> torch.Tensor:
    """Points with random directions and norms up to ``radius`` of the ball radius (k < 0) or of ``1/sqrt(k)``.

    For ``k = 0`` (and tiny ``|k|``) norms are up to ``radius`` itself.
    """
    direction = torch.randn(shape, generator=generator, dtype=torch.float64)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    fraction = torch.rand((*shape[:-1], 1), generator=generator, dtype=torch.float64) * radius
    scale = 1.0 / math.sqrt(abs(k)) if abs(k) > 1e-3 else 1.0
    return (direction * fraction * scale).to(dtype)
