r"""TSPLIB distance functions, exactly as TSPLIB95 defines them (Reinelt, *TSPLIB 95*, 1995).

Every distance is an integer, computed in double precision in the same order as the reference C code, so
lengths agree with the published optima to the unit:

- ``EUC_2D``: :math:`d = \operatorname{nint}(\sqrt{\Delta x^2 + \Delta y^2})` with
  :math:`\operatorname{nint}(x) = \lfloor x + 0.5 \rfloor` (C's ``(int)(x + 0.5)`` for :math:`x \ge 0`).
- ``CEIL_2D``: :math:`d = \lceil \sqrt{\Delta x^2 + \Delta y^2} \rceil`.
- ``ATT`` (pseudo-Euclidean): :math:`r = \sqrt{(\Delta x^2 + \Delta y^2) / 10}`, :math:`t = \operatorname{nint}(r)`,
  :math:`d = t + 1` if :math:`t < r` else :math:`t`.
- ``GEO``: coordinates are ``DDD.MM`` (degrees and minutes; ``x`` latitude, ``y`` longitude). The degrees are
  **truncated** (C's ``(int) x``, towards zero; rounding them, as the DOC's text literally says, gives wrong
  lengths, e.g. 55489 instead of 55209 on gr96),
  :math:`\mathrm{rad} = \pi' (\mathrm{deg} + 5\,\mathrm{min} / 3) / 180` with :math:`\pi' = 3.141592`, and
  :math:`d = \lfloor R \arccos(\tfrac12((1 + q_1) q_2 - (1 - q_1) q_3)) + 1 \rfloor`, :math:`R = 6378.388`,
  :math:`q_1 = \cos(\mathrm{lon}_i - \mathrm{lon}_j)`, :math:`q_2 = \cos(\mathrm{lat}_i - \mathrm{lat}_j)`,
  :math:`q_3 = \cos(\mathrm{lat}_i + \mathrm{lat}_j)`. The ``+ 1`` makes the GEO distance between two distinct
  cities at the same place 1, as in TSPLIB; :func:`tsplib_distance_matrix` puts 0 on the diagonal. The
  ``arccos`` argument is clipped to ``[-1, 1]`` (rounding can push it just past 1 for coincident cities).

Inputs are validated coordinates (see :mod:`geoattn.tasks.coordinates`); these functions only check the
edge-weight type and shapes.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "SUPPORTED_EDGE_WEIGHT_TYPES",
    "EdgeWeightType",
    "check_edge_weight_type",
    "tsplib_distance",
    "tsplib_distance_matrix",
    "tsplib_tour_length",
]

EdgeWeightType = Literal["ATT", "CEIL_2D", "EUC_2D", "GEO"]

#: The TSPLIB ``EDGE_WEIGHT_TYPE`` values geoattn implements, in alphabetical order.
SUPPORTED_EDGE_WEIGHT_TYPES: Final[tuple[EdgeWeightType, ...]] = ("ATT", "CEIL_2D", "EUC_2D", "GEO")

_GEO_PI: Final = 3.141592
_GEO_RADIUS: Final = 6378.388


def check_edge_weight_type(edge_weight_type: str) -> EdgeWeightType:
    """``edge_weight_type`` as an :data:`EdgeWeightType`, or a ValueError naming the supported ones."""
    if edge_weight_type not in SUPPORTED_EDGE_WEIGHT_TYPES:
        raise ValueError(
            f"unsupported EDGE_WEIGHT_TYPE {edge_weight_type!r}; supported: "
            f"{', '.join(SUPPORTED_EDGE_WEIGHT_TYPES)}"
        )
    return edge_weight_type


def _geo_radians(degrees_minutes: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """TSPLIB's ``DDD.MM`` to radians: truncated degrees plus minutes, with TSPLIB's ``PI = 3.141592``."""
    deg = np.trunc(degrees_minutes)
    minutes = degrees_minutes - deg
    # Same evaluation order as TSPLIB's C: PI * (deg + 5.0 * min / 3.0) / 180.0.
    return _GEO_PI * (deg + 5.0 * minutes / 3.0) / 180.0


def tsplib_distance(a: npt.ArrayLike, b: npt.ArrayLike, edge_weight_type: str) -> npt.NDArray[np.int64]:
    """TSPLIB distance between the points ``a`` and ``b`` (broadcast against each other).

    Args:
        a: ``[..., 2]`` coordinates (``x, y``; for ``GEO``, latitude and longitude as ``DDD.MM``).
        b: ``[..., 2]`` coordinates, broadcastable with ``a``.
        edge_weight_type: one of :data:`SUPPORTED_EDGE_WEIGHT_TYPES`.

    Returns:
        ``[...]`` int64 distances by the TSPLIB rule (see the module docstring). ``GEO`` gives 1, not 0,
        for two equal points, as TSPLIB does.
    """
    kind = check_edge_weight_type(edge_weight_type)
    p = np.asarray(a, dtype=np.float64)
    q = np.asarray(b, dtype=np.float64)
    if p.shape[-1:] != (2,) or q.shape[-1:] != (2,):
        raise ValueError(f"tsplib_distance: points must have shape [..., 2], got {p.shape} and {q.shape}")
    if kind == "GEO":
        p, q = _geo_radians(p), _geo_radians(q)
        q1 = np.cos(p[..., 1] - q[..., 1])
        q2 = np.cos(p[..., 0] - q[..., 0])
        q3 = np.cos(p[..., 0] + q[..., 0])
        arg = np.clip(0.5 * ((1.0 + q1) * q2 - (1.0 - q1) * q3), -1.0, 1.0)
        return np.floor(_GEO_RADIUS * np.arccos(arg) + 1.0).astype(np.int64)
    dx = p[..., 0] - q[..., 0]
    dy = p[..., 1] - q[..., 1]
    squared = dx * dx + dy * dy
    if kind == "EUC_2D":
        return np.floor(np.sqrt(squared) + 0.5).astype(np.int64)
    if kind == "CEIL_2D":
        return np.ceil(np.sqrt(squared)).astype(np.int64)
    # ATT
    r = np.sqrt(squared / 10.0)
    t = np.floor(r + 0.5)
    return np.where(t < r, t + 1.0, t).astype(np.int64)


def tsplib_distance_matrix(coords: npt.ArrayLike, edge_weight_type: str) -> npt.NDArray[np.int64]:
    """The full ``[n, n]`` int64 TSPLIB distance matrix of ``[n, 2]`` coordinates, zero on the diagonal.

    Symmetric by construction (each pair is computed once, the same way in both directions).
    """
    c = np.asarray(coords, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] != 2:
        raise ValueError(f"tsplib_distance_matrix: coords must have shape [n, 2], got {c.shape}")
    d = tsplib_distance(c[:, None, :], c[None, :, :], edge_weight_type)
    d = np.minimum(d, d.T)  # identical already; makes symmetry a guarantee, not a floating-point accident
    np.fill_diagonal(d, 0)
    return d


def tsplib_tour_length(coords: npt.ArrayLike, tour: npt.ArrayLike, edge_weight_type: str) -> int:
    """Length of the closed tour ``tour`` (``[n]`` 0-based city indices) under the TSPLIB rule.

    Only the ``n`` tour edges are computed (no ``[n, n]`` matrix), so it is cheap for large instances. The
    tour is not checked here; check it with :func:`geoattn.tasks.check_tour` first.
    """
    c = np.asarray(coords, dtype=np.float64)
    t = np.asarray(tour, dtype=np.int64)
    return int(tsplib_distance(c[t], c[np.roll(t, -1)], edge_weight_type).sum())
