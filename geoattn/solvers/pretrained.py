"""Pretrained TSP policies shipped inside the package: safetensors weights and a sha256 manifest.

Layout of a weights folder (the package's ``geoattn/solvers/weights/`` unless ``weights_dir`` is given)::

    manifest.json            {"format_version": 1, "default": "<name>",
                              "models": {"<name>": {"file": "<name>.safetensors", "sha256": "<hex>",
                                                    "model_config": {embed_dim, heads, layers, ff_dim, clip, norm},
                                                    "provenance": {...}}}}
    <name>.safetensors       the TSPAttentionModel state dict (float32)

Loading is safe for untrusted files: the manifest is JSON, the model is always
:class:`~geoattn.nn.TSPAttentionModel` built from a checked ``model_config`` (no ``_target_``, nothing
imported by name), and the weights are read as bytes, hashed, compared with the manifest's sha256 and only
then parsed by ``safetensors`` (which holds tensors only, never code); the state dict must match the model's
exactly. Any mismatch raises :class:`PretrainedWeightsError` naming the file and what was wrong. The folder
format and these checks are shared with the other shipped models (:mod:`geoattn._weights`).

Export from a ``geoattn-train`` checkpoint of the ``tsp_policy`` task::

    python -m geoattn.solvers.pretrained export runs/tsp/checkpoints/step_00004000.pt tsp100 --default
    python -m geoattn.solvers.pretrained list
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import torch

from geoattn._weights import (
    MANIFEST_FORMAT_VERSION,
    MANIFEST_NAME,
    PretrainedWeightsError,
    WeightsFolder,
    check_config,
    check_name,
    last_validation,
)
from geoattn.nn.attention_model import TSPAttentionModel

__all__ = [
    "MANIFEST_FORMAT_VERSION",
    "MANIFEST_NAME",
    "WEIGHTS_DIR",
    "PretrainedWeightsError",
    "available_pretrained",
    "export_pretrained",
    "load_pretrained",
    "main",
]

#: The weights folder inside the package.
WEIGHTS_DIR: Final = Path(__file__).resolve().parent / "weights"
_FOLDER: Final = WeightsFolder(
    WEIGHTS_DIR,
    "TSP weights",
    "geoattn.solvers.pretrained",
    "train a policy with `geoattn-train experiment=tsp/pomo_curriculum`",
    "geoattn.train.tasks.tsp_policy.TSPPolicy",
    has_default=True,
)
_CONFIG_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "embed_dim": (int,),
    "heads": (int,),
    "layers": (int,),
    "ff_dim": (int,),
    "clip": (int, float),
    "norm": (str,),
}
_POLICY_PREFIX: Final = "policy."


def _folder(weights_dir: str | os.PathLike[str] | None) -> WeightsFolder:
    """The weights folder at ``weights_dir``; ``None``: :data:`WEIGHTS_DIR`, read when called."""
    return _FOLDER.at(WEIGHTS_DIR if weights_dir is None else weights_dir)


def available_pretrained(*, weights_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the pretrained policies in the weights folder, sorted; ``[]`` when there is no manifest."""
    return _folder(weights_dir).names()


def load_pretrained(
    name: str | None = None,
    *,
    device: str | torch.device = "cpu",
    weights_dir: str | os.PathLike[str] | None = None,
) -> TSPAttentionModel:
    """Load a pretrained :class:`~geoattn.nn.TSPAttentionModel` in eval mode, after verifying its sha256.

    Args:
        name: a name from :func:`available_pretrained`; ``None`` is the manifest's ``default``.
        device: where to put the model. (default: ``"cpu"``)
        weights_dir: the weights folder; ``None`` is the package's.

    Raises:
        FileNotFoundError: no manifest, or the weights file it names is missing.
        ValueError: ``name`` is not in the manifest (the message lists the available names).
        PretrainedWeightsError: the manifest is malformed or of another format version, or the weights do not
            match their sha256 (corrupt or tampered) or the model.
    """
    model, _ = _folder(weights_dir).load(name, _CONFIG_TYPES, lambda config: TSPAttentionModel(**config))
    return model.to(device).eval()


def _policy_from_checkpoint(checkpoint: Any, where: str) -> TSPAttentionModel:
    model_cfg = _FOLDER.model_node(checkpoint.config, where)
    config = check_config({key: model_cfg.get(key) for key in _CONFIG_TYPES}, _CONFIG_TYPES, where)
    state = {
        key.removeprefix(_POLICY_PREFIX): value
        for key, value in checkpoint.model.items()
        if key.startswith(_POLICY_PREFIX)
    }
    model = TSPAttentionModel(**config)
    model.load_state_dict(state, strict=True)
    return model


def export_pretrained(
    checkpoint: str | os.PathLike[str],
    name: str,
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    default: bool = False,
    description: str = "",
) -> Path:
    """Write the policy of a ``geoattn-train`` checkpoint as ``<name>.safetensors`` and register it.

    The checkpoint is loaded safely (:func:`geoattn.train.load_checkpoint`, ``weights_only=True``) and must
    come from the ``tsp_policy`` task. The manifest entry records the sha256, the model config and the
    provenance: checkpoint step, seed, training data config, geoattn version, and the last validation row
    of the run's ``metrics.jsonl`` when the checkpoint sits in its run folder. Both files are written
    atomically; other entries of the manifest are kept.

    Args:
        checkpoint: a checkpoint file or run folder (its newest checkpoint).
        name: the model's name (``a-z 0-9 _ . -``).
        weights_dir: the weights folder (created if missing); ``None`` is the package's.
        default: make this model the manifest's default (the first model exported is the default anyway).
        description: free text stored in the manifest.

    Returns:
        The path of the weights file.
    """
    from geoattn.train.checkpoint import load_checkpoint, resolve_checkpoint

    check_name(name)
    file = resolve_checkpoint(checkpoint)
    loaded = load_checkpoint(file)
    model = _policy_from_checkpoint(loaded, f"checkpoint {str(file)!r}")
    config = loaded.config
    entry = {
        "model_config": model.config(),
        "description": description,
        "provenance": {
            "checkpoint": file.name,
            "step": loaded.step,
            "geoattn_version": loaded.geoattn_version,
            "seed": config.get("seed"),
            "data": config.get("data"),
            "optimizer": config.get("optimizer"),
            "last_validation": last_validation(file.parent.parent),
        },
    }
    return _folder(weights_dir).save(name, model, entry, default=default)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m geoattn.solvers.pretrained {export,list}``; returns the exit status."""
    return _folder(None).main(argv, export=export_pretrained, description=(__doc__ or "").split("\n")[0])


if __name__ == "__main__":
    raise SystemExit(main())
