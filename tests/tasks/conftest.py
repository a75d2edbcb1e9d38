"""Fixtures of the task tests: the shared TSPLIB sample (``../shared/data/tsplib`` beside the repository)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

TSPLIB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "tsplib"


@pytest.fixture(scope="session")
def tsplib_dir() -> Path:
    """The folder of the shared TSPLIB sample; the test is skipped where it is missing."""
    if not (TSPLIB / "optimal.csv").is_file():
        pytest.skip(f"TSPLIB sample not found at {TSPLIB}")
    return TSPLIB


@pytest.fixture(scope="session")
def tsplib_optima(tsplib_dir: Path) -> list[dict[str, str]]:
    """The rows of ``optimal.csv`` (name, n, edge_weight_type, optimal_length), read with ``csv`` only."""
    with (tsplib_dir / "optimal.csv").open() as f:
        return list(csv.DictReader(f))
