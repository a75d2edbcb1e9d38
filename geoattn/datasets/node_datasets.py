"""Node-classification datasets by name, with the split protocol of each, from one data root.

The data root (argument ``root``; default: the environment variable ``GEOATTN_DATA``, else ``data/graphs``
relative to the working directory) is laid out as ``shared/data/graphs``::

    <root>/planetoid/Cora/raw/ind.cora.*          PyG's Planetoid layout (may be read-only, see below)
    <root>/planetoid/CiteSeer/raw/ind.citeseer.*
    <root>/airport/{edges.csv,feats.npy,labels.npy}
    <root>/disease_nc/{disease_nc.edges.csv,disease_nc.labels.npy}

Protocols (``split_seed`` fixes the Airport and Disease splits; it is HGCN's default, 1234):

========  ==================================================  ==================================================
name      split                                               features (default)
========  ==================================================  ==================================================
cora      Planetoid public split: 140 / 500 / 1,000           1,433 bag-of-words, row-normalised
citeseer  Planetoid public split: 120 / 500 / 1,000           3,703 bag-of-words, row-normalised
airport   stratified 70 / 15 / 15 per class: 2,232 / 478 /    4 + HGCN's one-hot degree and constant = 11
          478 (HGCN's released split is 70/15/15 on paper
          but leaks test nodes into train for 4 classes)
disease   HGCN's balanced split (val 10 %, test 60 % of the   identity (1,044): HGCN's feature file is
          smaller class, per class): 748 / 42 / 254           unavailable (HGCN's ``--use-feats 0``)
========  ==================================================  ==================================================

Planetoid graphs load through :class:`torch_geometric.datasets.Planetoid`, which writes a ``processed``
folder next to ``raw``. Nothing is ever written under ``<root>`` when it holds the raw files (it may be a
shared copy, and permissions do not stop a root user): they are copied to ``cache_dir`` (processed once,
reused later) or, without one, to a temporary folder removed after loading (processing Cora takes a
fraction of a second). Only when ``<root>/planetoid/<Name>/raw`` is missing does PyG download into
``cache_dir``, or else into ``<root>/planetoid``, as PyG normally does.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from torch_geometric.data import Data

from .hgcn import read_airport, read_disease
from .planetoid import load_planetoid, planetoid_name
from .splits import stratified_split

__all__ = ["DATA_ENV", "DEFAULT_SPLIT_SEED", "NODE_DATASETS", "default_data_root", "load_node_dataset"]

#: Environment variable naming the data root.
DATA_ENV = "GEOATTN_DATA"
#: HGCN's default ``split_seed``.
DEFAULT_SPLIT_SEED = 1234
#: Dataset name -> accepted ``features`` values (the first is the default).
NODE_DATASETS: dict[str, tuple[str, ...]] = {
    "cora": ("normalized", "raw"),
    "citeseer": ("normalized", "raw"),
    "airport": ("hgcn", "raw"),
    "disease": ("identity", "degree"),
}


def default_data_root() -> Path:
    """``$GEOATTN_DATA`` if set (and non-empty), else ``data/graphs`` (relative to the working directory)."""
    return Path(os.environ.get(DATA_ENV) or "data/graphs")


def _planetoid(name: str, root: Path, cache_dir: Path | None, normalize: bool) -> Data:
    source = root / "planetoid"
    has_raw = (source / planetoid_name(name) / "raw").is_dir()
    if cache_dir is not None:
        return load_planetoid(
            name, cache_dir, raw_source=source if has_raw else None, normalize_features=normalize
        )
    if not has_raw:  # PyG's normal path: download into the data root
        return load_planetoid(name, source, normalize_features=normalize)
    with tempfile.TemporaryDirectory(prefix="geoattn-planetoid-") as tmp:
        return load_planetoid(name, tmp, raw_source=source, normalize_features=normalize)


def load_node_dataset(
    name: str,
    root: str | os.PathLike[str] | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    split_seed: int = DEFAULT_SPLIT_SEED,
    features: str | None = None,
) -> Data:
    """Load a node-classification graph with its split masks (protocols in the module docstring).

    Args:
        name: ``"cora"``, ``"citeseer"``, ``"airport"`` or ``"disease"``.
        root: the data root; ``None``: :func:`default_data_root`. (default: ``None``)
        cache_dir: a writable folder for PyG's Planetoid files (raw copies, processed files, downloads);
            ``None``: a temporary folder, or ``<root>/planetoid`` for a download. Unused for Airport and
            Disease. (default: ``None``)
        split_seed: seed of the Airport and Disease splits (Planetoid's split is fixed).
            (default: ``1234``)
        features: one of ``NODE_DATASETS[name]``; ``None``: the first (the default). (default: ``None``)

    Returns:
        ``Data(x [N, F] float32, edge_index [2, E] (both directions), y [N] int64, train_mask, val_mask,
        test_mask [N] bool)``.

    Raises:
        ValueError: unknown ``name`` or ``features``.
        FileNotFoundError: a data file is missing (the message names the path and what it should hold).
    """
    if name not in NODE_DATASETS:
        raise ValueError(f"load_node_dataset: name must be one of {sorted(NODE_DATASETS)}, got {name!r}")
    choices = NODE_DATASETS[name]
    chosen = choices[0] if features is None else features
    if chosen not in choices:
        raise ValueError(f"load_node_dataset: features for {name} must be one of {choices}, got {features!r}")
    base = default_data_root() if root is None else Path(root)
    cache = None if cache_dir is None else Path(cache_dir)
    if name in ("cora", "citeseer"):
        return _planetoid(name, base, cache, chosen == "normalized")
    if name == "airport":
        data = read_airport(base / "airport", features="hgcn" if chosen == "hgcn" else "raw")
        masks = stratified_split(data.y, 0.15, 0.15, seed=split_seed)
    else:
        data = read_disease(base / "disease_nc", features="identity" if chosen == "identity" else "degree")
        masks = stratified_split(data.y, 0.10, 0.60, seed=split_seed, balanced=True)
    data.train_mask, data.val_mask, data.test_mask = masks
    return data
