"""Checkpoints: atomic writes, safe loads, and re-instantiating a checkpoint's model.

A checkpoint is one ``torch.save`` file holding only tensors and plain containers, so it loads with
``torch.load(..., weights_only=True)``::

    {"format_version": 1, "geoattn_version": str, "step": int,
     "model": state_dict, "optimizer": state_dict,
     "rng": {"torch", "cuda", "python", "numpy"},           # see geoattn.train.rng
     "data": {"epoch": int, "batches_in_epoch": int, "generator": ByteTensor},
     "config": dict}                                       # the resolved run config

Files are ``<run dir>/checkpoints/step_XXXXXXXX.pt``; a run folder (or its ``checkpoints`` folder) given
where a checkpoint is expected means its newest one. Checkpoint files are untrusted input: loading never
unpickles code, and :func:`instantiate_from_checkpoint` checks the config's ``_target_`` allow-list
(:mod:`geoattn.train.targets`) before instantiating anything.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from torch import nn

from geoattn import __version__

from .atomic import atomic_write
from .targets import check_targets

__all__ = [
    "CHECKPOINT_DIR",
    "FORMAT_VERSION",
    "Checkpoint",
    "CheckpointError",
    "checkpoint_path",
    "instantiate_from_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "resolve_checkpoint",
    "save_checkpoint",
]

FORMAT_VERSION = 1
CHECKPOINT_DIR = "checkpoints"
_NAME = re.compile(r"^step_(\d+)\.pt$")
_KEYS = ("format_version", "geoattn_version", "step", "model", "optimizer", "rng", "data", "config")


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be used: unreadable, not a geoattn checkpoint, or another format version."""


@dataclass(frozen=True)
class Checkpoint:
    """The contents of a checkpoint file (see the module docstring for each field's layout)."""

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng: dict[str, Any]
    data: dict[str, Any]
    config: dict[str, Any]
    geoattn_version: str = __version__
    format_version: int = FORMAT_VERSION


def checkpoint_path(run_dir: str | os.PathLike[str], step: int) -> Path:
    """``<run_dir>/checkpoints/step_XXXXXXXX.pt`` for ``step``."""
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def save_checkpoint(checkpoint: Checkpoint, path: str | os.PathLike[str]) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (temp file, fsync, ``os.replace``); return the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = asdict(checkpoint)
    return atomic_write(target, lambda f: torch.save(payload, f))


def list_checkpoints(folder: str | os.PathLike[str]) -> list[Path]:
    """Checkpoint files ``step_*.pt`` directly in ``folder``, oldest step first."""
    found = [
        (int(m.group(1)), p) for p in Path(folder).iterdir() if (m := _NAME.match(p.name)) and p.is_file()
    ]
    return [p for _, p in sorted(found)]


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint file itself, or the newest checkpoint of a run folder or of its ``checkpoints`` folder.

    Raises ``FileNotFoundError`` naming the path when there is nothing to load.
    """
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if not p.exists():
        raise FileNotFoundError(
            f"checkpoint: {str(p)!r} does not exist (expected a checkpoint file or run folder)"
        )
    for folder in (p / CHECKPOINT_DIR, p):
        if folder.is_dir() and (found := list_checkpoints(folder)):
            return found[-1]
    raise FileNotFoundError(
        f"checkpoint: no checkpoint files (step_*.pt) in {str(p)!r} or in its {CHECKPOINT_DIR!r} folder"
    )


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint file, or a run folder's newest one, with ``weights_only=True``.

    Raises:
        FileNotFoundError: nothing at ``path`` / no checkpoint in the folder.
        CheckpointError: unreadable, not a geoattn checkpoint, or a format version other than
            :data:`FORMAT_VERSION`.
    """
    file = resolve_checkpoint(path)
    if not zipfile.is_zipfile(file):  # torch.save writes zip archives; anything else is truncated or foreign
        raise CheckpointError(
            f"checkpoint {str(file)!r} is not a readable torch file (truncated, or not written by torch.save)"
        )
    try:
        raw = torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"checkpoint {str(file)!r} holds objects that safe loading (weights_only=True) refuses: {e}"
        ) from e
    except Exception as e:
        raise CheckpointError(
            f"checkpoint {str(file)!r} is not a readable torch file (truncated or another format?): {e}"
        ) from e
    if not isinstance(raw, dict) or "format_version" not in raw:
        raise CheckpointError(
            f"checkpoint {str(file)!r} is not a geoattn checkpoint (no 'format_version' key)"
        )
    if raw["format_version"] != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {str(file)!r} has format version {raw['format_version']!r}; "
            f"geoattn {__version__} reads format version {FORMAT_VERSION}"
        )
    missing = [k for k in _KEYS if k not in raw]
    if missing:
        raise CheckpointError(f"checkpoint {str(file)!r} lacks the keys {missing}")
    return Checkpoint(**{k: raw[k] for k in _KEYS})


def instantiate_from_checkpoint(
    path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> nn.Module:
    """Re-create the model of a checkpoint from its stored config and load its weights.

    The model config's ``_target_``s are checked against the allow-list *before* anything is instantiated
    (:func:`geoattn.train.targets.check_targets`; raises :class:`~geoattn.train.targets.UnsafeConfigError`).
    The module is returned in whatever mode its constructor leaves it (call ``.eval()`` for inference).
    """
    checkpoint = load_checkpoint(path, map_location=map_location)
    model_cfg = checkpoint.config.get("model")
    if not isinstance(model_cfg, dict) or "_target_" not in model_cfg:
        raise CheckpointError(f"checkpoint {str(path)!r}: its config has no model node with a _target_")
    check_targets(model_cfg, what=f"checkpoint {str(path)!r}", root="model")
    model = instantiate(model_cfg)
    if not isinstance(model, nn.Module):
        raise CheckpointError(
            f"checkpoint {str(path)!r}: model config built a {type(model).__name__}, not an nn.Module"
        )
    model.load_state_dict(checkpoint.model)
    return model.to(map_location)
