"""LKH-3 labels (the optional elkai package) against exact Held-Karp, and the error when elkai is missing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from geoattn.tasks import (
    euclidean_distance_matrix,
    held_karp,
    lkh_tour,
    read_tsplib,
    tsp_labels,
    uniform_points,
)


def test_lkh_matches_held_karp_on_a_sample() -> None:
    pytest.importorskip("elkai")
    points = uniform_points(12, 10, seed=2024).numpy()
    for p in points:
        d = euclidean_distance_matrix(p)
        exact_tour, exact = held_karp(d)
        tour = lkh_tour(d)
        np.testing.assert_array_equal(tour, exact_tour)
        assert d[tour, np.roll(tour, -1)].sum() == pytest.approx(exact, rel=1e-12)


def test_lkh_labels_for_larger_n_are_canonical_permutations() -> None:
    pytest.importorskip("elkai")
    labels = tsp_labels(uniform_points(3, 20, seed=1))
    assert labels.shape == (3, 20) and labels.dtype == torch.int64
    assert (torch.sort(labels, dim=1).values == torch.arange(20)).all()
    assert (labels[:, 0] == 0).all() and (labels[:, 1] < labels[:, -1]).all()


def test_lkh_on_integer_tsplib_costs(tsplib_dir: Path) -> None:
    pytest.importorskip("elkai")
    instance = read_tsplib(tsplib_dir / "att48.tsp")
    assert instance.tour_length(lkh_tour(instance.distance_matrix(), runs=1)) == 10628


def test_missing_elkai_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "elkai" else real(name, *a)
    )
    with pytest.raises(ModuleNotFoundError, match=r"pip install geoattn\[baselines\]"):
        lkh_tour(np.ones((4, 4)))
    with pytest.raises(ModuleNotFoundError, match=r"pip install geoattn\[baselines\]"):
        tsp_labels(uniform_points(1, 13, seed=0))  # n > 12: "auto" means LKH


def test_lkh_input_checks() -> None:
    pytest.importorskip("elkai")
    with pytest.raises(ValueError, match=r"dist must be symmetric"):
        lkh_tour(np.arange(16).reshape(4, 4))
    with pytest.raises(ValueError, match=r"integer costs must be in 0\.\.20000000"):
        lkh_tour(np.full((3, 3), 10**9))
