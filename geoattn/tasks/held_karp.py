r"""Exact TSP by Held-Karp dynamic programming over subsets (Held & Karp 1962; Bellman 1962).

With city 0 as the fixed start and :math:`S \subseteq \{1, \dots, n-1\}`, :math:`C(S, j)` is the length of the
shortest path that starts at 0, visits exactly :math:`S` and ends at :math:`j \in S`:

.. math::
    C(\{j\}, j) = d_{0j}, \qquad C(S, j) = \min_{k \in S \setminus \{j\}} C(S \setminus \{j\}, k) + d_{kj},
    \qquad \mathrm{OPT} = \min_j C(\{1..n-1\}, j) + d_{j0}.

Subsets are bitmasks; one step computes every subset of one size at once (``[M, n-1, n-1]`` candidates), so
the Python loop runs ``n - 1`` times. Time :math:`O(2^n n^2)`, memory :math:`O(2^n n)`; labels use it for
``n <= 12`` (milliseconds) and it accepts up to :data:`HELD_KARP_MAX_CITIES`.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

from .tour import canonical_tour

__all__ = ["HELD_KARP_MAX_CITIES", "held_karp"]

#: Largest instance :func:`held_karp` accepts (about 10^7 table entries, well under a second).
HELD_KARP_MAX_CITIES: Final = 16


def held_karp(dist: npt.ArrayLike) -> tuple[npt.NDArray[np.int64], float]:
    """An optimal tour of a symmetric distance matrix, exactly.

    Args:
        dist: ``[n, n]`` symmetric finite distances, ``3 <= n <=`` :data:`HELD_KARP_MAX_CITIES` (the diagonal
            is ignored).

    Returns:
        ``(tour, length)``: an optimal tour in canonical form (:func:`~geoattn.tasks.tour.canonical_tour`:
        starts at 0, then the smaller neighbour) and its length (the float64 sum of the matrix entries
        along it). Ties between optimal tours are broken deterministically.

    Raises:
        ValueError: ``dist`` is not square, symmetric and finite, or ``n`` is out of range.
    """
    d = np.asarray(dist, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"held_karp: dist must be a square [n, n] matrix, got shape {d.shape}")
    n = d.shape[0]
    if not 3 <= n <= HELD_KARP_MAX_CITIES:
        raise ValueError(f"held_karp: n must be in 3..{HELD_KARP_MAX_CITIES}, got {n}")
    if not np.isfinite(d).all():
        raise ValueError("held_karp: dist must be finite")
    if not np.array_equal(d, d.T):
        raise ValueError("held_karp: dist must be symmetric (the tour's canonical direction assumes it)")

    m = n - 1  # cities 1..n-1 are bits 0..m-1
    inner = d[1:, 1:]  # inner[k, j]: from city k+1 to city j+1
    cost = np.full((1 << m, m), np.inf)
    parent = np.full((1 << m, m), -1, dtype=np.int64)
    bits = np.arange(m)
    cost[1 << bits, bits] = d[0, 1:]

    masks = np.arange(1 << m)
    popcount = np.zeros(1 << m, dtype=np.int64)
    for b in range(m):
        popcount += (masks >> b) & 1
    for size in range(2, m + 1):
        layer = masks[popcount == size]  # [M]
        prev = (
            layer[:, None] ^ (1 << bits)[None, :]
        )  # [M, m]: the subset without j (or with j, if j not in it)
        # cand[M, j, k] = C(S \ {j}, k) + d(k, j); entries with j not in S or k not in S \ {j} stay inf.
        cand = cost[prev] + inner.T[None, :, :]
        best = np.argmin(cand, axis=2)  # [M, m]
        value = np.take_along_axis(cand, best[:, :, None], axis=2)[:, :, 0]
        in_layer = ((layer[:, None] >> bits[None, :]) & 1).astype(bool)
        cost[layer] = np.where(in_layer, value, np.inf)
        parent[layer] = np.where(in_layer, best, -1)

    full = (1 << m) - 1
    closing = cost[full] + d[1:, 0]
    last = int(np.argmin(closing))
    length = float(closing[last])
    path = []
    mask, j = full, last
    while j >= 0:
        path.append(j + 1)
        mask, j = mask ^ (1 << j), int(parent[mask, j])
    tour = np.array([0, *reversed(path)], dtype=np.int64)
    return canonical_tour(tour), length
