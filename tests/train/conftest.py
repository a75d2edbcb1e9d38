"""Fixtures for the training tests: composing the packaged configs, with tiny sizes so runs take milliseconds."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

import geoattn.train  # noqa: F401  (registers the structured configs)

# A tiny tree (1 + 3 + 9 = 13 nodes, 78 pairs) in batches of 32: 3 batches per epoch, the last one short.
TINY = [
    "data.num_nodes=13",
    "data.batch_size=32",
    "trainer.val_every=1",
    "trainer.ckpt_every=1",
    "trainer.log_every=1",
    "trainer.progress_bar=false",
    "trainer.device=cpu",
]


@pytest.fixture
def compose_train() -> Callable[..., DictConfig]:
    """``compose_train(*overrides, tiny=True)``: the root ``train`` config with ``TINY`` and ``overrides``."""

    def _compose(*overrides: str, tiny: bool = True) -> DictConfig:
        extra: Sequence[str] = TINY if tiny else []
        with initialize_config_module(config_module="geoattn.configs", version_base="1.3"):
            return compose(config_name="train", overrides=[*extra, *overrides])

    return _compose
