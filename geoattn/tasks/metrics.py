r"""The Pointer Networks metrics (Vinyals et al., NeurIPS 2015, section 4).

- Convex hull: **accuracy**, the fraction of instances whose predicted vertex sequence equals the true one up
  to a cyclic shift (same orientation: counter-clockwise); and **area coverage**, the mean of
  :math:`\mathrm{area}(\hat P) / \mathrm{area}(\mathrm{hull})` (shoelace areas) over the predictions that are
  simple polygons, reported as *FAIL* when more than 1% of the predictions are not simple polygons.
- Delaunay: **accuracy**, the fraction of instances whose predicted set of triangles equals the true set
  exactly; and **triangle coverage**, the mean over instances of the fraction of true triangles predicted.
  Triangles are compared as vertex sets (their order and the order of their vertices do not matter).
- TSP: **average tour length** of the predicted tours, each checked to be a permutation first.

Predictions are per-instance index sequences (lists, arrays or tensors; lengths may differ). Indices
outside ``0..n-1`` are a caller's bug and raise; a polygon that revisits a vertex is merely not simple.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import torch

from .convex_hull import convex_hull_label
from .tsp import tour_length

__all__ = [
    "AREA_FAIL_THRESHOLD",
    "AreaCoverage",
    "average_tour_length",
    "delaunay_accuracy",
    "hull_accuracy",
    "hull_area_coverage",
    "is_simple_polygon",
    "polygon_area",
    "triangle_coverage",
]

#: Area coverage is reported as FAIL when more than this fraction of predictions are not simple polygons.
AREA_FAIL_THRESHOLD: Final = 0.01

IndexSequences = Sequence[torch.Tensor | npt.ArrayLike]


def _indices(x: torch.Tensor | npt.ArrayLike) -> npt.NDArray[np.int64]:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"metrics: predictions must hold integer indices, got dtype {a.dtype}")
    return a.astype(np.int64)


def _points(points: torch.Tensor | npt.ArrayLike) -> npt.NDArray[np.float64]:
    p = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    if p.ndim != 3 or p.shape[2] != 2:
        raise ValueError(f"metrics: points must have shape [B, n, 2], got {p.shape}")
    return p.astype(np.float64)


def _check_batch(name: str, predictions: IndexSequences, batch: int) -> None:
    if len(predictions) != batch:
        raise ValueError(f"{name}: {len(predictions)} predictions for {batch} instances")


def _check_range(name: str, b: int, idx: npt.NDArray[np.int64], n: int) -> None:
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"{name}: prediction {b} has indices outside 0..{n - 1}")


def polygon_area(vertices: npt.ArrayLike) -> float:
    r"""Shoelace area :math:`\tfrac12 |\sum_i x_i y_{i+1} - x_{i+1} y_i|` of a closed polygon ``[k, 2]``."""
    v = np.asarray(vertices, dtype=np.float64)
    x, y = v[:, 0], v[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y)))


def _cross(
    o: npt.NDArray[np.float64], a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """``[...]`` z-component of ``(a - o) x (b - o)``: positive for a left turn."""
    return (a[..., 0] - o[..., 0]) * (b[..., 1] - o[..., 1]) - (a[..., 1] - o[..., 1]) * (
        b[..., 0] - o[..., 0]
    )


def _on_segment(
    p: npt.NDArray[np.float64], a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """For ``p`` collinear with ``a b``: whether ``p`` lies in the segment's bounding box (so on the segment)."""
    return (
        (np.minimum(a[..., 0], b[..., 0]) <= p[..., 0])
        & (p[..., 0] <= np.maximum(a[..., 0], b[..., 0]))
        & (np.minimum(a[..., 1], b[..., 1]) <= p[..., 1])
        & (p[..., 1] <= np.maximum(a[..., 1], b[..., 1]))
    )


def is_simple_polygon(vertices: npt.ArrayLike) -> bool:
    """Whether the closed polygon ``[k, 2]`` is simple: ``k >= 3`` distinct vertices, no two edges meeting
    except consecutive ones at their shared vertex (touching counts as meeting; exact float predicates)."""
    v = np.asarray(vertices, dtype=np.float64)
    k = v.shape[0]
    if k < 3 or np.unique(v, axis=0).shape[0] != k:
        return False
    a, b = v, np.roll(v, -1, axis=0)  # edge i: a[i] -> b[i]
    # Consecutive edges a->b, b->c overlap when c turns straight back along a->b.
    c = np.roll(v, -2, axis=0)
    back = (_cross(a, b, c) == 0) & (((b - a) * (c - b)).sum(axis=1) < 0)
    if back.any():
        return False
    i, j = np.triu_indices(k, k=2)
    keep = ~((i == 0) & (j == k - 1))  # edges 0 and k-1 are consecutive too
    i, j = i[keep], j[keep]
    p1, p2, q1, q2 = a[i], b[i], a[j], b[j]
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    proper = (((d1 > 0) & (d2 < 0)) | ((d1 < 0) & (d2 > 0))) & (((d3 > 0) & (d4 < 0)) | ((d3 < 0) & (d4 > 0)))
    touch = (
        ((d1 == 0) & _on_segment(p1, q1, q2))
        | ((d2 == 0) & _on_segment(p2, q1, q2))
        | ((d3 == 0) & _on_segment(q1, p1, p2))
        | ((d4 == 0) & _on_segment(q2, p1, p2))
    )
    return not bool((proper | touch).any())


