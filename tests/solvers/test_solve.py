"""The solve pipeline: normalisation, decoding + local search in each TSPLIB metric, large-n paths, limits."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import geoattn.solvers.solve as solve_module
from geoattn.nn.attention_model import TSPAttentionModel
from geoattn.solvers.solve import (
    SOLVE_MAX_CITIES,
    default_starts,
    load_instance,
    neighbour_list_search,
    normalise_coordinates,
    solve_tsp,
)
from geoattn.tasks import EdgeWeightType, TsplibInstance, read_tsplib, tsplib_distance_matrix

TSPLIB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tsplib"


@pytest.fixture(scope="module")
def model() -> TSPAttentionModel:
    torch.manual_seed(0)
    return TSPAttentionModel(embed_dim=16, heads=2, layers=1, ff_dim=32)


def _tsplib(name: str) -> Path:
    path = TSPLIB / f"{name}.tsp"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


def _independent_length(instance: TsplibInstance, tour: np.ndarray) -> float:
    """Closed-tour length from the full distance matrix (TSPLIB rule) or plain Python floats."""
    nxt = np.roll(tour, -1)
    if instance.edge_weight_type is None:
        pts = instance.coords.tolist()
        return sum(math.dist(pts[a], pts[b]) for a, b in zip(tour.tolist(), nxt.tolist(), strict=True))
    return float(tsplib_distance_matrix(instance.coords, instance.edge_weight_type)[tour, nxt].sum())


def _assert_valid(instance: TsplibInstance, result: solve_module.SolveResult) -> None:
    assert sorted(result.tour.tolist()) == list(range(instance.n))
    assert result.length == pytest.approx(_independent_length(instance, result.tour), rel=1e-12)
    assert result.length <= result.decoded_length
    json.dumps(result.summary())  # serialisable


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normalise_keeps_the_aspect_ratio_in_the_unit_square(dtype: torch.dtype) -> None:
    rng = np.random.default_rng(0)
    raw = rng.random((30, 2)) * np.array([400.0, 100.0]) + np.array([-50.0, 1e4])
    coords = torch.as_tensor(raw, dtype=dtype).double().numpy()  # the values after rounding to dtype
    unit = normalise_coordinates(torch.as_tensor(raw, dtype=dtype).numpy())
    assert unit.min(axis=0) == pytest.approx([0.0, 0.0], abs=1e-12)
    assert unit[:, 0].max() == pytest.approx(1.0)
    width, height = np.ptp(coords, axis=0)
    assert unit[:, 1].max() == pytest.approx(height / width, rel=1e-5)
    # Distances scale by one factor: ratios are kept.
    d, u = np.linalg.norm(coords[1:] - coords[0], axis=1), np.linalg.norm(unit[1:] - unit[0], axis=1)
    np.testing.assert_allclose(u / d, u[0] / d[0], rtol=1e-12)


def test_normalise_degenerate_and_geo() -> None:
    np.testing.assert_array_equal(normalise_coordinates(np.full((4, 2), 7.5)), np.zeros((4, 2)))
    # GEO: DDD.MM -> degrees; 10.30 is 10.5 degrees of latitude, so it lies halfway between 10.00 and 11.00.
    unit = normalise_coordinates(np.array([[10.00, 20.0], [10.30, 20.0], [11.00, 20.0]]), "GEO")
    assert unit[:, 0] == pytest.approx([0.0, 0.0, 0.0]) and unit[:, 1] == pytest.approx([0.0, 0.5, 1.0])


@pytest.mark.parametrize(("name", "kind"), [("burma14", "GEO"), ("att48", "ATT"), ("berlin52", "EUC_2D")])
def test_solves_tsplib_instances_of_each_type(model: TSPAttentionModel, name: str, kind: str) -> None:
    instance = load_instance(_tsplib(name))
    assert instance.edge_weight_type == kind and instance.optimum is not None
    result = solve_tsp(instance, model, decoding="multistart", num_starts=4, augment=True)
    _assert_valid(instance, result)
    assert result.length >= instance.optimum
    assert result.gap == pytest.approx(100 * (result.length - instance.optimum) / instance.optimum)
    assert result.local_search == "dense" and result.starts == 4 and result.augment
    assert set(result.times) == {"decode", "local_search", "total"}


def test_ceil_2d(model: TSPAttentionModel, tmp_path: Path) -> None:
    text = _tsplib("berlin52").read_text().replace("EUC_2D", "CEIL_2D")
    (tmp_path / "berlin52c.tsp").write_text(text)
    instance = load_instance(tmp_path / "berlin52c.tsp")
    assert instance.edge_weight_type == "CEIL_2D" and instance.optimum is None
    result = solve_tsp(instance, model, decoding="greedy", augment=False)
    _assert_valid(instance, result)
    assert result.gap is None


@pytest.mark.parametrize("decoding", ["greedy", "multistart", "sampling"])
def test_decodings_and_local_search_off(model: TSPAttentionModel, decoding: str) -> None:
    instance = TsplibInstance("r", np.random.default_rng(1).random((25, 2)), None)
    kwargs = {"decoding": decoding, "augment": False, "num_samples": 3, "seed": 5}
    off = solve_tsp(instance, model, local_search=False, **kwargs)  # type: ignore[arg-type]
    on = solve_tsp(instance, model, **kwargs)  # type: ignore[arg-type]
    assert off.local_search == "off" and off.length == off.decoded_length
    assert on.decoded_length == off.decoded_length  # same seed, same decoding
    _assert_valid(instance, off)
    _assert_valid(instance, on)
    assert on.length < off.length  # a random policy's tour is far from 2-opt optimal


def test_float64_model(model: TSPAttentionModel) -> None:
    instance = TsplibInstance("r", np.random.default_rng(2).random((12, 2)), None)
    double = TSPAttentionModel(**model.config()).double()  # type: ignore[arg-type]
    double.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    a = solve_tsp(instance, model, decoding="greedy", augment=False, local_search=False)
    b = solve_tsp(instance, double, decoding="greedy", augment=False, local_search=False)
    assert a.tour.tolist() == b.tour.tolist()


def test_duplicates_and_tiny_instances(model: TSPAttentionModel) -> None:
    rng = np.random.default_rng(3)
    base = rng.random((15, 2))
    coords = np.concatenate([base, base[[0, 0, 4, 9]]])  # 4 duplicates, one city three times
    instance = TsplibInstance("dup", coords, None)
    result = solve_tsp(instance, model, num_starts=3)
    _assert_valid(instance, result)
    assert result.duplicates == 4
    same = TsplibInstance("same", np.full((6, 2), 3.0), None)
    result = solve_tsp(same, model)
    _assert_valid(same, result)
    assert result.length == 0.0 and result.duplicates == 5
    three = TsplibInstance("three", np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]]), "EUC_2D")
    result = solve_tsp(three, model)
    assert sorted(result.tour.tolist()) == [0, 1, 2] and result.length == 12.0


def test_neighbour_lists_and_coarse_tour(model: TSPAttentionModel, monkeypatch: pytest.MonkeyPatch) -> None:
    """The large-instance path on a small instance: lists above DENSE_MAX_CITIES, coarse tour above COARSE_ABOVE."""
    monkeypatch.setattr(solve_module, "DENSE_MAX_CITIES", 20)
    monkeypatch.setattr(solve_module, "COARSE_ABOVE", 60)
    monkeypatch.setattr(solve_module, "COARSE_CITIES", 15)
    instance = TsplibInstance("r", np.random.default_rng(4).random((90, 2)) * 1000, "EUC_2D")
    result = solve_tsp(instance, model, decoding="multistart", augment=False)
    _assert_valid(instance, result)
    assert result.local_search == "neighbour-lists" and result.coarse_cities == 15 and result.starts == 15
    again = solve_tsp(instance, model, decoding="multistart", augment=False)
    assert again.tour.tolist() == result.tour.tolist()  # seeded coarse cities


@pytest.mark.parametrize("kind", [None, "ATT"])
def test_neighbour_list_search_reaches_a_local_optimum(kind: EdgeWeightType | None) -> None:
    rng = np.random.default_rng(5)
    instance = TsplibInstance("r", rng.random((60, 2)) * 500, kind)
    start = rng.permutation(60)
    tour, timed_out = neighbour_list_search(instance, start, neighbours=6)
    assert not timed_out and sorted(tour.tolist()) == list(range(60))
    before, after = _independent_length(instance, start), _independent_length(instance, tour)
    assert after < 0.6 * before
    # No improving 2-opt move between a city and its 6 nearest neighbours is left.
    d = instance.distance_matrix().astype(np.float64)
    near = np.argsort(d + np.diag(np.full(60, np.inf)), axis=1)[:, :6]
    pos = np.empty(60, dtype=np.int64)
    pos[tour] = np.arange(60)
    succ = tour[(pos + 1) % 60]
    tol = 0.5 if kind else 1e-9 * after
    for a in range(60):
        for c in near[a]:
            if c in (a, succ[a]) or succ[c] == a:
                continue
            delta = d[a, c] + d[succ[a], succ[c]] - d[a, succ[a]] - d[c, succ[c]]
            assert delta >= -tol, (a, c, delta)


def test_neighbour_list_search_with_many_duplicates() -> None:
    rng = np.random.default_rng(8)
    coords = np.concatenate([rng.random((20, 2)), np.full((15, 2), 0.5)])  # 15 cities at one place
    instance = TsplibInstance("dup", coords[rng.permutation(35)], None)
    start = rng.permutation(35)
    tour, _ = neighbour_list_search(instance, start, neighbours=4)
    assert sorted(tour.tolist()) == list(range(35))
    assert _independent_length(instance, tour) < _independent_length(instance, start)


def test_time_limit_keeps_a_valid_tour(model: TSPAttentionModel) -> None:
    instance = TsplibInstance("r", np.random.default_rng(6).random((40, 2)), None)
    result = solve_tsp(instance, model, decoding="greedy", augment=False, time_limit=1e-9)
    assert result.timed_out and result.length == result.decoded_length
    _assert_valid(instance, result)
    tour, timed_out = neighbour_list_search(instance, np.arange(40), deadline=time.perf_counter())
    assert timed_out and tour.tolist() == list(range(40))


def test_default_starts_follow_the_budget() -> None:
    assert default_starts(52, augment=True) == 52  # berlin52: every city, 8 images, on a CPU
    assert default_starts(280, augment=True) == 3
    assert default_starts(280, augment=False) == 31
    assert default_starts(5000, augment=True) == 1
    assert default_starts(280, augment=True, device="cuda") == 100


def test_bad_arguments(model: TSPAttentionModel) -> None:
    instance = TsplibInstance("r", np.random.default_rng(7).random((10, 2)), None)
    big = TsplibInstance("big", np.zeros((SOLVE_MAX_CITIES + 1, 2)), None)
    with pytest.raises(ValueError, match=r"10001 cities is more than the 10000"):
        solve_tsp(big, model)
    with pytest.raises(ValueError, match="decoding must be one of"):
        solve_tsp(instance, model, decoding="beam")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="time_limit must be a positive"):
        solve_tsp(instance, model, time_limit=0)
    with pytest.raises(ValueError, match="num_starts must be at most the 10 cities"):
        solve_tsp(instance, model, num_starts=11)


def test_load_instance_finds_the_optimum(tmp_path: Path) -> None:
    berlin = _tsplib("berlin52")
    assert load_instance(berlin).optimum == 7542  # optimal.csv next to it
    assert load_instance(berlin, optimal=8000).optimum == 8000
    shutil.copy(berlin, tmp_path / "berlin52.tsp")
    assert load_instance(tmp_path / "berlin52.tsp").optimum is None
    shutil.copy(TSPLIB / "berlin52.opt.tour", tmp_path / "berlin52.opt.tour")
    assert load_instance(tmp_path / "berlin52.tsp").optimum == 7542  # length of the .opt.tour
    assert read_tsplib(tmp_path / "berlin52.tsp").optimum is None
