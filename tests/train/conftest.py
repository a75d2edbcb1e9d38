"""Fixtures for the training tests: composing the packaged configs, with tiny sizes so runs take milliseconds."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from geoattn.train import load_checkpoint, train  # importing geoattn.train registers the structured configs

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


@pytest.fixture
def assert_resume_matches(
    compose_train: Callable[..., DictConfig], tmp_path: Path
) -> Callable[..., dict[str, dict[str, torch.Tensor]]]:
    """``assert_resume_matches(*overrides, total=3, first=1)``: train ``total`` steps straight, and ``first``
    steps then the rest resumed from the checkpoint; assert equal parameters and validation metrics. Returns the
    model state dicts of the ``"straight"``, ``"first"`` and ``"second"`` runs for further checks."""

    def _check(*overrides: str, total: int = 3, first: int = 1) -> dict[str, dict[str, torch.Tensor]]:
        # The first run stops by its own max_steps, which would shorten a cosine schedule: hold the rate constant
        # here (test_trainer covers a cosine schedule resumed after a time-limit stop).
        common = [
            *overrides,
            f"trainer.val_every={total + 100}",
            f"trainer.ckpt_every={total + 100}",
            "trainer.lr_schedule=constant",
        ]
        straight = train(compose_train(*common, f"trainer.max_steps={total}"), run_dir=tmp_path / "straight")
        head = train(compose_train(*common, f"trainer.max_steps={first}"), run_dir=tmp_path / "first")
        second = train(
            compose_train(*common, f"trainer.max_steps={total}", f"resume={tmp_path / 'first'}"),
            run_dir=tmp_path / "second",
        )
        assert head.step == first and straight.step == second.step == total
        states = {name: load_checkpoint(tmp_path / name).model for name in ("straight", "first", "second")}
        assert states["straight"].keys() == states["second"].keys()
        for key, value in states["straight"].items():
            assert torch.equal(value, states["second"][key]), key
        assert straight.val_metrics == second.val_metrics
        return states

    return _check
