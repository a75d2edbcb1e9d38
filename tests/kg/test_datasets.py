"""local_kg_dataset: the shared WN18RR / FB15k-237 files as PyKEEN datasets, full and tiny."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pykeen.datasets.base import PathDataset

from geoattn.kg import local_kg_dataset

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "kg"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"KG data not found under {DATA}")


def test_tiny_is_seeded_and_consistent() -> None:
    a = local_kg_dataset("FB15k-237", DATA, tiny=True, seed=3)
    b = local_kg_dataset("fb15k237", DATA, tiny=True, seed=3)
    assert a.training.num_triples == 500
    assert torch.equal(a.training.mapped_triples, b.training.mapped_triples)
    assert a.training.entity_to_id == b.training.entity_to_id
    assert a.testing.num_triples > 0
    # every entity and relation of valid/test occurs in the training slice
    train = a.training.mapped_triples
    for split in (a.testing, a.validation):
        assert split is not None
        assert split.entity_to_id is a.training.entity_to_id or split.entity_to_id == a.training.entity_to_id
        triples = split.mapped_triples
        assert torch.isin(triples[:, [0, 2]], train[:, [0, 2]]).all()
        assert torch.isin(triples[:, 1], train[:, 1]).all()


def test_full_dataset_is_a_path_dataset() -> None:
    dataset = local_kg_dataset("WN18RR", DATA)
    assert isinstance(dataset, PathDataset)
    # SOURCE.md: pykeen's protocol keeps 86,835 training triples and drops test triples with unseen entities
    assert dataset.training.num_triples == 86835
    assert dataset.testing.num_triples == 2924


def test_errors_name_the_argument(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset 'YAGO3-10'"):
        local_kg_dataset("YAGO3-10", DATA)
    with pytest.raises(FileNotFoundError, match=r"train\.txt"):
        local_kg_dataset("WN18RR", tmp_path)
    with pytest.raises(ValueError, match="num_triples"):
        local_kg_dataset("WN18RR", DATA, tiny=True, num_triples=0)
    with pytest.raises(ValueError, match="no test triples"):
        local_kg_dataset("WN18RR", DATA, tiny=True, num_entities=10)