def _strip_closing(idx: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """A sequence that closes the polygon by repeating its first index at the end, without that repeat."""
    return idx[:-1] if idx.size > 1 and idx[0] == idx[-1] else idx


def hull_accuracy(predictions: IndexSequences, targets: IndexSequences) -> float:
    """Fraction of predictions equal to their target hull up to a cyclic shift (not a reversal).

    Args:
        predictions: ``B`` predicted vertex sequences ``[h'_b]``; a trailing repeat of the first index
            (closing the polygon) is ignored.
        targets: ``B`` true hulls ``[h_b]`` (:func:`~geoattn.tasks.convex_hull.convex_hull_label`).
    """
    _check_batch("hull_accuracy", predictions, len(targets))
    if not targets:
        raise ValueError("hull_accuracy: no instances")
    hits = 0
    for pred, target in zip(predictions, targets, strict=True):
        p, t = _strip_closing(_indices(pred)), _indices(target)
        if p.shape == t.shape and t.size and (p == t[0]).any():
            hits += int(np.array_equal(np.roll(p, -int(np.flatnonzero(p == t[0])[0])), t))
    return hits / len(targets)


@dataclass(frozen=True)
class AreaCoverage:
    """Convex-hull area coverage (see the module docstring).

    Attributes:
        coverage: mean ``area(prediction) / area(true hull)`` over the simple predictions (NaN if none).
        fail_rate: fraction of predictions that are not simple polygons.
        failed: ``fail_rate > AREA_FAIL_THRESHOLD``: the paper reports *FAIL* instead of the coverage.
    """

    coverage: float
    fail_rate: float
    failed: bool

    def __str__(self) -> str:
        return "FAIL" if self.failed else f"{100 * self.coverage:.1f}%"


def hull_area_coverage(
    points: torch.Tensor | npt.ArrayLike,
    predictions: IndexSequences,
    targets: IndexSequences | None = None,
) -> AreaCoverage:
    """Area coverage of predicted hulls, with the paper's FAIL rule.

    Args:
        points: ``[B, n, 2]`` instances.
        predictions: ``B`` predicted vertex sequences (a trailing repeat of the first index is ignored).
        targets: ``B`` true hulls; computed with ``scipy.spatial.ConvexHull`` when omitted.
    """
    p = _points(points)
    _check_batch("hull_area_coverage", predictions, p.shape[0])
    if p.shape[0] == 0:
        raise ValueError("hull_area_coverage: no instances")
    hulls = [convex_hull_label(x) for x in p] if targets is None else [_indices(t) for t in targets]
    _check_batch("hull_area_coverage targets", hulls, p.shape[0])
    ratios, fails = [], 0
    for b, (pred, hull) in enumerate(zip(predictions, hulls, strict=True)):
        idx = _strip_closing(_indices(pred))
        _check_range("hull_area_coverage", b, idx, p.shape[1])
        polygon = p[b][idx]
        if not is_simple_polygon(polygon):
            fails += 1
            continue
        ratios.append(polygon_area(polygon) / polygon_area(p[b][hull]))
    fail_rate = fails / p.shape[0]
    coverage = float(np.mean(ratios)) if ratios else float("nan")
    return AreaCoverage(coverage=coverage, fail_rate=fail_rate, failed=fail_rate > AREA_FAIL_THRESHOLD)


def _triangle_set(name: str, b: int, triangles: torch.Tensor | npt.ArrayLike) -> list[tuple[int, ...]]:
    t = _indices(triangles)
    if t.size == 0:
        return []
    if t.ndim != 2 or t.shape[1] != 3:
        raise ValueError(f"{name}: triangles of instance {b} must have shape [m, 3], got {t.shape}")
    return sorted(tuple(row) for row in np.sort(t, axis=1).tolist())


def delaunay_accuracy(predictions: IndexSequences, targets: IndexSequences) -> float:
    """Fraction of instances whose predicted triangles ``[m', 3]`` are exactly the true ones (as a multiset
    of vertex sets: a duplicated or missing triangle is a miss)."""
    _check_batch("delaunay_accuracy", predictions, len(targets))
    if not targets:
        raise ValueError("delaunay_accuracy: no instances")
    hits = sum(
        _triangle_set("delaunay_accuracy", b, pred) == _triangle_set("delaunay_accuracy", b, target)
        for b, (pred, target) in enumerate(zip(predictions, targets, strict=True))
    )
    return hits / len(targets)


def triangle_coverage(predictions: IndexSequences, targets: IndexSequences) -> float:
    """Mean over instances of the fraction of true triangles that appear among the predicted ones."""
    _check_batch("triangle_coverage", predictions, len(targets))
    if not targets:
        raise ValueError("triangle_coverage: no instances")
    fractions = []
    for b, (pred, target) in enumerate(zip(predictions, targets, strict=True)):
        true = set(_triangle_set("triangle_coverage", b, target))
        if not true:
            raise ValueError(f"triangle_coverage: target {b} has no triangles")
        fractions.append(len(true & set(_triangle_set("triangle_coverage", b, pred))) / len(true))
    return float(np.mean(fractions))


def average_tour_length(points: torch.Tensor, tours: torch.Tensor) -> float:
    """Mean Euclidean length of ``[B, n]`` tours on ``[B, n, 2]`` points, every tour checked first."""
    if points.shape[0] == 0:
        raise ValueError("average_tour_length: no instances")
    return float(tour_length(points.double(), tours, check=True).mean())
