"""Planetoid citation graphs (Cora, CiteSeer, PubMed) through PyG's own loader, with an offline option.

:func:`load_planetoid` is ``torch_geometric.datasets.Planetoid(root=..., name=...)`` with its public split
(20 labelled nodes per class, 500 validation and 1,000 test nodes; Yang et al. 2016): with internet it
downloads the raw files into ``root`` as usual. Offline, point ``raw_source`` at a folder that already holds
``<Name>/raw/ind.<name>.*`` (for example a read-only shared copy): the raw files are copied into the
writable ``root`` first (:func:`copy_planetoid_raw`), and PyG processes them there without a download.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from torch_geometric.data import Data
from torch_geometric.datasets import Planetoid
from torch_geometric.transforms import NormalizeFeatures

__all__ = ["PLANETOID_NAMES", "RAW_SUFFIXES", "copy_planetoid_raw", "load_planetoid", "planetoid_name"]

#: Lower-case name -> the spelling PyG uses for the folder and the ``name`` argument.
PLANETOID_NAMES: dict[str, str] = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}

#: The eight raw files PyG reads, ``ind.<name>.<suffix>``.
RAW_SUFFIXES: tuple[str, ...] = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


def planetoid_name(name: str) -> str:
    """PyG's spelling (``"Cora"``, ``"CiteSeer"``, ``"PubMed"``) of a Planetoid name in any case."""
    try:
        return PLANETOID_NAMES[name.lower()]
    except KeyError:
        raise ValueError(
            f"planetoid: name must be one of {sorted(PLANETOID_NAMES)} (any case), got {name!r}"
        ) from None


def copy_planetoid_raw(source: str | os.PathLike[str], root: str | os.PathLike[str], name: str) -> Path:
    """Copy ``source/<Name>/raw/ind.<name>.*`` into ``root/<Name>/raw`` (files already there are kept).

    Args:
        source: a folder laid out as PyG's Planetoid root (may be read-only).
        root: a writable folder, the ``root`` to pass to :class:`~torch_geometric.datasets.Planetoid`.
        name: ``"cora"``, ``"citeseer"`` or ``"pubmed"`` (any case).

    Returns:
        The destination raw folder.

    Raises:
        FileNotFoundError: a raw file is missing from ``source``; the message names every missing path.
    """
    proper = planetoid_name(name)
    src = Path(source) / proper / "raw"
    dst = Path(root) / proper / "raw"
    files = [f"ind.{proper.lower()}.{suffix}" for suffix in RAW_SUFFIXES]
    missing = [str(src / f) for f in files if not (src / f).is_file() and not (dst / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"planetoid {proper}: raw files missing: {missing}; expected the 8 files "
            f"ind.{proper.lower()}.{{{','.join(RAW_SUFFIXES)}}} of the Planetoid release in {src}"
        )
    dst.mkdir(parents=True, exist_ok=True)
    for f in files:
        if not (dst / f).is_file():
            shutil.copyfile(src / f, dst / f)
    return dst


def load_planetoid(
    name: str,
    root: str | os.PathLike[str],
    *,
    raw_source: str | os.PathLike[str] | None = None,
    normalize_features: bool = True,
) -> Data:
    """One Planetoid graph with its public split, loaded by :class:`torch_geometric.datasets.Planetoid`.

    Args:
        name: ``"cora"``, ``"citeseer"`` or ``"pubmed"`` (any case).
        root: PyG's writable dataset root (``root/<Name>/raw`` and ``root/<Name>/processed``).
        raw_source: a folder with ``<Name>/raw`` to copy the raw files from first (offline use); ``None``
            lets PyG find them in ``root`` or download them. (default: ``None``)
        normalize_features: divide each feature row by its sum (PyG's ``NormalizeFeatures``, as GCN and
            GAT do). (default: ``True``)

    Returns:
        ``Data(x [N, F] float32, edge_index [2, E], y [N], train_mask, val_mask, test_mask [N] bool)``.
    """
    proper = planetoid_name(name)
    if raw_source is not None:
        copy_planetoid_raw(raw_source, root, proper)
    data = Planetoid(root=str(root), name=proper)[0]
    if normalize_features:
        data = NormalizeFeatures()(data)
    return data
