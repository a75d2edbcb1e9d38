"""LKH-3 tours through ``elkai`` (the optional ``baselines`` extra: ``pip install geoattn[baselines]``).

For training labels and reference lengths only, never inside a solver. LKH works on integer costs: an
integer matrix is passed as it is; a float matrix is scaled so its largest entry becomes
:data:`LKH_FLOAT_RESOLUTION` and rounded, which keeps LKH's internal ``100 * cost`` inside 32-bit integers and
makes each edge exact to about ``1e-7`` of the longest one. LKH's random seed is its default (1), so a tour
is a deterministic function of the matrix and ``runs``.
"""

from __future__ import annotations

import importlib.util
from typing import Final

import numpy as np
import numpy.typing as npt

from .tour import canonical_tour, check_tour

__all__ = ["LKH_FLOAT_RESOLUTION", "elkai_available", "lkh_tour", "require_elkai"]

#: A float matrix's largest entry after scaling to integers.
LKH_FLOAT_RESOLUTION: Final = 10_000_000
_LKH_MAX_COST: Final = 20_000_000  # LKH multiplies costs by PRECISION (100); 2e9 < 2^31


def elkai_available() -> bool:
    """Whether the optional ``elkai`` package (LKH-3) is importable."""
    return importlib.util.find_spec("elkai") is not None


def require_elkai() -> None:
    """Raise a ModuleNotFoundError with the install command when ``elkai`` is missing."""
    if not elkai_available():
        raise ModuleNotFoundError(
            "LKH-3 labels need the optional package elkai: pip install geoattn[baselines]", name="elkai"
        )


def lkh_tour(dist: npt.ArrayLike, *, runs: int = 10) -> npt.NDArray[np.int64]:
    """A (near-)optimal tour of a symmetric distance matrix by LKH-3, in canonical form.

    Args:
        dist: ``[n, n]`` symmetric non-negative distances, ``n >= 3``. Integer matrices (TSPLIB) are used
            exactly (entries up to 2e7); float matrices are scaled and rounded (see the module docstring).
        runs: LKH's ``RUNS`` (independent restarts; the best tour is kept).

    Returns:
        ``[n]`` int64 tour, canonical (:func:`~geoattn.tasks.tour.canonical_tour`), checked to be a
        permutation.

    Raises:
        ModuleNotFoundError: ``elkai`` is not installed (the message gives the install command).
        ValueError: a matrix that is not square, symmetric, finite and non-negative, or integer costs too
            large for LKH.
    """
    require_elkai()
    import elkai

    d = np.asarray(dist)
    if d.ndim != 2 or d.shape[0] != d.shape[1] or d.shape[0] < 3:
        raise ValueError(f"lkh_tour: dist must be a square [n, n] matrix with n >= 3, got shape {d.shape}")
    if not isinstance(runs, int) or runs < 1:
        raise ValueError(f"lkh_tour: runs must be a positive integer, got {runs!r}")
    if np.issubdtype(d.dtype, np.integer):
        costs = d.astype(np.int64)
    else:
        f = d.astype(np.float64)
        if not np.isfinite(f).all():
            raise ValueError("lkh_tour: dist must be finite")
        top = float(np.abs(f).max())
        costs = np.rint(f * (LKH_FLOAT_RESOLUTION / top if top > 0 else 1.0)).astype(np.int64)
    if not np.array_equal(costs, costs.T):
        raise ValueError("lkh_tour: dist must be symmetric")
    if costs.min() < 0 or costs.max() > _LKH_MAX_COST:
        raise ValueError(
            f"lkh_tour: integer costs must be in 0..{_LKH_MAX_COST} (LKH uses 32-bit costs), got "
            f"{int(costs.min())}..{int(costs.max())}; pass float distances to have them scaled"
        )
    np.fill_diagonal(costs, 0)
    closed = elkai.DistanceMatrix(costs.tolist()).solve_tsp(runs=runs)
    n = d.shape[0]
    tour = check_tour(np.asarray(closed[:-1], dtype=np.int64), n, name="LKH tour")
    return canonical_tour(tour)
