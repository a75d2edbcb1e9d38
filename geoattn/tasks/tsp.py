"""The Euclidean TSP on points: batched tour lengths (torch) and exact or LKH labels.

Labels follow Pointer Networks (Vinyals et al., NeurIPS 2015): an optimal tour starting at the first city;
ours are canonical (:func:`~geoattn.tasks.tour.canonical_tour`: start at city 0, then its smaller
neighbour). ``solver="auto"`` uses exact Held-Karp for ``n <=`` :data:`TSP_EXACT_MAX_CITIES` and LKH-3
(``elkai``, the ``baselines`` extra) above.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import torch

from .held_karp import held_karp
from .lkh import lkh_tour, require_elkai
from .tour import check_tours, euclidean_distance_matrix

__all__ = [
    "TSP_EXACT_MAX_CITIES",
    "TspSolver",
    "resolve_tsp_solver",
    "tour_length",
    "tsp_label",
    "tsp_labels",
]

#: Largest ``n`` that ``solver="auto"`` labels exactly (Held-Karp); LKH-3 above.
TSP_EXACT_MAX_CITIES: Final = 12

TspSolver = Literal["auto", "held_karp", "lkh"]


def tour_length(points: torch.Tensor, tours: torch.Tensor, *, check: bool = True) -> torch.Tensor:
    r"""Euclidean lengths of closed tours, :math:`\sum_i \lVert x_{t_{i+1}} - x_{t_i} \rVert` (indices mod ``n``).

    Differentiable in ``points``; follows their device and dtype.

    Args:
        points: ``[B, n, 2]`` (or ``[n, 2]``) coordinates.
        tours: ``[B, n]`` (or ``[n]``) integer tours, each a permutation of ``0..n-1``.
        check: verify that every tour is a permutation first (:func:`~geoattn.tasks.tour.check_tours`).

    Returns:
        ``[B]`` lengths (a scalar for unbatched input).
    """
    unbatched = points.dim() == 2
    p = points.unsqueeze(0) if unbatched else points
    t = tours.unsqueeze(0) if unbatched else tours
    if p.dim() != 3 or p.shape[2] != 2 or t.shape[0] != p.shape[0]:
        raise ValueError(
            f"tour_length: points must be [B, n, 2] and tours [B, n], got {tuple(points.shape)} and "
            f"{tuple(tours.shape)}"
        )
    if check:
        check_tours(t, p.shape[1])
    ordered = torch.gather(p, 1, t.long().to(p.device).unsqueeze(-1).expand(-1, -1, 2))  # [B, n, 2]
    lengths = torch.linalg.vector_norm(ordered - ordered.roll(-1, dims=1), dim=-1).sum(dim=1)  # [B]
    return lengths[0] if unbatched else lengths


def resolve_tsp_solver(solver: str, n: int) -> Literal["held_karp", "lkh"]:
    """The solver ``"auto"`` means for ``n`` cities, or ``solver`` itself after checking it."""
    if solver == "auto":
        return "held_karp" if n <= TSP_EXACT_MAX_CITIES else "lkh"
    if solver == "held_karp":
        return "held_karp"
    if solver == "lkh":
        return "lkh"
    raise ValueError(f"tsp solver must be 'auto', 'held_karp' or 'lkh', got {solver!r}")


def tsp_label(
    points: npt.ArrayLike, *, solver: TspSolver = "auto", lkh_runs: int = 10
) -> npt.NDArray[np.int64]:
    """An optimal (Held-Karp) or LKH-3 tour of ``[n, 2]`` points, canonical, as int64 ``[n]``."""
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < 3:
        raise ValueError(f"tsp_label: points must have shape [n, 2] with n >= 3, got {p.shape}")
    dist = euclidean_distance_matrix(p)
    if resolve_tsp_solver(solver, p.shape[0]) == "held_karp":
        return held_karp(dist)[0]
    return lkh_tour(dist, runs=lkh_runs)


def tsp_labels(
    points: torch.Tensor | npt.ArrayLike, *, solver: TspSolver = "auto", lkh_runs: int = 10
) -> torch.Tensor:
    """:func:`tsp_label` of every instance of a ``[B, n, 2]`` batch (sequentially): int64 ``[B, n]``.

    For many instances, :func:`geoattn.tasks.labelled_dataset` computes labels in parallel and caches them.
    """
    p = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    if p.ndim != 3 or p.shape[2] != 2:
        raise ValueError(f"tsp_labels: points must have shape [B, n, 2], got {p.shape}")
    if resolve_tsp_solver(solver, p.shape[1]) == "lkh":
        require_elkai()
    labels = [tsp_label(x, solver=solver, lkh_runs=lkh_runs) for x in p]
    return torch.from_numpy(np.stack(labels)) if labels else torch.empty(0, p.shape[1], dtype=torch.int64)
