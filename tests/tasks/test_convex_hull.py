"""Convex-hull labels (lowest index first, counter-clockwise) against gift wrapping, and the hull metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial import ConvexHull

from geoattn.tasks import (
    AREA_FAIL_THRESHOLD,
    convex_hull_label,
    convex_hull_labels,
    hull_accuracy,
    hull_area_coverage,
    is_simple_polygon,
    polygon_area,
    uniform_points,
)


def _gift_wrap(points: np.ndarray) -> list[int]:
    """Jarvis march, written independently: counter-clockwise hull corners, lowest index first."""
    n = len(points)

    def cross(o: int, a: int, b: int) -> float:
        return float(
            (points[a, 0] - points[o, 0]) * (points[b, 1] - points[o, 1])
            - (points[a, 1] - points[o, 1]) * (points[b, 0] - points[o, 0])
        )

    start = min(range(n), key=lambda i: (points[i, 0], points[i, 1]))
    hull, current = [], start
    while True:
        hull.append(current)
        candidate = (current + 1) % n
        for other in range(n):
            turn = cross(current, candidate, other)
            farther = np.hypot(*(points[other] - points[current])) > np.hypot(
                *(points[candidate] - points[current])
            )
            if turn < 0 or (turn == 0 and farther):  # `other` is right of current->candidate: wrap tighter
                candidate = other
        current = candidate
        if current == start:
            break
    low = hull.index(min(hull))
    return hull[low:] + hull[:low]


def test_labels_match_gift_wrapping() -> None:
    points = uniform_points(40, 20, seed=5).numpy()
    for p in points:
        assert convex_hull_label(p).tolist() == _gift_wrap(p.astype(np.float64))


def test_label_convention_on_a_hand_made_instance() -> None:
    # Square corners 3 (0,0), 1 (1,0), 4 (1,1), 2 (0,1), and an inner point 0.
    points = np.array([[0.5, 0.5], [1, 0], [0, 1], [0, 0], [1, 1]])
    assert convex_hull_label(points).tolist() == [1, 4, 2, 3]  # from index 1, counter-clockwise
    batch = convex_hull_labels(torch.from_numpy(points)[None])
    assert len(batch) == 1 and batch[0].dtype == torch.int64 and batch[0].tolist() == [1, 4, 2, 3]


def test_labels_are_counter_clockwise() -> None:
    for p in uniform_points(10, 30, seed=6).numpy().astype(np.float64):
        hull = convex_hull_label(p)
        assert hull[0] == hull.min()
        x, y = p[hull, 0], p[hull, 1]
        assert np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y) > 0  # positive signed area


def test_collinear_points_are_refused() -> None:
    with pytest.raises(ValueError, match=r"no 2-d convex hull"):
        convex_hull_label(np.array([[0, 0], [1, 1], [2, 2]]))


def test_polygon_area_matches_qhull() -> None:
    for p in uniform_points(10, 15, seed=7).numpy().astype(np.float64):
        assert polygon_area(p[convex_hull_label(p)]) == pytest.approx(ConvexHull(p).volume, rel=1e-12)


def test_simple_polygons() -> None:
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
    assert is_simple_polygon(square)
    assert not is_simple_polygon(square[[0, 2, 1, 3]])  # bow-tie
    assert not is_simple_polygon(square[[0, 1, 2, 1]])  # revisits a vertex
    assert not is_simple_polygon(square[:2])
    assert not is_simple_polygon(np.array([[0, 0], [2, 0], [1, 0]], dtype=float))  # spike along an edge
    # A vertex touching a non-adjacent edge.
    assert not is_simple_polygon(np.array([[0, 0], [2, 0], [2, 2], [1, 0], [0, 2]], dtype=float))
    assert is_simple_polygon(np.array([[0, 0], [2, 0], [2, 2], [1, 0.5], [0, 2]], dtype=float))


def test_hull_accuracy_is_an_exact_cyclic_match() -> None:
    target = [torch.tensor([1, 4, 2, 3])]
    assert hull_accuracy([[4, 2, 3, 1]], target) == 1.0  # rotation
    assert hull_accuracy([[1, 4, 2, 3, 1]], target) == 1.0  # closed by repeating the start
    assert hull_accuracy([[1, 3, 2, 4]], target) == 0.0  # clockwise
    assert hull_accuracy([[1, 4, 2]], target) == 0.0  # a vertex missing
    assert hull_accuracy([[4, 2, 3, 0]], target) == 0.0  # a wrong vertex instead of the first one
    assert hull_accuracy([[1, 4, 2, 3], [0, 1, 2]], [target[0], torch.tensor([0, 2, 1])]) == 0.5


def test_area_coverage_and_the_fail_rule() -> None:
    points = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.25]], dtype=float)[None]
    exact = hull_area_coverage(points, [[0, 1, 2, 3]])
    assert exact.coverage == 1.0 and exact.fail_rate == 0.0 and not exact.failed and str(exact) == "100.0%"
    dent = hull_area_coverage(points, [[0, 4, 1, 2, 3]])  # pushes the bottom edge in: area 1 - 0.125
    assert dent.coverage == pytest.approx(0.875)
    bowtie = hull_area_coverage(points, [[0, 2, 1, 3]])
    assert bowtie.failed and bowtie.fail_rate == 1.0 and str(bowtie) == "FAIL" and np.isnan(bowtie.coverage)


def test_fail_threshold_is_one_percent() -> None:
    points = np.repeat(np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)[None], 200, axis=0)
    good, bad = [0, 1, 2, 3], [0, 2, 1, 3]
    at_threshold = hull_area_coverage(points, [bad] * 2 + [good] * 198)  # exactly 1%
    assert at_threshold.fail_rate == AREA_FAIL_THRESHOLD and not at_threshold.failed
    assert at_threshold.coverage == 1.0  # failures are left out of the mean
    assert hull_area_coverage(points, [bad] * 3 + [good] * 197).failed


def test_area_coverage_rejects_out_of_range_indices() -> None:
    with pytest.raises(ValueError, match=r"prediction 0 has indices outside 0\.\.3"):
        hull_area_coverage(np.zeros((1, 4, 2)), [[0, 1, 7]], targets=[[0, 1, 2]])
