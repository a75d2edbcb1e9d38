"""City coordinates at the boundary: validation, duplicates, and reading CSV / NPY files.

Every file reader in :mod:`geoattn.tasks` ends in :func:`check_coordinates`, so bad input fails the same way
wherever it comes from: the message names the source, the value and what is accepted.

Accepted coordinates: a finite ``[n, 2]`` array with ``MIN_CITIES <= n <= MAX_CITIES``. Duplicate
coordinates are *accepted*, silently: two cities at the same place are a valid instance (TSPLIB's a280 has
one such pair); every tour is still a permutation of all cities, the two just sit at distance 0 from each
other (1 under TSPLIB's ``GEO`` rule). :func:`duplicate_groups` lists them for callers that want to report them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_CITIES",
    "MAX_FILE_BYTES",
    "MIN_CITIES",
    "check_coordinates",
    "duplicate_groups",
    "read_coordinates",
    "read_text_file",
]

#: Fewest cities of a TSP instance (a tour of 1 or 2 cities is trivial, and most solvers reject it).
MIN_CITIES: Final = 3
#: Most cities accepted from a file: above TSPLIB's largest symmetric instance (pla85900), far below what
#: would exhaust memory. Larger inputs are refused before anything of their size is allocated.
MAX_CITIES: Final = 100_000
#: Largest input file read (bytes): a 100,000-city coordinate file is a few MB.
MAX_FILE_BYTES: Final = 64 * 2**20


def duplicate_groups(coords: npt.ArrayLike) -> list[list[int]]:
    """Groups of (0-based) city indices with identical coordinates, each sorted, in order of first index.

    Args:
        coords: ``[n, 2]`` coordinates.

    Returns:
        One list per set of two or more cities at the same point; empty when all points are distinct.
    """
    c = np.ascontiguousarray(coords, dtype=np.float64)
    _, inverse, counts = np.unique(c, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    groups = [np.flatnonzero(inverse == g).tolist() for g in np.flatnonzero(counts > 1)]
    return sorted(groups, key=lambda g: g[0])


def check_coordinates(coords: npt.ArrayLike, *, source: str = "coordinates") -> npt.NDArray[np.float64]:
    """Validate city coordinates and return them as a float64 ``[n, 2]`` array.

    Args:
        coords: ``[n, 2]`` numbers.
        source: what the coordinates came from (a file name), used in messages.

    Returns:
        A float64 ``[n, 2]`` copy.

    Raises:
        ValueError: not a numeric ``[n, 2]`` array; fewer than :data:`MIN_CITIES` or more than
            :data:`MAX_CITIES` cities; a NaN or infinite coordinate (the message names the first city).
    """
    try:
        c = np.array(coords, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: coordinates must be numbers, got {exc}") from None
    if c.ndim != 2 or c.shape[1] != 2:
        raise ValueError(f"{source}: coordinates must have shape [n, 2] (x, y per city), got {c.shape}")
    n = c.shape[0]
    if n < MIN_CITIES:
        raise ValueError(f"{source}: a TSP instance needs at least {MIN_CITIES} cities, got {n}")
    if n > MAX_CITIES:
        raise ValueError(f"{source}: {n} cities is more than the {MAX_CITIES} accepted")
    bad = ~np.isfinite(c).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{source}: coordinates must be finite; {int(bad.sum())} cities have NaN or infinite "
            f"coordinates, first city {first} (0-based) at {c[first].tolist()}"
        )
    return c


def read_text_file(path: str | os.PathLike[str], *, what: str) -> str:
    """The UTF-8 text of ``path``, with clear errors for a missing, oversized, binary or unreadable file.

    Args:
        path: the file.
        what: what the file should be (``"TSPLIB file"``), used in messages.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {p}")
    size = p.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{p}: {size} bytes is larger than the {MAX_FILE_BYTES} accepted for a {what}")
    try:
        return p.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{p}: not a text file (not UTF-8); expected a {what}") from None
    except OSError as exc:
        raise ValueError(f"{p}: cannot read the {what}: {exc}") from None


def read_coordinates(path: str | os.PathLike[str]) -> npt.NDArray[np.float64]:
    """City coordinates from a ``.csv`` or ``.npy`` file, validated by :func:`check_coordinates`.

    - ``.csv``: one city per row, ``x,y``; an optional header row (any non-numeric first row) is skipped.
    - ``.npy``: a numeric ``[n, 2]`` array (loaded with ``allow_pickle=False``).

    Returns:
        float64 ``[n, 2]``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: another suffix, a malformed file, or coordinates :func:`check_coordinates` refuses.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".npy"):
        raise ValueError(
            f"{p}: unsupported coordinate file type {suffix!r}; supported: .csv, .npy (and .tsp)"
        )
    if suffix == ".npy":
        if not p.is_file():
            raise FileNotFoundError(f"coordinate file not found: {p}")
        if p.stat().st_size > MAX_FILE_BYTES:
            raise ValueError(f"{p}: larger than the {MAX_FILE_BYTES} bytes accepted for a coordinate file")
        try:
            array = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"{p}: not a readable .npy array: {exc}") from None
        if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.number):
            raise ValueError(
                f"{p}: expected a numeric [n, 2] array, got dtype {getattr(array, 'dtype', None)}"
            )
        return check_coordinates(array, source=str(p))
    rows = [line.strip() for line in read_text_file(p, what="coordinate CSV file").splitlines()]
    rows = [r for r in rows if r]
    if rows and not _is_numeric_row(rows[0]):
        rows = rows[1:]  # header
    values: list[list[float]] = []
    for number, row in enumerate(rows, start=1):
        fields = [f.strip() for f in row.split(",")]
        if len(fields) != 2 or not _is_numeric_row(row):
            raise ValueError(
                f"{p}: data row {number} is {row!r}; every row must be 'x,y' (two numbers separated by a comma)"
            )
        values.append([float(f) for f in fields])
    if not values:
        raise ValueError(f"{p}: no coordinates; expected rows 'x,y'")
    return check_coordinates(np.array(values, dtype=np.float64), source=str(p))


def _is_numeric_row(row: str) -> bool:
    try:
        [float(f) for f in row.split(",")]
    except ValueError:
        return False
    return True
