r"""Tour helpers private to :mod:`geoattn.solvers`: distance matrices, tour lengths and input checks.

Kept independent of :mod:`geoattn.tasks` (which has its own tour utilities) so the two can be merged later.
"""

from __future__ import annotations

import torch

__all__ = ["check_instances", "distance_matrix", "tour_length", "tour_length_from_distances"]


def distance_matrix(coords: torch.Tensor) -> torch.Tensor:
    r"""Euclidean distances :math:`D_{b,ij} = \|x_{b,i} - x_{b,j}\|_2`, ``[B, n, D]`` -> ``[B, n, n]``.

    Computed from coordinate differences (not the Gram-matrix shortcut), so :math:`D_{ii} = 0` and
    :math:`D` is exactly symmetric. Memory: a ``[B, n, n, D]`` intermediate.
    """
    return (coords[:, :, None, :] - coords[:, None, :, :]).norm(dim=-1)


def tour_length_from_distances(distances: torch.Tensor, tours: torch.Tensor) -> torch.Tensor:
    r"""Closed-tour lengths :math:`\sum_i D_{t_i, t_{i+1 \bmod n}}`, ``[B, n, n]`` and ``[B, n]`` -> ``[B]``."""
    rows = torch.arange(tours.shape[0], device=tours.device)[:, None]
    return distances[rows, tours, tours.roll(-1, dims=1)].sum(dim=1)


def tour_length(coords: torch.Tensor, tours: torch.Tensor) -> torch.Tensor:
    r"""Closed-tour lengths :math:`\sum_i \|x_{t_{i+1 \bmod n}} - x_{t_i}\|_2`, ``[B, n, D]`` and ``[B, n]`` -> ``[B]``."""
    points = coords.gather(1, tours[..., None].expand(-1, -1, coords.shape[-1]))
    return (points.roll(-1, dims=1) - points).norm(dim=-1).sum(dim=1)


def check_instances(
    owner: str, coords: torch.Tensor | None, tours: torch.Tensor, distances: torch.Tensor | None
) -> None:
    """``ValueError`` unless ``tours`` ``[B, n]`` holds permutations and the inputs' shapes agree."""
    if tours.dim() != 2 or tours.dtype != torch.long:
        raise ValueError(
            f"{owner}: tours must be a long tensor of shape [B, n], got {tours.dtype} {tuple(tours.shape)}"
        )
    batch, n = tours.shape
    if coords is not None and (coords.dim() != 3 or coords.shape[:2] != (batch, n)):
        raise ValueError(
            f"{owner}: coords must have shape [{batch}, {n}, D] to match tours, got {tuple(coords.shape)}"
        )
    if distances is not None:
        if distances.shape != (batch, n, n):
            raise ValueError(
                f"{owner}: distances must have shape [{batch}, {n}, {n}] to match tours, got {tuple(distances.shape)}"
            )
        if not distances.dtype.is_floating_point:
            raise ValueError(f"{owner}: distances must be floating point, got {distances.dtype}")
    if coords is not None and not coords.dtype.is_floating_point:
        raise ValueError(f"{owner}: coords must be floating point, got {coords.dtype}")
    expected = torch.arange(n, device=tours.device).expand(batch, n)
    if not torch.equal(tours.sort(dim=1).values, expected):
        raise ValueError(f"{owner}: every row of tours must be a permutation of 0..{n - 1}")
