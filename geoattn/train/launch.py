"""From a composed config to a finished run: validate, seed, instantiate, train.

This is ``geoattn-train`` without Hydra's command line, for scripts and tests::

    from hydra import compose, initialize_config_module
    with initialize_config_module("geoattn.configs", version_base="1.3"):
        cfg = compose("train", overrides=["experiment=tree_embedding_hyperbolic"])
    result = train(cfg, run_dir="runs/tree")
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, cast

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from .config import TrainConfig
from .distributed import process_group
from .protocol import check_data, check_model
from .rng import seed_everything
from .trainer import Trainer, TrainResult, resolve_device

__all__ = ["resolve_config", "train"]


def resolve_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``cfg`` against :class:`~geoattn.train.config.TrainConfig` and resolve it to plain containers.

    Raises OmegaConf's errors (naming the key) for unknown keys, wrong types and missing values. The config
    is merged as plain containers: a Hydra-composed config may carry keys added with ``+key=value`` that its
    typed nodes would otherwise let through.
    """
    plain = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else dict(cfg)
    merged = OmegaConf.merge(OmegaConf.structured(TrainConfig), plain)
    return cast(dict[str, Any], OmegaConf.to_container(merged, resolve=True, throw_on_missing=True))


def train(cfg: DictConfig | Mapping[str, Any], *, run_dir: str | os.PathLike[str]) -> TrainResult:
    """Run the training job described by ``cfg`` (a :class:`~geoattn.train.config.TrainConfig`) in ``run_dir``.

    Seeds every global RNG with ``cfg.seed`` before instantiating ``data`` and then ``model``, so the
    initial weights depend on the seed alone; continues from ``cfg.resume`` when set. With ``cfg.runner`` set,
    the runner does the whole job instead (see :class:`~geoattn.train.config.TrainConfig`).

    Under ``torchrun`` (``WORLD_SIZE > 1``), joins the job's process group for the duration of the training
    (:func:`~geoattn.train.distributed.process_group`) and trains data-parallel; every rank builds the same
    initial weights from ``cfg.seed``, and only rank 0 writes ``run_dir``.
    """
    resolved = resolve_config(cfg)
    seed_everything(resolved["seed"])
    if resolved["runner"] is not None:  # a job with its own loop (e.g. PyKEEN's pipeline)
        result = instantiate(resolved["runner"])(resolved, run_dir=run_dir)
        if not isinstance(result, TrainResult):
            raise TypeError(f"runner: expected a TrainResult from the runner, got {type(result).__name__}")
        return result
    with process_group(resolve_device(resolved["trainer"]["device"])):
        data = check_data(instantiate(resolved["data"]))
        model = check_model(instantiate(resolved["model"]))
        optimizer = instantiate(resolved["optimizer"])
        trainer = Trainer(
            model=model,
            data=data,
            optimizer=optimizer,
            run_dir=run_dir,
            seed=resolved["seed"],
            config=resolved,
            **resolved["trainer"],
        )
        return trainer.fit(resume=resolved["resume"])
