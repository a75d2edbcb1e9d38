"""Convex-hull labels in the Pointer Networks convention (Vinyals et al., NeurIPS 2015, section 3).

The label of a point set is the sequence of its hull vertices (0-based indices), **starting from the lowest
index and going counter-clockwise**, without repeating the first vertex at the end. Points on a hull edge
but not at a corner are not vertices (Qhull's default). Computed by ``scipy.spatial.ConvexHull``, whose
2-d ``vertices`` are already counter-clockwise; only the rotation to the lowest index is ours.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from scipy.spatial import ConvexHull, QhullError

__all__ = ["convex_hull_label", "convex_hull_labels"]


def convex_hull_label(points: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """The hull vertices of ``[n, 2]`` points: lowest index first, counter-clockwise, as int64 ``[h]``.

    Raises:
        ValueError: points not ``[n, 2]`` with ``n >= 3``, or all collinear (no 2-d hull).
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] < 3:
        raise ValueError(f"convex_hull_label: points must have shape [n, 2] with n >= 3, got {p.shape}")
    try:
        vertices = ConvexHull(p).vertices.astype(np.int64)
    except QhullError as exc:
        raise ValueError(
            f"convex_hull_label: the points have no 2-d convex hull (collinear?): {exc}"
        ) from None
    return np.roll(vertices, -int(np.argmin(vertices)))


def convex_hull_labels(points: torch.Tensor | npt.ArrayLike) -> list[torch.Tensor]:
    """:func:`convex_hull_label` of every instance of a ``[B, n, 2]`` batch: ``B`` int64 tensors ``[h_b]``."""
    p = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    if p.ndim != 3 or p.shape[2] != 2:
        raise ValueError(f"convex_hull_labels: points must have shape [B, n, 2], got {p.shape}")
    return [torch.from_numpy(convex_hull_label(x)) for x in p]
