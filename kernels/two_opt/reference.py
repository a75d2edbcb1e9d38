r"""The specification of :func:`geoattn.kernels.two_opt.two_opt_search`: best-improvement 2-opt in torch.

For a closed tour :math:`t` (a permutation of :math:`0 \dots n-1`) and symmetric distances :math:`D`, move
:math:`(i, j)`, :math:`0 \le i,\ i + 2 \le j \le n - 1`, :math:`(i, j) \ne (0, n-1)`, reverses
:math:`t_{i+1} \dots t_j`. With :math:`P_{ij} = D_{t_i t_j}` (the matrix in tour order) and the edge
lengths :math:`e_i = P_{i,\,i+1}` (indices mod :math:`n`) its change of length is, evaluated in exactly this
order (the kernel repeats it operation for operation, so both give bitwise the same values),

.. math::
    \Delta_{ij} = \big((P_{ij} + P_{i+1,\,j+1}) - e_i\big) - e_j.

One iteration picks per instance the smallest :math:`\Delta` (the first in row-major :math:`(i, j)` order
on ties) and applies it if :math:`\Delta < -\text{tol}_b`; the search stops when no instance improves or
after ``max_iterations`` iterations. The helpers here are also the building blocks of the batched torch
searches of :mod:`geoattn.solvers.local_search`.
"""

from __future__ import annotations

import itertools

import torch

__all__ = ["next_edges", "reverse_segments", "tour_ordered", "two_opt_deltas", "two_opt_search_reference"]


def tour_ordered(distances: torch.Tensor, tours: torch.Tensor) -> torch.Tensor:
    """``P[b, i, j] = D[b, t_i, t_j]``: ``[A, n, n]`` distances and ``[A, n]`` tours -> ``[A, n, n]``."""
    n = tours.shape[1]
    rows = distances.gather(1, tours[:, :, None].expand(-1, -1, n))
    return rows.gather(2, tours[:, None, :].expand(-1, n, -1))


def next_edges(p: torch.Tensor) -> torch.Tensor:
    """``e[b, i] = P[b, i, i + 1 mod n]``, the tour's edge lengths, ``[A, n, n]`` -> ``[A, n]``."""
    n = p.shape[1]
    nxt = torch.arange(n, device=p.device).roll(-1)
    return p.gather(2, nxt.expand(p.shape[0], n)[:, :, None])[:, :, 0]


def two_opt_deltas(p: torch.Tensor) -> torch.Tensor:
    r""":math:`\Delta_{ij}` of every move (module docstring), ``inf`` where :math:`(i, j)` is no move:
    ``[A, n, n]`` tour-ordered distances -> ``[A, n, n]``."""
    n = p.shape[1]
    e = next_edges(p)
    delta = ((p + p.roll((-1, -1), dims=(1, 2))) - e[:, :, None]) - e[:, None, :]
    pos = torch.arange(n, device=p.device)
    i, j = pos[:, None], pos[None, :]
    valid = (j >= i + 2) & ~((i == 0) & (j == n - 1))  # the two removed edges must not touch
    return delta.masked_fill(~valid, torch.inf)


def reverse_segments(
    tours: torch.Tensor, i: torch.Tensor, j: torch.Tensor, apply: torch.Tensor
) -> torch.Tensor:
    """Tours ``[A, n]`` with ``t_{i+1} .. t_j`` reversed in the rows where ``apply`` ``[A]`` holds (``i``,
    ``j`` ``[A]`` long, ``i < j``); a new tensor."""
    pos = torch.arange(tours.shape[1], device=tours.device)
    i, j = i[:, None], j[:, None]
    reverse = (pos > i) & (pos <= j) & apply[:, None]
    return tours.gather(1, torch.where(reverse, i + 1 + j - pos, pos))


def two_opt_search_reference(
    distances: torch.Tensor, tours: torch.Tensor, tol: torch.Tensor, *, max_iterations: int | None = None
) -> torch.Tensor:
    """Best-improvement 2-opt (module docstring) on every instance until none improves; a new tensor.

    Args:
        distances: ``[B, n, n]`` symmetric distances.
        tours: ``[B, n]`` long permutations.
        tol: ``[B]`` absolute thresholds (``>= 0``) in the dtype of ``distances``.
        max_iterations: the most moves per instance; ``None``: no limit.

    Returns:
        ``[B, n]`` long, the improved tours.
    """
    n = tours.shape[1]
    current = tours.clone()
    if n < 4 or current.numel() == 0:  # a tour of fewer than 4 cities has no 2-opt move
        return current
    steps = itertools.count() if max_iterations is None else range(max_iterations)
    for _ in steps:
        best, index = two_opt_deltas(tour_ordered(distances, current)).flatten(1).min(dim=1)
        improved = best < -tol
        if not bool(improved.any()):
            break
        current = reverse_segments(current, index // n, index % n, improved)
    return current
