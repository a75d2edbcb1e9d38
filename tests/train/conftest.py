"""Fixtures for the training tests: composing the packaged configs, with tiny sizes so runs take milliseconds."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

import geoattn.train  # noqa: F401  (registers the structured configs)

# Loop settings for every task.
TINY = [
    "trainer.val_every=1",
    "trainer.ckpt_every=1",
    "trainer.log_every=1",
    "trainer.progress_bar=false",
    "trainer.device=cpu",
]
# For the tree-embedding task (applied when the composed data config has `num_nodes`): a tiny tree
# (1 + 3 + 9 = 13 nodes, 78 pairs) in batches of 32: 3 batches per epoch, the last one short.
TINY_TREE = ["data.num_nodes=13", "data.batch_size=32"]

# The graph datasets of the node-classification task (read-only; loaders copy what they must write).
SHARED_GRAPHS = Path(__file__).resolve().parents[3] / "shared" / "data" / "graphs"


@pytest.fixture(autouse=True)
def graph_data_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point ``$GEOATTN_DATA`` at ``../shared/data/graphs`` unless it is set already."""
    if not os.environ.get("GEOATTN_DATA") and SHARED_GRAPHS.is_dir():
        monkeypatch.setenv("GEOATTN_DATA", str(SHARED_GRAPHS))


@pytest.fixture
def compose_train() -> Callable[..., DictConfig]:
    """``compose_train(*overrides, tiny=True)``: the root ``train`` config with ``TINY`` (and ``TINY_TREE`` for
    the tree task) and ``overrides``."""

    def _compose(*overrides: str, tiny: bool = True) -> DictConfig:
        with initialize_config_module(config_module="geoattn.configs", version_base="1.3"):
            if not tiny:
                return compose(config_name="train", overrides=list(overrides))
            cfg = compose(config_name="train", overrides=[*TINY, *overrides])
            if "num_nodes" in cfg.data:
                cfg = compose(config_name="train", overrides=[*TINY, *TINY_TREE, *overrides])
            return cfg

    return _compose
