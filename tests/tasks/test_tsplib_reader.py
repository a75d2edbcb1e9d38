"""Reading .tsp, .opt.tour, .csv and .npy files: every bad input fails with a message that says what is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geoattn.tasks import (
    MAX_CITIES,
    check_tour,
    duplicate_groups,
    held_karp,
    read_coordinates,
    read_optima_csv,
    read_tsp_instance,
    read_tsplib,
    read_tsplib_tour,
)


def _tsp(tmp_path: Path, body: str, *, name: str = "x.tsp", header: str | None = None) -> Path:
    if header is None:
        header = "NAME : x\nTYPE : TSP\nDIMENSION : 4\nEDGE_WEIGHT_TYPE : EUC_2D\n"
    path = tmp_path / name
    path.write_text(header + "NODE_COORD_SECTION\n" + body + "EOF\n")
    return path


SQUARE = "1 0 0\n2 10 0\n3 10 10\n4 0 10\n"


def test_reads_a_small_file(tmp_path: Path) -> None:
    instance = read_tsplib(_tsp(tmp_path, SQUARE), optimum=40)
    assert instance.name == "x"
    assert instance.n == 4
    assert instance.edge_weight_type == "EUC_2D"
    assert instance.optimum == 40
    np.testing.assert_array_equal(instance.coords, [[0, 0], [10, 0], [10, 10], [0, 10]])
    assert instance.tour_length([0, 1, 2, 3]) == 40
    assert instance.tour_length([0, 2, 1, 3]) == 48  # two diagonals of nint(14.14) = 14


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"TSPLIB file not found: .*nope\.tsp"):
        read_tsplib(tmp_path / "nope.tsp")


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "bin.tsp"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match=r"bin\.tsp: not a text file"):
        read_tsplib(path)


def test_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsp"
    path.write_text("NAME : bad\nDIMENSION : 3\nthis line has no colon\nNODE_COORD_SECTION\n1 0 0\n")
    with pytest.raises(ValueError, match=r"bad\.tsp: not a valid TSPLIB file .*'KEY : VALUE' header lines"):
        read_tsplib(path)


def test_missing_dimension(tmp_path: Path) -> None:
    path = _tsp(tmp_path, SQUARE, header="NAME : x\nEDGE_WEIGHT_TYPE : EUC_2D\n")
    with pytest.raises(ValueError, match=r"no DIMENSION in the header"):
        read_tsplib(path)


def test_non_integer_dimension(tmp_path: Path) -> None:
    path = _tsp(tmp_path, SQUARE, header="DIMENSION : four\nEDGE_WEIGHT_TYPE : EUC_2D\n")
    with pytest.raises(ValueError, match=r"DIMENSION must be an integer, got 'four'"):
        read_tsplib(path)


def test_unsupported_edge_weight_type_lists_the_supported_ones(tmp_path: Path) -> None:
    path = _tsp(tmp_path, SQUARE, header="DIMENSION : 4\nEDGE_WEIGHT_TYPE : MAN_2D\n")
    with pytest.raises(
        ValueError, match=r"unsupported EDGE_WEIGHT_TYPE 'MAN_2D'; supported: ATT, CEIL_2D, EUC_2D, GEO"
    ):
        read_tsplib(path)


def test_missing_edge_weight_type(tmp_path: Path) -> None:
    path = _tsp(tmp_path, SQUARE, header="DIMENSION : 4\n")
    with pytest.raises(
        ValueError, match=r"no EDGE_WEIGHT_TYPE in the header; supported: ATT, CEIL_2D, EUC_2D, GEO"
    ):
        read_tsplib(path)


def test_other_problem_types_are_refused(tmp_path: Path) -> None:
    path = _tsp(tmp_path, SQUARE, header="TYPE : ATSP\nDIMENSION : 4\nEDGE_WEIGHT_TYPE : EUC_2D\n")
    with pytest.raises(ValueError, match=r"TYPE 'ATSP' is not supported; only symmetric TSP"):
        read_tsplib(path)


def test_fewer_than_three_cities(tmp_path: Path) -> None:
    path = _tsp(tmp_path, "1 0 0\n2 1 1\n", header="DIMENSION : 2\nEDGE_WEIGHT_TYPE : EUC_2D\n")
    with pytest.raises(ValueError, match=r"DIMENSION 2 is out of range; accepted: 3 to 100000 cities"):
        read_tsplib(path)


def test_absurd_dimension_is_refused_before_parsing(tmp_path: Path) -> None:
    path = _tsp(tmp_path, SQUARE, header="DIMENSION : 1000000000\nEDGE_WEIGHT_TYPE : EUC_2D\n")
    with pytest.raises(
        ValueError, match=rf"DIMENSION 1000000000 is out of range; accepted: 3 to {MAX_CITIES}"
    ):
        read_tsplib(path)


def test_dimension_disagrees_with_the_coordinates(tmp_path: Path) -> None:
    path = _tsp(tmp_path, SQUARE, header="DIMENSION : 5\nEDGE_WEIGHT_TYPE : EUC_2D\n")
    with pytest.raises(ValueError, match=r"DIMENSION 5 disagrees with the 4 cities in NODE_COORD_SECTION"):
        read_tsplib(path)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_coordinates(tmp_path: Path, value: str) -> None:
    path = _tsp(tmp_path, f"1 0 0\n2 10 0\n3 {value} 10\n4 0 10\n")
    with pytest.raises(
        ValueError, match=r"coordinates must be finite; 1 cities have NaN or infinite .* first city 2"
    ):
        read_tsplib(path)


def test_non_numeric_coordinate(tmp_path: Path) -> None:
    path = _tsp(tmp_path, "1 0 0\n2 10 0\n3 ten 10\n4 0 10\n")
    with pytest.raises(ValueError, match=r"NODE_COORD_SECTION holds a non-numeric coordinate 'ten'"):
        read_tsplib(path)


def test_ragged_coordinate_rows(tmp_path: Path) -> None:
    path = _tsp(tmp_path, "1 0 0\n2 10 0 7\n3 10 10\n4 0 10\n")
    with pytest.raises(ValueError, match=r"rows have \[3, 4\] fields; every row must be 'index x y'"):
        read_tsplib(path)


def test_missing_coordinate_section(tmp_path: Path) -> None:
    path = tmp_path / "x.tsp"
    path.write_text("NAME : x\nDIMENSION : 4\nEDGE_WEIGHT_TYPE : EUC_2D\nEOF\n")
    with pytest.raises(ValueError, match=r"no NODE_COORD_SECTION"):
        read_tsplib(path)


def test_duplicate_coordinates_are_accepted_and_give_a_valid_tour(tmp_path: Path) -> None:
    body = "1 0 0\n2 10 0\n3 10 10\n4 10 10\n5 0 10\n"
    path = _tsp(tmp_path, body, header="DIMENSION : 5\nEDGE_WEIGHT_TYPE : EUC_2D\n")
    instance = read_tsplib(path)
    assert duplicate_groups(instance.coords) == [[2, 3]]
    d = instance.distance_matrix()
    assert d[2, 3] == 0
    tour, length = held_karp(d)
    check_tour(tour, 5)
    assert length == 40 == instance.tour_length(tour)


def test_a280_duplicates_are_read(tsplib_dir: Path) -> None:
    """The real a280 has two cities at one point (nodes 171 and 172)."""
    instance = read_tsplib(tsplib_dir / "a280.tsp")
    assert duplicate_groups(instance.coords) == [[170, 171]]


def test_tour_file(tmp_path: Path) -> None:
    path = tmp_path / "x.opt.tour"
    path.write_text("NAME : x.opt.tour\nTYPE : TOUR\nDIMENSION : 4\nTOUR_SECTION\n1 3\n2\n4\n-1\nEOF\n")
    np.testing.assert_array_equal(read_tsplib_tour(path), [0, 2, 1, 3])


def test_tour_file_that_is_not_a_permutation(tmp_path: Path) -> None:
    path = tmp_path / "x.opt.tour"
    path.write_text("DIMENSION : 4\nTOUR_SECTION\n1\n2\n2\n4\n-1\n")
    with pytest.raises(
        ValueError, match=r"not a permutation of 0\.\.3: visits \[1\] more than once and never visits \[2\]"
    ):
        read_tsplib_tour(path)


def test_tour_file_dimension_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "x.opt.tour"
    path.write_text("DIMENSION : 5\nTOUR_SECTION\n1\n2\n3\n4\n-1\n")
    with pytest.raises(ValueError, match=r"DIMENSION 5 disagrees with the 4 nodes in TOUR_SECTION"):
        read_tsplib_tour(path)


def test_tour_file_for_another_instance(tsplib_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"has 52 entries for 51 cities"):
        read_tsplib_tour(tsplib_dir / "berlin52.opt.tour", 51)


def test_tour_file_without_tour_section(tmp_path: Path) -> None:
    path = tmp_path / "x.opt.tour"
    path.write_text("DIMENSION : 4\n1\n2\n")
    with pytest.raises(ValueError, match=r"no TOUR_SECTION"):
        read_tsplib_tour(path)


def test_a_tour_file_read_as_an_instance_says_so(tsplib_dir: Path) -> None:
    with pytest.raises(
        ValueError, match=r"TYPE 'TOUR' is not supported; only symmetric TSP .*read_tsplib_tour"
    ):
        read_tsplib(tsplib_dir / "att48.opt.tour")


def test_csv_and_npy_coordinates(tmp_path: Path) -> None:
    points = np.array([[0.0, 0.0], [3.0, 0.0], [3.0, 4.0]])
    csv = tmp_path / "p.csv"
    csv.write_text("x,y\n0,0\n3,0\n3,4\n")
    npy = tmp_path / "p.npy"
    np.save(npy, points)
    for path in (csv, npy):
        np.testing.assert_array_equal(read_coordinates(path), points)
        instance = read_tsp_instance(path)
        assert instance.edge_weight_type is None
        assert instance.tour_length([0, 1, 2]) == pytest.approx(12.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0,0\n1,1\n", r"at least 3 cities, got 2"),
        ("0,0\n1,1\n2\n", r"data row 3 is '2'; every row must be 'x,y'"),
        ("0,0\n1,nan\n2,2\n", r"coordinates must be finite"),
        ("0,0\n1,a\n2,2\n", r"data row 2 is '1,a'"),
        ("x,y\n", r"no coordinates"),
    ],
)
def test_bad_csv(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_coordinates(path)


def test_bad_npy(tmp_path: Path) -> None:
    path = tmp_path / "p.npy"
    np.save(path, np.zeros((4, 3)))
    with pytest.raises(
        ValueError, match=r"coordinates must have shape \[n, 2\] \(x, y per city\), got \(4, 3\)"
    ):
        read_coordinates(path)
    path.write_bytes(b"not numpy")
    with pytest.raises(ValueError, match=r"not a readable \.npy array"):
        read_coordinates(path)
    np.save(path, np.array([["a", "b"]] * 3))
    with pytest.raises(ValueError, match=r"expected a numeric \[n, 2\] array, got dtype <U1"):
        read_coordinates(path)


def test_unsupported_suffix(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"unsupported file type '\.txt'; supported: \.tsp \(TSPLIB\), \.csv, \.npy"
    ):
        read_tsp_instance(tmp_path / "p.txt")


def test_optima_csv(tsplib_dir: Path) -> None:
    optima = read_optima_csv(tsplib_dir / "optimal.csv")
    assert optima["berlin52"] == 7542
    assert len(optima) == 10
