"""TSPLIB files: ``.tsp`` instances (parsed by ``vrplib``), ``.opt.tour`` tours, and a coordinate-file dispatch.

- :func:`read_tsplib` reads a symmetric TSP with node coordinates through
  ``vrplib.parse_vrplib(..., compute_edge_weights=False)``: vrplib's own distances do not round ``EUC_2D`` and
  reject ``ATT`` and ``GEO``, so lengths come from :mod:`geoattn.tasks.tsplib_distance` instead.
- :func:`read_tsplib_tour` reads a ``TOUR_SECTION`` itself: vrplib drops the first column of every section
  row as an index, which empties a one-number-per-line tour.
- :func:`read_tsp_instance` dispatches on the suffix: ``.tsp`` here, ``.csv`` / ``.npy`` through
  :func:`geoattn.tasks.coordinates.read_coordinates` (those have plain Euclidean float distances).

Errors name the file and say what is accepted; see :func:`read_tsplib` for the list.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from vrplib.parse import parse_vrplib

from .coordinates import MAX_CITIES, MIN_CITIES, check_coordinates, read_coordinates, read_text_file
from .tour import check_tour, euclidean_distance_matrix
from .tsplib_distance import (
    SUPPORTED_EDGE_WEIGHT_TYPES,
    EdgeWeightType,
    tsplib_distance_matrix,
    tsplib_tour_length,
)

__all__ = ["TsplibInstance", "read_optima_csv", "read_tsp_instance", "read_tsplib", "read_tsplib_tour"]

_DIMENSION = re.compile(r"^\s*DIMENSION\s*:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class TsplibInstance:
    """A symmetric TSP instance with city coordinates.

    Attributes:
        name: the file's ``NAME`` (or the file stem).
        coords: float64 ``[n, 2]`` coordinates, city ``i`` (0-based) is TSPLIB node ``i + 1``.
        edge_weight_type: a TSPLIB type from :data:`SUPPORTED_EDGE_WEIGHT_TYPES` (integer distances by the
            TSPLIB rules), or ``None`` for plain Euclidean float distances (coordinates from CSV / NPY).
        optimum: the optimal tour length when known (passed in by the caller), else ``None``.
        comment: the file's ``COMMENT``, if any.
        path: the file it was read from, if any.
    """

    name: str
    coords: npt.NDArray[np.float64]
    edge_weight_type: EdgeWeightType | None
    optimum: float | None = None
    comment: str | None = None
    path: Path | None = None

    @property
    def n(self) -> int:
        """Number of cities."""
        return int(self.coords.shape[0])

    def distance_matrix(self) -> npt.NDArray[np.float64] | npt.NDArray[np.int64]:
        """``[n, n]`` distances: int64 by the TSPLIB rule, or float64 Euclidean when there is no type."""
        if self.edge_weight_type is None:
            return euclidean_distance_matrix(self.coords)
        return tsplib_distance_matrix(self.coords, self.edge_weight_type)

    def tour_length(self, tour: npt.ArrayLike) -> float:
        """Length of a closed tour (``[n]`` 0-based indices), checked to be a permutation first.

        An ``int`` value for TSPLIB types (returned as float, exactly), a Euclidean float otherwise.
        """
        t = check_tour(tour, self.n, name=f"tour of {self.name}")
        if self.edge_weight_type is None:
            c = self.coords
            return float(np.linalg.norm(c[t] - c[np.roll(t, -1)], axis=1).sum())
        return float(tsplib_tour_length(self.coords, t, self.edge_weight_type))


def read_tsplib(path: str | os.PathLike[str], *, optimum: float | None = None) -> TsplibInstance:
    """Read a TSPLIB ``.tsp`` file with ``NODE_COORD_SECTION`` and a supported ``EDGE_WEIGHT_TYPE``.

    Args:
        path: the ``.tsp`` file.
        optimum: the known optimal length, stored on the instance (see :func:`read_optima_csv`).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is binary, too large, or not in TSPLIB's ``KEY : VALUE`` + sections format; its
            ``TYPE`` is not ``TSP``; ``EDGE_WEIGHT_TYPE`` is missing or unsupported (the message lists the
            supported ones); ``DIMENSION`` is missing, not an integer, absurd (over ``MAX_CITIES``) or
            disagrees with the number of coordinate rows; a coordinate row is malformed; fewer than 3
            cities; NaN or infinite coordinates.
    """
    p = Path(path)
    text = read_text_file(p, what="TSPLIB file")
    # Refuse absurd sizes before vrplib turns every row into Python objects.
    match = _DIMENSION.search(text)
    if match is None:
        raise ValueError(f"{p}: no DIMENSION in the header; expected e.g. 'DIMENSION : 52'")
    try:
        dimension = int(match.group(1))
    except ValueError:
        raise ValueError(f"{p}: DIMENSION must be an integer, got {match.group(1)!r}") from None
    if not MIN_CITIES <= dimension <= MAX_CITIES:
        raise ValueError(
            f"{p}: DIMENSION {dimension} is out of range; accepted: {MIN_CITIES} to {MAX_CITIES} cities"
        )
    try:
        data = parse_vrplib(text, compute_edge_weights=False)
    except (ValueError, RuntimeError, IndexError, TypeError) as exc:
        raise ValueError(
            f"{p}: not a valid TSPLIB file ({exc}); expected 'KEY : VALUE' header lines, then a "
            "NODE_COORD_SECTION of 'index x y' rows"
        ) from None

    kind = str(data.get("type", "TSP")).strip().upper()
    if kind != "TSP":
        hint = "; read tours with read_tsplib_tour" if kind == "TOUR" else ""
        raise ValueError(f"{p}: TYPE {kind!r} is not supported; only symmetric TSP (TYPE : TSP){hint}")
    raw_type = data.get("edge_weight_type")
    supported = ", ".join(SUPPORTED_EDGE_WEIGHT_TYPES)
    if raw_type is None:
        raise ValueError(f"{p}: no EDGE_WEIGHT_TYPE in the header; supported: {supported}")
    edge_weight_type = str(raw_type).strip().upper()
    if edge_weight_type not in SUPPORTED_EDGE_WEIGHT_TYPES:
        raise ValueError(f"{p}: unsupported EDGE_WEIGHT_TYPE {edge_weight_type!r}; supported: {supported}")

    coords = _node_coords(data.get("node_coord"), p)
    if coords.shape[0] != dimension:
        raise ValueError(
            f"{p}: DIMENSION {dimension} disagrees with the {coords.shape[0]} cities in NODE_COORD_SECTION"
        )
    coords = check_coordinates(coords, source=str(p))
    comment = data.get("comment")
    return TsplibInstance(
        name=str(data.get("name", p.stem)).strip(),
        coords=coords,
        edge_weight_type=edge_weight_type,
        optimum=optimum,
        comment=None if comment is None else str(comment),
        path=p,
    )


def _node_coords(section: object, p: Path) -> npt.NDArray[np.float64]:
    """vrplib's ``node_coord`` (rows without their index column) as float64 ``[n, 2]``, or a clear error."""
    if section is None:
        raise ValueError(f"{p}: no NODE_COORD_SECTION; geoattn reads TSPLIB files with city coordinates")
    if isinstance(section, list):  # vrplib keeps ragged sections as lists of rows
        lengths = sorted({len(row) + 1 for row in section})
        raise ValueError(f"{p}: NODE_COORD_SECTION rows have {lengths} fields; every row must be 'index x y'")
    array = np.asarray(section)
    if array.size == 0:
        raise ValueError(f"{p}: NODE_COORD_SECTION is empty; expected one 'index x y' row per city")
    if array.ndim != 2 or array.shape[1] != 2:
        fields = 2 if array.ndim == 1 else array.shape[1] + 1
        raise ValueError(f"{p}: NODE_COORD_SECTION rows have {fields} fields; every row must be 'index x y'")
    if not np.issubdtype(array.dtype, np.number):
        bad = next((str(v) for v in array.reshape(-1) if not _is_number(str(v))), str(array.dtype))
        raise ValueError(f"{p}: NODE_COORD_SECTION holds a non-numeric coordinate {bad!r}")
    return array.astype(np.float64)


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def read_tsplib_tour(path: str | os.PathLike[str], n: int | None = None) -> npt.NDArray[np.int64]:
    """Read a TSPLIB tour file (``.opt.tour``) as a 0-based ``[n]`` int64 permutation.

    The ``TOUR_SECTION`` lists the 1-based nodes (any number per line) and ends with ``-1`` or ``EOF``.

    Args:
        path: the tour file.
        n: the number of cities expected (the instance's); defaults to the file's ``DIMENSION``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: no ``TOUR_SECTION``, a non-integer entry, a ``DIMENSION`` that disagrees with the tour,
            or a tour that is not a permutation of ``1..n`` (the message says which nodes are wrong).
    """
    p = Path(path)
    text = read_text_file(p, what="TSPLIB tour file")
    lines = [line.strip() for line in text.splitlines()]
    try:
        start = next(i for i, line in enumerate(lines) if line.upper().startswith("TOUR_SECTION"))
    except StopIteration:
        raise ValueError(f"{p}: no TOUR_SECTION; expected a TSPLIB tour file") from None
    match = _DIMENSION.search("\n".join(lines[:start]))
    dimension = None
    if match is not None:
        try:
            dimension = int(match.group(1))
        except ValueError:
            raise ValueError(f"{p}: DIMENSION must be an integer, got {match.group(1)!r}") from None
    nodes: list[int] = []
    for token in " ".join(lines[start + 1 :]).split():
        if token.upper() == "EOF":
            break
        try:
            node = int(token)
        except ValueError:
            raise ValueError(f"{p}: TOUR_SECTION holds {token!r}; expected integer node numbers") from None
        if node == -1:
            break
        nodes.append(node)
    if dimension is not None and dimension != len(nodes):
        raise ValueError(f"{p}: DIMENSION {dimension} disagrees with the {len(nodes)} nodes in TOUR_SECTION")
    expected = len(nodes) if n is None else n
    return check_tour(np.array(nodes, dtype=np.int64) - 1, expected, name=f"{p} (0-based)")


