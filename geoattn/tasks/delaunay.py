"""Delaunay-triangulation labels in the Pointer Networks convention (Vinyals et al., NeurIPS 2015, section 3).

The label of a point set is its set of Delaunay triangles in a canonical order: each triangle is its vertex
indices in **increasing** order, and the triangles are sorted by their **incenters**, lexicographically
(``x``, then ``y``). Computed by ``scipy.spatial.Delaunay`` (Qhull). Uniform random points are in general
position with probability one, so the triangulation is unique; for four co-circular points Qhull picks one.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from scipy.spatial import Delaunay, QhullError

__all__ = ["delaunay_label", "delaunay_labels", "incenters"]


def incenters(points: npt.ArrayLike, triangles: npt.ArrayLike) -> npt.NDArray[np.float64]:
    r"""Incenters ``[m, 2]`` of triangles ``[m, 3]`` (vertex indices into ``[n, 2]`` points).

    :math:`I = (a A + b B + c C) / (a + b + c)`, with :math:`a = |BC|`, :math:`b = |CA|`, :math:`c = |AB|`.
    """
    p = np.asarray(points, dtype=np.float64)
    t = np.asarray(triangles, dtype=np.int64)
    a, b, c = p[t[:, 0]], p[t[:, 1]], p[t[:, 2]]
    la = np.linalg.norm(b - c, axis=1)[:, None]
    lb = np.linalg.norm(c - a, axis=1)[:, None]
    lc = np.linalg.norm(a - b, axis=1)[:, None]
    return (la * a + lb * b + lc * c) / (la + lb + lc)


def delaunay_label(points: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The Delaunay triangles of ``[n, 2]`` points in canonical order, as int64 ``[m, 3]``.

    Raises:
        ValueError: points not ``[n, 2]`` with ``n >= 3``, or degenerate (all collinear).
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < 3:
        raise ValueError(f"delaunay_label: points must have shape [n, 2] with n >= 3, got {p.shape}")
    try:
        triangles = np.sort(Delaunay(p).simplices.astype(np.int64), axis=1)
    except QhullError as exc:
        raise ValueError(f"delaunay_label: the points cannot be triangulated (collinear?): {exc}") from None
    centers = incenters(p, triangles)
    return triangles[np.lexsort((centers[:, 1], centers[:, 0]))]


def delaunay_labels(points: torch.Tensor | npt.ArrayLike) -> list[torch.Tensor]:
    """:func:`delaunay_label` of every instance of a ``[B, n, 2]`` batch: ``B`` int64 tensors ``[m_b, 3]``."""
    p = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    if p.ndim != 3 or p.shape[2] != 2:
        raise ValueError(f"delaunay_labels: points must have shape [B, n, 2], got {p.shape}")
    return [torch.from_numpy(delaunay_label(x)) for x in p]
