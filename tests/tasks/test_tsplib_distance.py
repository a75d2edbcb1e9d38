"""TSPLIB distance rules: every published optimum in the shared sample is reproduced from its .opt.tour."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from geoattn.tasks import (
    SUPPORTED_EDGE_WEIGHT_TYPES,
    held_karp,
    read_tsplib,
    read_tsplib_tour,
    tsplib_distance,
    tsplib_distance_matrix,
    tsplib_tour_length,
)


def test_every_optimal_tour_has_the_published_length(
    tsplib_dir: Path, tsplib_optima: list[dict[str, str]]
) -> None:
    checked = []
    for row in tsplib_optima:
        tour_file = tsplib_dir / f"{row['name']}.opt.tour"
        if not tour_file.is_file():
            continue
        instance = read_tsplib(tsplib_dir / f"{row['name']}.tsp")
        assert instance.n == int(row["n"])
        assert instance.edge_weight_type == row["edge_weight_type"]
        tour = read_tsplib_tour(tour_file, instance.n)
        assert instance.tour_length(tour) == int(row["optimal_length"]), row["name"]
        checked.append(row["name"])
    # SOURCE.md: all but burma14 have an .opt.tour; EUC_2D, ATT and GEO are all represented.
    assert len(checked) == 9
    types = {r["edge_weight_type"] for r in tsplib_optima if r["name"] in checked}
    assert types == {"EUC_2D", "ATT", "GEO"}


def test_burma14_optimum_by_held_karp(tsplib_dir: Path, tsplib_optima: list[dict[str, str]]) -> None:
    """burma14 (GEO) has no .opt.tour: the exact optimum of our GEO matrix must be the published one."""
    optimum = next(int(r["optimal_length"]) for r in tsplib_optima if r["name"] == "burma14")
    instance = read_tsplib(tsplib_dir / "burma14.tsp")
    tour, length = held_karp(instance.distance_matrix())
    assert length == optimum == 3323
    assert tsplib_tour_length(instance.coords, tour, "GEO") == optimum


def test_matrix_agrees_with_the_edge_wise_tour_length(tsplib_dir: Path) -> None:
    for name in ("att48", "gr96", "eil51"):
        instance = read_tsplib(tsplib_dir / f"{name}.tsp")
        d = instance.distance_matrix()
        assert d.dtype == np.int64
        assert np.array_equal(d, d.T)
        assert (np.diag(d) == 0).all()
        tour = read_tsplib_tour(tsplib_dir / f"{name}.opt.tour")
        assert instance.edge_weight_type is not None
        assert int(d[tour, np.roll(tour, -1)].sum()) == tsplib_tour_length(
            instance.coords, tour, instance.edge_weight_type
        )


def _geo_rounding_degrees(coords: np.ndarray) -> np.ndarray:
    """The GEO rule with nint degrees (the DOC's literal text) instead of truncation: a wrong variant."""
    deg = np.floor(coords + 0.5)
    rad = 3.141592 * (deg + 5.0 * (coords - deg) / 3.0) / 180.0
    lat, lon = rad[:, 0], rad[:, 1]
    q1 = np.cos(lon[:, None] - lon[None, :])
    q2 = np.cos(lat[:, None] - lat[None, :])
    q3 = np.cos(lat[:, None] + lat[None, :])
    arg = np.clip(0.5 * ((1.0 + q1) * q2 - (1.0 - q1) * q3), -1, 1)
    return np.floor(6378.388 * np.arccos(arg) + 1.0).astype(np.int64)


def test_geo_truncates_degrees(tsplib_dir: Path) -> None:
    """SOURCE.md: rounding the degrees gives 55489 on gr96's optimal tour; truncation gives 55209."""
    instance = read_tsplib(tsplib_dir / "gr96.tsp")
    tour = read_tsplib_tour(tsplib_dir / "gr96.opt.tour")
    wrong = _geo_rounding_degrees(instance.coords)
    assert int(wrong[tour, np.roll(tour, -1)].sum()) == 55489
    assert tsplib_tour_length(instance.coords, tour, "GEO") == 55209


@pytest.mark.parametrize(
    ("a", "b", "kind", "expected"),
    [
        ((0, 0), (3, 4), "EUC_2D", 5),
        ((0, 0), (0.5, 0), "EUC_2D", 1),  # nint(0.5) = 1
        ((0, 0), (0.49, 0), "EUC_2D", 0),
        ((0, 0), (1, 1), "EUC_2D", 1),  # 1.414 -> 1
        ((0, 0), (1, 1), "CEIL_2D", 2),
        ((0, 0), (3, 4), "CEIL_2D", 5),
        ((0, 0), (10, 0), "ATT", 4),  # r = sqrt(10) = 3.16, nint 3 < r -> 4
        ((0, 0), (30, 40), "ATT", 16),  # r = sqrt(250) = 15.81, nint 16 >= r -> 16
        ((0, 0), (0, 0), "GEO", 1),  # TSPLIB's GEO: +1.0 before truncation
    ],
)
def test_hand_computed_distances(
    a: tuple[float, float], b: tuple[float, float], kind: str, expected: int
) -> None:
    assert int(tsplib_distance(np.array(a), np.array(b), kind)) == expected


def test_geo_matches_the_formula_for_one_pair() -> None:
    """Two cities of burma14 by the DOC's formula written out with ``math`` (truncated degrees)."""
    p, q = (16.47, 96.10), (20.09, 92.54)

    def rad(x: float) -> float:
        deg = int(x)
        return 3.141592 * (deg + 5.0 * (x - deg) / 3.0) / 180.0

    q1 = math.cos(rad(p[1]) - rad(q[1]))
    q2 = math.cos(rad(p[0]) - rad(q[0]))
    q3 = math.cos(rad(p[0]) + rad(q[0]))
    expected = int(6378.388 * math.acos(0.5 * ((1.0 + q1) * q2 - (1.0 - q1) * q3)) + 1.0)
    assert int(tsplib_distance(np.array(p), np.array(q), "GEO")) == expected


def test_unsupported_edge_weight_type_names_the_supported_ones() -> None:
    with pytest.raises(
        ValueError, match=r"unsupported EDGE_WEIGHT_TYPE 'EUC_3D'; supported: ATT, CEIL_2D, EUC_2D, GEO"
    ):
        tsplib_distance_matrix(np.zeros((3, 2)), "EUC_3D")
    assert SUPPORTED_EDGE_WEIGHT_TYPES == ("ATT", "CEIL_2D", "EUC_2D", "GEO")
