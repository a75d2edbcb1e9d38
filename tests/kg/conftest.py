"""Fixtures of the KG tests: tiny FB15k-237 slices of the shared data (skipped where the data is missing)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pykeen.datasets.base import Dataset

from geoattn.kg import local_kg_dataset

KG_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "kg"


def _tiny(create_inverse_triples: bool) -> Dataset:
    if not (KG_DATA / "FB15k-237" / "train.txt").is_file():
        pytest.skip(f"FB15k-237 not found under {KG_DATA}")
    return local_kg_dataset("FB15k-237", KG_DATA, tiny=True, create_inverse_triples=create_inverse_triples)


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    """The default tiny slice (100 densest entities, 500 training triples), without inverse triples."""
    return _tiny(create_inverse_triples=False)


@pytest.fixture(scope="module")
def tiny_inverse() -> Dataset:
    """The same slice with inverse triples (head prediction through score_t of the inverse relation)."""
    return _tiny(create_inverse_triples=True)
