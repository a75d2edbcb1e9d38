"""Structured configs for ``geoattn-train``, registered in Hydra's ConfigStore.

The root config ``configs/train.yaml`` starts its defaults list with :data:`SCHEMA_NAME`, so every composed
config is validated against :class:`TrainConfig` (unknown keys and wrong types fail at composition). The
``model``, ``data`` and ``optimizer`` nodes are free-form ``_target_`` configs (see :mod:`geoattn.train.protocol`
for what they must instantiate); ``trainer`` is typed by :class:`TrainerConfig`.

Registration happens when this module is imported (``import geoattn.train`` does it); it is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

__all__ = ["SCHEMA_NAME", "TrainConfig", "TrainerConfig", "register_configs"]

SCHEMA_NAME = "geoattn_train_schema"


@dataclass
class TrainerConfig:
    """Loop settings; each field is a keyword argument of :class:`geoattn.train.Trainer`.

    Attributes:
        max_steps: optimizer steps to run in total (a resumed run continues up to this step).
        val_every: validate every this many steps (and always after the last one).
        ckpt_every: write a checkpoint every this many steps (and always after the last one).
        log_every: write the mean training loss of the last ``log_every`` steps to ``metrics.jsonl``.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        progress_bar: show a tqdm bar (it is also off whenever stderr is not a terminal).
        grad_clip: clip the global gradient norm to this value; ``None`` disables clipping.
        keep_last: keep only this many newest checkpoints; ``None`` keeps all.
        time_limit_s: stop (validate and checkpoint) after the first step that ends this many seconds after
            the training loop started; ``None``: no limit. Resume a stopped run with the same ``max_steps``.
        lr_schedule: ``"constant"``, or ``"cosine"``: the learning rate decays from the optimizer's over
            ``max_steps`` to ``lr_final_ratio`` times it (:mod:`geoattn.train.trainer`).
        lr_final_ratio: the cosine schedule's last rate, as a fraction of the first.
    """

    max_steps: int = 1000
    val_every: int = 100
    ckpt_every: int = 500
    log_every: int = 50
    device: str = "auto"
    progress_bar: bool = True
    grad_clip: float | None = None
    keep_last: int | None = None
    time_limit_s: float | None = None
    lr_schedule: str = "constant"
    lr_final_ratio: float = 0.0


@dataclass
class TrainConfig:
    """The root config of ``geoattn-train``.

    Attributes:
        seed: seeds python, numpy and torch, and (through a derived seed) the data generator.
        resume: a checkpoint file or a run folder (its newest checkpoint) to continue from; ``None`` starts fresh.
        model: ``_target_`` config of an ``nn.Module`` with ``training_loss``/``validation_metrics``.
        data: ``_target_`` config of an object with ``train_batches(generator)``/``val_batches()``.
        optimizer: ``_target_`` config with ``_partial_: true``; called with the model's parameters.
        trainer: the loop settings.
        runner: ``None`` (the :class:`~geoattn.train.Trainer` loop), or the ``_target_`` config of a job that
            brings its own loop, called as ``runner(config, run_dir=...)`` with the resolved config and returning
            a :class:`~geoattn.train.TrainResult` (knowledge-graph experiments:
            :class:`geoattn.train.tasks.kg.KGPipeline`, PyKEEN's pipeline).
    """

    seed: int = 0
    resume: str | None = None
    model: Any = MISSING
    data: Any = MISSING
    optimizer: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    runner: Any = None


def register_configs() -> None:
    """Store :class:`TrainConfig` in Hydra's ConfigStore as :data:`SCHEMA_NAME` (idempotent)."""
    ConfigStore.instance().store(name=SCHEMA_NAME, node=TrainConfig)


register_configs()
