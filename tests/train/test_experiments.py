"""Every packaged experiment composes, validates, instantiates and trains for two steps."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import DictConfig
from omegaconf.errors import ConfigKeyError, ValidationError

from geoattn.manifolds import CurvatureModule
from geoattn.train import load_checkpoint, resolve_config, train
from geoattn.train.protocol import DataSource, TaskModel

Compose = Callable[..., DictConfig]


def experiment_names() -> list[str]:
    """Every config in the packaged ``experiment`` group."""
    folder = files("geoattn.configs").joinpath("experiment")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


EXPERIMENTS = experiment_names()


def test_the_experiment_group_is_not_empty() -> None:
    assert {"tree_embedding_hyperbolic", "tree_embedding_euclidean"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_instantiates_and_trains_two_steps(
    name: str, compose_train: Compose, tmp_path: Path
) -> None:
    if name.startswith("node_classification") and not os.environ.get("GEOATTN_DATA"):
        pytest.skip("node-classification data not found: set GEOATTN_DATA (see geoattn.datasets)")
    cfg = compose_train(f"experiment={name}", "trainer.max_steps=2")
    resolved = resolve_config(cfg)
    assert resolved["trainer"]["max_steps"] == 2

    model = instantiate(resolved["model"])
    data = instantiate(resolved["data"])
    assert isinstance(model, torch.nn.Module) and isinstance(model, TaskModel)
    assert isinstance(data, DataSource)
    optimizer = instantiate(resolved["optimizer"])(model.parameters())
    assert isinstance(optimizer, torch.optim.Optimizer)

    result = train(cfg, run_dir=tmp_path)
    assert result.step == 2
    assert result.last_checkpoint == tmp_path / "checkpoints" / "step_00000002.pt"
    assert load_checkpoint(tmp_path).step == 2
    assert result.val_metrics and all(math.isfinite(v) for v in result.val_metrics.values())


@pytest.mark.parametrize(
    ("name", "sign"),
    [("tree_embedding_hyperbolic", -1.0), ("tree_embedding_euclidean", 0.0), ("tree_embedding_signed", 0.0)],
)
def test_experiments_select_their_geometry(name: str, sign: float, compose_train: Compose) -> None:
    model = instantiate(resolve_config(compose_train(f"experiment={name}"))["model"])
    assert isinstance(model.curvature, CurvatureModule)
    assert torch.sign(model.curvature().detach()).item() == sign


def test_default_config_composes_without_an_experiment(compose_train: Compose) -> None:
    resolved = resolve_config(compose_train(tiny=False))
    assert set(resolved) == {"seed", "resume", "model", "data", "optimizer", "trainer", "runner"}
    assert resolved["runner"] is None
    assert resolved["optimizer"]["_partial_"] is True
    assert resolved["model"]["num_nodes"] == resolved["data"]["num_nodes"]  # the interpolation resolved


def test_schema_rejects_wrong_types_and_unknown_keys(compose_train: Compose) -> None:
    with pytest.raises((ValidationError, ConfigCompositionException), match="max_steps"):
        compose_train("trainer.max_steps=many")
    with pytest.raises(ConfigCompositionException, match="no_such_key"):
        compose_train("trainer.no_such_key=1")
    appended = compose_train("+trainer.no_such_key=1")  # Hydra lets `+` add keys; the schema does not
    with pytest.raises(ConfigKeyError, match="no_such_key"):
        resolve_config(appended)