def read_optima_csv(path: str | os.PathLike[str]) -> dict[str, float]:
    """Known optimal lengths from a CSV with ``name`` and ``optimal_length`` columns, by instance name."""
    p = Path(path)
    rows = list(csv.DictReader(read_text_file(p, what="optima CSV").splitlines()))
    if rows and not {"name", "optimal_length"} <= set(rows[0]):
        raise ValueError(f"{p}: expected columns 'name' and 'optimal_length', got {sorted(rows[0])}")
    try:
        return {row["name"]: float(row["optimal_length"]) for row in rows}
    except ValueError as exc:
        raise ValueError(f"{p}: optimal_length must be a number: {exc}") from None


def read_tsp_instance(path: str | os.PathLike[str], *, optimum: float | None = None) -> TsplibInstance:
    """A TSP instance from a ``.tsp`` (TSPLIB), ``.csv`` or ``.npy`` (coordinates) file.

    CSV and NPY coordinates get ``edge_weight_type=None`` (plain Euclidean float distances).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".tsp":
        return read_tsplib(p, optimum=optimum)
    if suffix in (".csv", ".npy"):
        return TsplibInstance(
            name=p.stem, coords=read_coordinates(p), edge_weight_type=None, optimum=optimum, path=p
        )
    raise ValueError(f"{p}: unsupported file type {suffix!r}; supported: .tsp (TSPLIB), .csv, .npy")
