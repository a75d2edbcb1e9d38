"""Delaunay labels against the empty-circumcircle property, their canonical order, and the Delaunay metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull

from geoattn.tasks import (
    delaunay_accuracy,
    delaunay_label,
    delaunay_labels,
    triangle_coverage,
    uniform_points,
)


def _in_circumcircle(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``[k]`` whether points ``d`` lie strictly inside the circumcircle of the triangle ``a b c`` (any
    orientation): the sign of the classic 3x3 determinant, times the triangle's orientation."""
    m = np.stack([a - d, b - d, c - d], axis=1)  # [k, 3, 2]
    lifted = np.concatenate([m, (m * m).sum(axis=2, keepdims=True)], axis=2)  # [k, 3, 3]
    orient = np.sign((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))
    return np.linalg.det(lifted) * orient > 1e-12


def test_triangulation_is_delaunay() -> None:
    for p in uniform_points(10, 25, seed=8).numpy().astype(np.float64):
        triangles = delaunay_label(p)
        n, hull = len(p), ConvexHull(p)
        assert len(triangles) == 2 * n - 2 - len(hull.vertices)  # Euler, points in general position
        u, v = p[triangles[:, 1]] - p[triangles[:, 0]], p[triangles[:, 2]] - p[triangles[:, 0]]
        area = 0.5 * np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]).sum()
        assert area == pytest.approx(hull.volume, rel=1e-9)  # the triangles tile the hull
        for i, j, k in triangles.tolist():
            others = np.setdiff1d(np.arange(n), [i, j, k])
            k_ = len(others)
            inside = _in_circumcircle(
                np.repeat(p[i][None], k_, 0),
                np.repeat(p[j][None], k_, 0),
                np.repeat(p[k][None], k_, 0),
                p[others],
            )
            assert not inside.any()


def test_canonical_order() -> None:
    for p in uniform_points(5, 15, seed=9).numpy().astype(np.float64):
        triangles = delaunay_label(p)
        assert (np.diff(triangles, axis=1) > 0).all()  # increasing vertex indices
        a, b, c = (p[triangles[:, i]] for i in range(3))
        la, lb, lc = (np.linalg.norm(u - v, axis=1)[:, None] for u, v in ((b, c), (c, a), (a, b)))
        centers = (la * a + lb * b + lc * c) / (la + lb + lc)
        keys = list(map(tuple, centers.tolist()))
        assert keys == sorted(keys)  # lexicographic by incenter


def test_hand_made_instances() -> None:
    # A unit square with corner 0 moved: the Delaunay diagonal is the one whose opposite angles sum to less
    # than 180 degrees. Pushed out to (-0.1, -0.1), the angle at 0 is under 90: diagonal 1-3.
    out = np.array([[-0.1, -0.1], [1, 0], [1, 1], [0, 1]])
    assert delaunay_label(out).tolist() == [[0, 1, 3], [1, 2, 3]]  # incenters near (0.2, 0.2), (0.7, 0.7)
    # Pulled in to (0.1, 0.1), the angle at 0 is over 90: diagonal 0-2.
    pulled = np.array([[0.1, 0.1], [1, 0], [1, 1], [0, 1]])
    assert delaunay_label(pulled).tolist() == [[0, 2, 3], [0, 1, 2]]  # incenter x: about 0.3, then 0.7
    batch = delaunay_labels(torch.from_numpy(pulled)[None])
    assert batch[0].shape == (2, 3) and batch[0].dtype == torch.int64


def test_accuracy_and_triangle_coverage() -> None:
    target = [np.array([[0, 1, 3], [1, 2, 3]]), np.array([[0, 1, 2], [0, 2, 3], [2, 3, 4], [1, 2, 4]])]
    exact = [np.array([[3, 2, 1], [1, 0, 3]]), np.array([[2, 4, 1], [0, 1, 2], [4, 3, 2], [0, 2, 3]])]
    assert delaunay_accuracy(exact, target) == 1.0
    assert triangle_coverage(exact, target) == 1.0
    half = [np.array([[0, 1, 3], [0, 1, 2]]), np.array([[0, 1, 2], [0, 2, 3], [2, 3, 4]])]
    assert delaunay_accuracy(half, target) == 0.0
    assert triangle_coverage(half, target) == pytest.approx((1 / 2 + 3 / 4) / 2)
    extra = [np.array([[0, 1, 3], [1, 2, 3], [0, 1, 2]]), target[1]]  # all true ones plus a wrong one
    assert delaunay_accuracy(extra, target) == 0.5
    assert triangle_coverage(extra, target) == 1.0
    duplicated = [np.array([[0, 1, 3], [1, 2, 3], [1, 2, 3]]), target[1]]
    assert delaunay_accuracy(duplicated, target) == 0.5
    with pytest.raises(ValueError, match=r"triangles of instance 0 must have shape \[m, 3\]"):
        triangle_coverage([np.array([[0, 1]])], target[:1])


def test_degenerate_points_are_refused() -> None:
    with pytest.raises(ValueError, match=r"cannot be triangulated"):
        delaunay_label(np.array([[0, 0], [1, 1], [2, 2], [3, 3]]))
