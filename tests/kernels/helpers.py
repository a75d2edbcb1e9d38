"""Shared instance helpers of the kernel tests (importable as ``kernels_helpers``, see ``tests/conftest.py``)."""

from __future__ import annotations

import torch


def city_points(
    batch: int,
    n: int,
    seed: int,
    *,
    kind: str = "uniform",
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
) -> torch.Tensor:
    """Seeded ``[B, n, 2]`` points in the unit square: uniform, with duplicates (about half the cities repeat
    another one), or collinear (on a line, equal steps on part of it); the same ``seed`` gives the same points."""
    g = torch.Generator().manual_seed(seed)
    coords = torch.rand(batch, n, 2, generator=g, dtype=torch.float64)
    if kind == "duplicates":
        coords = coords.gather(
            1, torch.randint(0, max(n // 2, 1), (batch, n, 1), generator=g).expand(-1, -1, 2)
        )
    elif kind == "collinear":
        along = torch.where(
            torch.rand(batch, n, 1, generator=g) < 0.5, coords[..., :1], torch.arange(n)[:, None] / n
        )
        coords = along * torch.tensor([0.5, 1.0], dtype=torch.float64)
    elif kind != "uniform":
        raise ValueError(f"city_points: kind must be 'uniform', 'duplicates' or 'collinear', got {kind!r}")
    return coords.to(dtype=dtype, device=device)
