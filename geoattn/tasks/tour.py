"""Tours: feasibility checks, the canonical form of a label, and Euclidean distance matrices.

A tour of ``n`` cities is a permutation of ``0..n-1``, the order in which the cities are visited; the edge
back from the last city to the first is implied (the start is *not* repeated at the end). Every decoded
solution goes through :func:`check_tour` / :func:`check_tours` before its cost is trusted.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

__all__ = ["canonical_tour", "check_tour", "check_tours", "euclidean_distance_matrix"]


def _as_numpy(x: torch.Tensor | npt.ArrayLike) -> npt.NDArray[np.generic]:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def check_tour(tour: torch.Tensor | npt.ArrayLike, n: int, *, name: str = "tour") -> npt.NDArray[np.int64]:
    """Check that ``tour`` is a permutation of ``0..n-1`` and return it as an int64 ``[n]`` array.

    Args:
        tour: ``[n]`` integer city indices (a sequence, array or tensor).
        n: number of cities.
        name: what the tour is, used in messages (``"tours[3]"``).

    Raises:
        ValueError: naming the problem: not 1-d, wrong length (e.g. the start repeated at the end), not
            integers, indices outside ``0..n-1``, or cities visited twice and cities never visited.
    """
    t = _as_numpy(tour)
    if t.ndim != 1:
        raise ValueError(f"{name}: must be a 1-d sequence of city indices, got shape {t.shape}")
    if t.shape[0] != n:
        hint = " (the start city is not repeated at the end)" if t.shape[0] == n + 1 else ""
        raise ValueError(
            f"{name}: has {t.shape[0]} entries for {n} cities; a tour lists every city exactly once{hint}"
        )
    if not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"{name}: city indices must be integers, got dtype {t.dtype}")
    idx: npt.NDArray[np.int64] = t.astype(np.int64)
    outside = idx[(idx < 0) | (idx >= n)]
    if outside.size:
        raise ValueError(
            f"{name}: city indices must be in 0..{n - 1}; found {sorted(set(outside.tolist()))[:10]}"
        )
    counts = np.bincount(idx, minlength=n)
    if (counts != 1).any():
        twice = np.flatnonzero(counts > 1).tolist()
        never = np.flatnonzero(counts == 0).tolist()
        raise ValueError(
            f"{name}: not a permutation of 0..{n - 1}: visits {twice[:10]} more than once and never visits "
            f"{never[:10]}"
        )
    return idx


def check_tours(tours: torch.Tensor | npt.ArrayLike, n: int, *, name: str = "tours") -> None:
    """Check every row of a ``[B, n]`` batch of tours (vectorised; a failure names the first bad row).

    Raises:
        ValueError: the batch is not ``[B, n]`` integers, or a row fails :func:`check_tour` (the message
            starts with ``tours[b]``).
    """
    t = tours if isinstance(tours, torch.Tensor) else torch.as_tensor(np.asarray(tours))
    if t.dim() != 2 or t.shape[1] != n:
        raise ValueError(f"{name}: must have shape [B, {n}], got {tuple(t.shape)}")
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise ValueError(f"{name}: city indices must be integers, got dtype {t.dtype}")
    expected = torch.arange(n, device=t.device, dtype=t.dtype)
    ok = (torch.sort(t, dim=1).values == expected).all(dim=1)
    if not bool(ok.all()):
        b = int(torch.nonzero(~ok)[0, 0])
        check_tour(t[b], n, name=f"{name}[{b}]")


def canonical_tour(tour: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The canonical form of a closed tour: start at city 0, then go towards the smaller of its neighbours.

    A closed tour has ``2n`` equivalent forms (start city and direction); labels use this one, so equal
    tours give equal labels. ``tour`` must already be a permutation.
    """
    t = np.asarray(tour, dtype=np.int64)
    t = np.roll(t, -int(np.flatnonzero(t == 0)[0]))
    if t.shape[0] > 2 and t[1] > t[-1]:
        t = np.concatenate([t[:1], t[:0:-1]])
    return t


def euclidean_distance_matrix(coords: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """``[n, n]`` float64 Euclidean distances of ``[n, 2]`` points (exactly symmetric, zero diagonal)."""
    c = np.asarray(coords, dtype=np.float64)
    diff = c[:, None, :] - c[None, :, :]
    return np.sqrt((diff * diff).sum(axis=-1))
