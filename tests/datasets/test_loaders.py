"""Dataset loaders on the shared graph files (``../shared/data/graphs``): statistics as SOURCE.md states them,
protocols, read-only roots, and errors that name the missing file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from geoattn.datasets import (
    DATA_ENV,
    copy_planetoid_raw,
    default_data_root,
    load_node_dataset,
    read_airport,
    read_disease,
)

SHARED = Path(os.environ.get(DATA_ENV) or Path(__file__).resolve().parents[3] / "shared" / "data" / "graphs")
needs_data = pytest.mark.skipif(
    not (SHARED / "airport").is_dir(), reason=f"graph data not found at {SHARED} (set {DATA_ENV})"
)


@needs_data
@pytest.mark.parametrize(
    ("name", "nodes", "edges", "features", "classes", "split"),
    [
        ("cora", 2708, 10556, 1433, 7, (140, 500, 1000)),
        ("citeseer", 3327, 9104, 3703, 6, (120, 500, 1000)),
        ("airport", 3188, 37261, 11, 4, (2232, 478, 478)),
        ("disease", 1044, 2086, 1044, 2, (748, 42, 254)),
    ],
)
def test_statistics_and_split_sizes(
    name: str, nodes: int, edges: int, features: int, classes: int, split: tuple[int, int, int]
) -> None:
    data = load_node_dataset(name, SHARED)
    assert data.num_nodes == nodes and data.edge_index.shape == (2, edges)
    assert data.x.shape == (nodes, features) and data.x.dtype == torch.float32
    assert data.y.dtype == torch.int64 and int(data.y.max()) + 1 == classes
    masks = (data.train_mask, data.val_mask, data.test_mask)
    assert tuple(int(m.sum()) for m in masks) == split
    assert (
        not (masks[0] & masks[1]).any()
        and not (masks[0] & masks[2]).any()
        and not (masks[1] & masks[2]).any()
    )


@needs_data
def test_airport_split_is_stratified_and_features_follow_hgcn() -> None:
    data = load_node_dataset("airport", SHARED)
    counts = torch.bincount(data.y)
    assert counts.tolist() == [521, 1443, 999, 225]
    for c, n in enumerate(counts.tolist()):
        assert int(data.test_mask[data.y == c].sum()) == round(0.15 * n)
    raw = np.load(SHARED / "airport" / "feats.npy")
    assert torch.equal(data.x[:, :4], torch.from_numpy(raw).float())
    assert torch.equal(data.x[:, 4:10].sum(1), torch.ones(3188))  # one-hot degree (capped at 5)
    assert torch.equal(data.x[:, 10], torch.ones(3188))
    assert load_node_dataset("airport", SHARED, features="raw").x.shape == (3188, 4)
    other = load_node_dataset("airport", SHARED, split_seed=0)
    assert not torch.equal(other.test_mask, data.test_mask)


@needs_data
def test_disease_is_a_tree_with_identity_or_degree_features() -> None:
    data = read_disease(SHARED / "disease_nc")
    assert torch.equal(data.x, torch.eye(1044))
    children = data.edge_index[1][data.edge_index[0] < data.edge_index[1]]
    assert data.edge_index.shape[1] == 2 * 1043 and 0 not in set(children.tolist())
    assert torch.bincount(data.y).tolist() == [833, 211]
    degree = read_disease(SHARED / "disease_nc", features="degree").x
    assert degree.shape == (1044, 7) and torch.equal(degree[:, :6].sum(1), torch.ones(1044))


@needs_data
def test_planetoid_from_a_read_only_root_and_into_a_cache(tmp_path: Path) -> None:
    # SHARED is read-only: the loader copies the raw files to a temporary folder and removes it after.
    assert load_node_dataset("cora", SHARED).num_nodes == 2708
    data = load_node_dataset("cora", SHARED, cache_dir=tmp_path / "cache")
    assert data.num_nodes == 2708 and (tmp_path / "cache" / "Cora" / "processed").is_dir()
    assert torch.allclose(data.x.sum(1), torch.ones(2708))  # row-normalised
    assert load_node_dataset("cora", SHARED, features="raw").x.max() == 1.0


@needs_data
def test_nothing_is_written_under_the_data_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(SHARED / "planetoid" / "Cora" / "raw", root / "planetoid" / "Cora" / "raw")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))  # writable, but the loader must not write
    assert load_node_dataset("cora", root).num_nodes == 2708
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"airport.*edges\.csv is missing; expected 'i,j'"):
        read_airport(tmp_path)
    (tmp_path / "disease_nc.edges.csv").write_text("0,1\n0,2\n")
    with pytest.raises(FileNotFoundError, match=r"disease_nc\.labels\.npy is missing"):
        read_disease(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"raw files missing: .*ind\.cora\.x"):
        copy_planetoid_raw(tmp_path, tmp_path / "out", "cora")


def test_disease_reader_numbers_nodes_by_first_appearance(tmp_path: Path) -> None:
    (tmp_path / "disease_nc.edges.csv").write_text("7,3\n7,9\n3,4\n")  # keys 7, 3, 9, 4 -> 0, 1, 2, 3
    np.save(tmp_path / "disease_nc.labels.npy", np.array([1.0, 0.0, 0.0, 1.0]))
    data = read_disease(tmp_path)
    assert sorted(map(tuple, data.edge_index.t().tolist())) == [
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 3),
        (2, 0),
        (3, 1),
    ]
    np.save(tmp_path / "disease_nc.labels.npy", np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="one label per node"):
        read_disease(tmp_path)


def test_names_features_and_the_default_root(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="name must be one of"):
        load_node_dataset("pubmed", tmp_path)
    with pytest.raises(ValueError, match="features for disease must be one of"):
        load_node_dataset("disease", tmp_path, features="hgcn")
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert default_data_root() == tmp_path
    monkeypatch.delenv(DATA_ENV)
    assert default_data_root() == Path("data/graphs")


@needs_data
def test_airport_reader_rejects_ids_out_of_range(tmp_path: Path) -> None:
    for f in ("feats.npy", "labels.npy"):
        shutil.copyfile(SHARED / "airport" / f, tmp_path / f)
    (tmp_path / "edges.csv").write_text("0,1\n2,5000\n")
    with pytest.raises(ValueError, match=r"outside \[0, 3188\)"):
        read_airport(tmp_path)
