r"""Readers for the HGCN node-classification benchmarks Airport and Disease (Chami et al. 2019,
"Hyperbolic Graph Convolutional Neural Networks", arXiv:1910.12933), from plain files (no pickles).

Expected files (the layout of ``shared/data/graphs``; see its ``SOURCE.md`` for provenance):

- ``airport/edges.csv`` (``i,j`` per undirected edge, node ids ``0..N-1``), ``airport/feats.npy``
  (``[N, 4]`` float: latitude/90, longitude/180, altitude/3000 ft, country GDP), ``airport/labels.npy``
  (``[N]`` int, 4 classes binned from the country's population): 3,188 nodes, 18,631 edges (one self-loop).
- ``disease_nc/disease_nc.edges.csv`` (``u,v`` per line, a tree rooted at node 0),
  ``disease_nc/disease_nc.labels.npy`` (``[N]`` 0./1. floats): 1,044 nodes, 1,043 edges. HGCN's feature
  file ``disease_nc.feats.npz`` is not used (it is not available here): node features are the identity
  (HGCN's ``--use-feats 0``) or structural.

Features:

- Airport ``"hgcn"`` (default): the 4 columns, then HGCN's ``augment``: a one-hot node degree capped at 5
  (6 columns) and a constant column, 11 in all. HGCN also row-normalises the 4 columns first
  (``normalize_feats=1``, dividing by row sums as small as 0.003 here); that step is left out.
  ``"raw"``: the 4 columns only.
- Disease ``"identity"`` (default): :math:`I_N`, one learnable input row per node. ``"degree"``: the one-hot
  degree capped at 5 and a constant column (7 columns), as ``augment`` builds them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch_geometric.data import Data
from torch_geometric.utils import degree, to_undirected

__all__ = ["AirportFeatures", "DiseaseFeatures", "degree_features", "read_airport", "read_disease"]

AirportFeatures = Literal["hgcn", "raw"]
DiseaseFeatures = Literal["identity", "degree"]


def _require(path: Path, what: str, dataset: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(f"{dataset}: {path} is missing; expected {what}")
    return path


def _read_edges(path: Path, dataset: str) -> np.ndarray:
    """``[E, 2]`` int64 from a headerless ``a,b`` CSV."""
    try:
        edges = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as e:
        raise ValueError(f"{dataset}: {path} must hold two integer node ids per line ('i,j'): {e}") from e
    if edges.ndim != 2 or edges.shape[1] != 2 or edges.shape[0] == 0:
        raise ValueError(
            f"{dataset}: {path} must hold two integer node ids per line ('i,j'), got {edges.shape}"
        )
    return edges


def degree_features(edge_index: torch.Tensor, num_nodes: int, cap: int = 5) -> torch.Tensor:
    """HGCN's structural features: ``[N, cap + 2]``, the one-hot degree (``min(deg, cap)``) and a 1.

    The degree counts each undirected neighbour once (a self-loop counts once), as HGCN's adjacency row sums.
    """
    deg = degree(edge_index[0], num_nodes, dtype=torch.long).clamp_max(cap)
    onehot = torch.nn.functional.one_hot(deg, cap + 1).to(torch.float32)
    return torch.cat([onehot, torch.ones(num_nodes, 1)], dim=1)


def read_airport(folder: str | os.PathLike[str], *, features: AirportFeatures = "hgcn") -> Data:
    """Read Airport from ``folder`` (``edges.csv``, ``feats.npy``, ``labels.npy``); no split.

    Args:
        folder: the ``airport`` folder.
        features: ``"hgcn"`` (4 columns + one-hot degree + constant, 11) or ``"raw"`` (4); see the module
            docstring. (default: ``"hgcn"``)

    Returns:
        ``Data(x [3188, F] float32, edge_index [2, 37261] (both directions), y [3188] int64)``.

    Raises:
        FileNotFoundError: a file is missing (the message names it and its expected content).
        ValueError: inconsistent shapes or node ids out of range.
    """
    if features not in ("hgcn", "raw"):
        raise ValueError(f"airport: features must be 'hgcn' or 'raw', got {features!r}")
    root = Path(folder)
    edges = _read_edges(
        _require(root / "edges.csv", "'i,j' lines, one per undirected edge (node ids 0..N-1)", "airport"),
        "airport",
    )
    feats = np.load(_require(root / "feats.npy", "a float array [N, 4] of node features", "airport"))
    labels = np.load(_require(root / "labels.npy", "an int array [N] of classes 0..3", "airport"))
    if feats.ndim != 2 or labels.shape != (feats.shape[0],):
        raise ValueError(
            f"airport: feats.npy must be [N, F] and labels.npy [N], got {feats.shape} and {labels.shape}"
        )
    n = feats.shape[0]
    if edges.min() < 0 or edges.max() >= n:
        raise ValueError(f"airport: edges.csv holds node ids outside [0, {n}): {edges.min()}..{edges.max()}")
    edge_index = to_undirected(torch.from_numpy(edges.T.copy()), num_nodes=n)
    x = torch.from_numpy(feats).to(torch.float32)
    if features == "hgcn":
        x = torch.cat([x, degree_features(edge_index, n)], dim=1)
    return Data(x=x, edge_index=edge_index, y=torch.from_numpy(labels.astype(np.int64)))


def read_disease(folder: str | os.PathLike[str], *, features: DiseaseFeatures = "identity") -> Data:
    """Read Disease (``disease_nc``) from ``folder``; no split.

    Nodes are numbered in order of first appearance in ``disease_nc.edges.csv``, as HGCN numbers them (for
    the released file this is the numeric id), and row ``i`` of ``disease_nc.labels.npy`` is node ``i``.

    Args:
        folder: the ``disease_nc`` folder.
        features: ``"identity"`` (``[N, N]``) or ``"degree"`` (``[N, 7]``). (default: ``"identity"``)

    Returns:
        ``Data(x, edge_index [2, 2086], y [1044] int64)``.

    Raises:
        FileNotFoundError: a file is missing (the message names it and its expected content).
        ValueError: the label count differs from the node count, or labels are not integers.
    """
    if features not in ("identity", "degree"):
        raise ValueError(f"disease: features must be 'identity' or 'degree', got {features!r}")
    root = Path(folder)
    edges = _read_edges(
        _require(root / "disease_nc.edges.csv", "'u,v' lines, one per undirected tree edge", "disease"),
        "disease",
    )
    labels = np.load(_require(root / "disease_nc.labels.npy", "an array [N] of 0/1 labels", "disease"))
    keys, first = np.unique(edges.reshape(-1), return_index=True)
    order = keys[np.argsort(first, kind="stable")]  # node keys in order of first appearance
    lookup = {int(key): i for i, key in enumerate(order)}
    relabelled = np.vectorize(lookup.__getitem__, otypes=[np.int64])(edges)
    n = len(order)
    if labels.shape != (n,):
        raise ValueError(
            f"disease: disease_nc.labels.npy must have one label per node ({n}), got shape {labels.shape}"
        )
    if not np.array_equal(labels, np.round(labels)):
        raise ValueError("disease: disease_nc.labels.npy must hold integer class labels")
    edge_index = to_undirected(torch.from_numpy(relabelled.T.copy()), num_nodes=n)
    x = torch.eye(n) if features == "identity" else degree_features(edge_index, n)
    return Data(x=x, edge_index=edge_index, y=torch.from_numpy(labels.astype(np.int64)))
