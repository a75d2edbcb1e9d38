"""Link-prediction datasets from local files: the WN18RR and FB15k-237 splits without downloads.

The files are laid out as ``<root>/<WN18RR|FB15k-237>/{train,valid,test}.txt`` (one tab-separated
``head relation tail`` triple per line), e.g. ``root = ../shared/data/kg`` beside the repository.
The full datasets use PyKEEN's :class:`~pykeen.datasets.PathDataset`: entities are indexed from the training
split and valid/test triples with an entity unseen in training are dropped (PyKEEN's protocol).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from pykeen.datasets.base import Dataset, EagerDataset, PathDataset
from pykeen.triples import TriplesFactory
from pykeen.triples.utils import load_triples

__all__ = ["LOCAL_KG_DATASETS", "local_kg_dataset"]

#: Accepted dataset names (case-insensitive, ``-``/``_`` ignored) -> folder name under the root.
LOCAL_KG_DATASETS = {"wn18rr": "WN18RR", "fb15k237": "FB15k-237"}
_SPLITS = ("train", "valid", "test")


def _folder(name: str, root: str | Path) -> Path:
    if not isinstance(name, str):
        raise TypeError(f"local_kg_dataset: name must be a str, got {type(name).__name__}")
    key = name.lower().replace("-", "").replace("_", "")
    if key not in LOCAL_KG_DATASETS:
        raise ValueError(f"local_kg_dataset: unknown dataset {name!r}; accepted: WN18RR, FB15k-237")
    folder = Path(root) / LOCAL_KG_DATASETS[key]
    missing = [split for split in _SPLITS if not (folder / f"{split}.txt").is_file()]
    if missing:
        raise FileNotFoundError(
            f"local_kg_dataset: root={str(root)!r} lacks {', '.join(f'{s}.txt' for s in missing)} in {folder}"
        )
    return folder


def _tiny_splits(
    folder: Path, num_entities: int, num_triples: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labeled triples of a tiny, consistent slice: the ``num_entities`` entities of highest training degree
    (ties broken by a seeded permutation), ``num_triples`` of the training triples among them (seeded), and the
    valid/test triples whose entities and relation occur in that training slice."""
    rng = np.random.default_rng(seed)
    train, valid, test = (load_triples(folder / f"{split}.txt") for split in _SPLITS)
    degree = Counter(train[:, 0].tolist() + train[:, 2].tolist())
    labels = sorted(degree)
    order = rng.permutation(len(labels))
    # stable sort by degree (descending) of a seeded permutation: ties are broken by the seed
    ranked = sorted((labels[i] for i in order), key=lambda e: -degree[e])
    keep = np.asarray(ranked[:num_entities])
    inside = np.isin(train[:, 0], keep) & np.isin(train[:, 2], keep)
    rows = np.flatnonzero(inside)
    if len(rows) > num_triples:
        rows = np.sort(rng.choice(rows, size=num_triples, replace=False))
    small = train[rows]
    entities = np.union1d(small[:, 0], small[:, 2])
    relations = np.unique(small[:, 1])

    def restrict(triples: np.ndarray) -> np.ndarray:
        mask = (
            np.isin(triples[:, 0], entities)
            & np.isin(triples[:, 2], entities)
            & np.isin(triples[:, 1], relations)
        )
        return triples[mask]

    return small, restrict(valid), restrict(test)


def local_kg_dataset(
    name: str,
    root: str | Path,
    *,
    tiny: bool = False,
    num_entities: int = 100,
    num_triples: int = 500,
    seed: int = 0,
    create_inverse_triples: bool = False,
) -> Dataset:
    """A PyKEEN dataset read from ``<root>/<name>/{train,valid,test}.txt``.

    Args:
        name: ``"WN18RR"`` or ``"FB15k-237"`` (case-insensitive; ``"fb15k237"`` works too).
        root: the folder holding the dataset folders, e.g. ``../shared/data/kg``.
        tiny: a small slice for tests and smoke runs instead of the full dataset (default ``False``): the
            ``num_entities`` entities of highest training degree, ``num_triples`` training triples among them,
            and the valid/test triples whose entities and relation occur in those training triples.
        num_entities: entities considered for the tiny slice (default ``100``).
        num_triples: training triples of the tiny slice at most (default ``500``).
        seed: seed of the tiny slice's tie-breaking and sampling (default ``0``).
        create_inverse_triples: passed to PyKEEN's triples factories (default ``False``).

    Returns:
        a :class:`~pykeen.datasets.PathDataset` (full) or :class:`~pykeen.datasets.EagerDataset` (tiny).

    Raises:
        ValueError: for an unknown name, non-positive sizes, or a tiny slice whose test split is empty.
        FileNotFoundError: when a split file is missing under ``root``.
    """
    folder = _folder(name, root)
    if not tiny:
        return PathDataset(
            training_path=folder / "train.txt",
            testing_path=folder / "test.txt",
            validation_path=folder / "valid.txt",
            create_inverse_triples=create_inverse_triples,
        )
    for arg, value in (("num_entities", num_entities), ("num_triples", num_triples)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ValueError(f"local_kg_dataset: {arg} must be an int >= 2, got {value!r}")
    train, valid, test = _tiny_splits(folder, num_entities, num_triples, seed)
    if len(test) == 0:
        raise ValueError(
            f"local_kg_dataset: the tiny slice of {name} with num_entities={num_entities}, "
            f"num_triples={num_triples} has no test triples; increase num_entities"
        )
    training = TriplesFactory.from_labeled_triples(train, create_inverse_triples=create_inverse_triples)

    def factory(split: np.ndarray) -> TriplesFactory:
        return TriplesFactory.from_labeled_triples(
            split,
            entity_to_id=training.entity_to_id,
            relation_to_id=training.relation_to_id,
            create_inverse_triples=create_inverse_triples,
        )

    validation = factory(valid) if len(valid) else None
    return EagerDataset(training, factory(test), validation, metadata=dict(name=f"{folder.name}-tiny"))
