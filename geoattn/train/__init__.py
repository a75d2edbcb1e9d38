"""Training for geoattn: ``geoattn-train`` (Hydra) and the library pieces behind it.

- :func:`train` runs a composed config; :class:`Trainer` is the loop, usable without Hydra.
- :mod:`~geoattn.train.protocol`: what ``model`` and ``data`` configs must instantiate.
- :func:`load_checkpoint` / :func:`instantiate_from_checkpoint`: safe loading (``weights_only=True``, a
  ``_target_`` allow-list).
- :mod:`~geoattn.train.tasks`: the tasks shipped with geoattn (tree embedding).
- :mod:`~geoattn.train.distributed`: data-parallel training on several GPUs under ``torchrun`` (DDP).

Importing this package registers the structured configs in Hydra's ConfigStore.
"""

from .checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    instantiate_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from .config import TrainConfig, TrainerConfig, register_configs
from .launch import resolve_config, train
from .protocol import DataSource, TaskModel
from .targets import ALLOWED_TARGETS, UnsafeConfigError, check_targets
from .trainer import NonFiniteLossError, Trainer, TrainResult

__all__ = [
    "ALLOWED_TARGETS",
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "DataSource",
    "NonFiniteLossError",
    "TaskModel",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainerConfig",
    "UnsafeConfigError",
    "check_targets",
    "instantiate_from_checkpoint",
    "load_checkpoint",
    "register_configs",
    "resolve_config",
    "save_checkpoint",
    "train",
]
