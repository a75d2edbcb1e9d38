"""Tour checks (clear messages for every way a tour can be wrong), canonical tours and batched lengths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geoattn.tasks import (
    average_tour_length,
    canonical_tour,
    check_tour,
    check_tours,
    tour_length,
    uniform_points,
)


@pytest.mark.parametrize(
    ("tour", "message"),
    [
        (
            [0, 1, 2, 3, 0],
            r"tour: has 5 entries for 4 cities; .* \(the start city is not repeated at the end\)",
        ),
        ([0, 1, 2], r"tour: has 3 entries for 4 cities"),
        ([[0, 1], [2, 3]], r"tour: must be a 1-d sequence of city indices, got shape \(2, 2\)"),
        ([0.0, 1.0, 2.0, 3.0], r"tour: city indices must be integers, got dtype float64"),
        ([0, 1, 2, 4], r"tour: city indices must be in 0\.\.3; found \[4\]"),
        ([0, -1, 2, 3], r"city indices must be in 0\.\.3; found \[-1\]"),
        ([0, 1, 1, 3], r"not a permutation of 0\.\.3: visits \[1\] more than once and never visits \[2\]"),
    ],
)
def test_check_tour_rejects(tour: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_tour(tour, 4)


def test_check_tour_accepts_tensors_and_arrays() -> None:
    for tour in ([2, 0, 3, 1], np.array([2, 0, 3, 1], dtype=np.int32), torch.tensor([2, 0, 3, 1])):
        out = check_tour(tour, 4)
        assert out.dtype == np.int64
        np.testing.assert_array_equal(out, [2, 0, 3, 1])
    with pytest.raises(ValueError, match=r"integers, got dtype bool"):
        check_tour(np.array([True, False, True]), 3)


def test_check_tours_names_the_bad_row() -> None:
    tours = torch.tensor([[0, 1, 2], [2, 1, 0], [0, 0, 1]])
    with pytest.raises(
        ValueError,
        match=r"tours\[2\]: not a permutation of 0\.\.2: visits \[0\] more than once and never visits \[2\]",
    ):
        check_tours(tours, 3)
    check_tours(tours[:2], 3)
    with pytest.raises(ValueError, match=r"tours: must have shape \[B, 4\], got \(3, 3\)"):
        check_tours(tours, 4)
    with pytest.raises(ValueError, match=r"integers, got dtype torch.float32"):
        check_tours(tours.float(), 3)


def test_canonical_tour() -> None:
    # Every rotation and reflection of one cycle gives the same canonical form.
    base = [0, 3, 1, 4, 2]
    forms = {tuple(canonical_tour(np.roll(t, s))) for t in (base, base[::-1]) for s in range(5)}
    assert forms == {(0, 2, 4, 1, 3)}


def _python_length(points: list[list[float]], tour: list[int]) -> float:
    return sum(math.dist(points[tour[i]], points[tour[(i + 1) % len(tour)]]) for i in range(len(tour)))


def test_tour_length_matches_a_python_loop() -> None:
    points = uniform_points(5, 9, seed=3, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    tours = torch.stack([torch.randperm(9, generator=g) for _ in range(5)])
    lengths = tour_length(points, tours)
    assert lengths.shape == (5,)
    expected = [_python_length(points[b].tolist(), tours[b].tolist()) for b in range(5)]
    torch.testing.assert_close(lengths, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0)
    assert tour_length(points[1], tours[1]).item() == pytest.approx(expected[1], rel=1e-12)
    assert average_tour_length(points, tours) == pytest.approx(sum(expected) / 5, rel=1e-12)


def test_tour_length_is_differentiable_and_checks_tours() -> None:
    points = uniform_points(2, 4, seed=0).requires_grad_(True)
    tours = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]])
    tour_length(points, tours).sum().backward()
    assert points.grad is not None and torch.isfinite(points.grad).all()
    with pytest.raises(ValueError, match=r"tours\[1\]: not a permutation"):
        tour_length(points, torch.tensor([[0, 1, 2, 3], [0, 1, 2, 2]]))


def test_uniform_points_are_seeded() -> None:
    a = uniform_points(3, 5, seed=11)
    assert a.shape == (3, 5, 2) and a.dtype == torch.float32
    assert ((a >= 0) & (a < 1)).all()
    assert torch.equal(a, uniform_points(3, 5, seed=11))
    assert not torch.equal(a, uniform_points(3, 5, seed=12))
    # A seed is a stream: the first instances do not depend on how many are drawn.
    assert torch.equal(uniform_points(5, 5, seed=11).reshape(-1)[:30], a.reshape(-1))
