"""Held-Karp is exact: equal to brute force over all permutations, and its tour has the length it reports."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from geoattn.tasks import HELD_KARP_MAX_CITIES, check_tour, euclidean_distance_matrix, held_karp


def _brute_force(d: np.ndarray) -> float:
    n = d.shape[0]
    perms = np.array(list(itertools.permutations(range(1, n))), dtype=np.int64)  # [P, n-1]
    cycles = np.concatenate([np.zeros((len(perms), 1), np.int64), perms], axis=1)
    return float(d[cycles, np.roll(cycles, -1, axis=1)].sum(axis=1).min())


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 8])
def test_equals_brute_force(n: int) -> None:
    for seed in range(4):
        points = np.random.default_rng([n, seed]).random((n, 2))
        d = euclidean_distance_matrix(points)
        tour, length = held_karp(d)
        check_tour(tour, n)
        assert tour[0] == 0 and (n == 3 or tour[1] < tour[-1])
        assert length == pytest.approx(_brute_force(d), rel=1e-12)
        assert d[tour, np.roll(tour, -1)].sum() == pytest.approx(length, rel=1e-12)


def test_integer_and_asymmetric_shapes() -> None:
    rng = np.random.default_rng(0)
    m = rng.integers(1, 100, size=(7, 7))
    d = m + m.T
    assert held_karp(d)[1] == _brute_force(d.astype(float))
    with pytest.raises(ValueError, match=r"dist must be symmetric"):
        held_karp(m)
    with pytest.raises(ValueError, match=rf"n must be in 3\.\.{HELD_KARP_MAX_CITIES}, got 17"):
        held_karp(np.zeros((17, 17)))
    with pytest.raises(ValueError, match=r"square \[n, n\] matrix, got shape \(3, 4\)"):
        held_karp(np.zeros((3, 4)))


def test_twelve_cities_is_fast_and_consistent() -> None:
    points = np.random.default_rng(12).random((12, 2))
    d = euclidean_distance_matrix(points)
    tour, length = held_karp(d)
    assert d[tour, np.roll(tour, -1)].sum() == pytest.approx(length, rel=1e-12)
    # No 2-opt move improves an optimal tour.
    n = 12
    for i in range(n - 1):
        for j in range(i + 2, n if i else n - 1):
            a, b, c, e = tour[i], tour[i + 1], tour[j], tour[(j + 1) % n]
            assert d[a, c] + d[b, e] >= d[a, b] + d[c, e] - 1e-12
