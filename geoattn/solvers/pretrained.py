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
exactly. Any mismatch raises :class:`PretrainedWeightsError` naming the file and what was wrong.

Export from a ``geoattn-train`` checkpoint of the ``tsp_policy`` task::

    python -m geoattn.solvers.pretrained export runs/tsp/checkpoints/step_00004000.pt tsp100 --default
    python -m geoattn.solvers.pretrained list
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import torch

from geoattn._integrity import verified_bytes
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

#: The manifest format this geoattn reads and writes.
MANIFEST_FORMAT_VERSION: Final = 1
MANIFEST_NAME: Final = "manifest.json"
#: The weights folder inside the package.
WEIGHTS_DIR: Final = Path(__file__).resolve().parent / "weights"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_CONFIG_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "embed_dim": (int,),
    "heads": (int,),
    "layers": (int,),
    "ff_dim": (int,),
    "clip": (int, float),
    "norm": (str,),
}
_POLICY_TARGET: Final = "geoattn.train.tasks.tsp_policy.TSPPolicy"
_POLICY_PREFIX: Final = "policy."


class PretrainedWeightsError(RuntimeError):
    """A weights folder whose manifest or weights cannot be used: corrupt, tampered, or another format."""


def _folder(weights_dir: str | os.PathLike[str] | None) -> Path:
    return WEIGHTS_DIR if weights_dir is None else Path(weights_dir).expanduser()


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"pretrained model name {name!r} is invalid: use 1-64 characters a-z, 0-9, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return name


def _read_manifest(folder: Path) -> dict[str, Any]:
    """The parsed and shape-checked manifest of ``folder``."""
    path = folder / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"no pretrained TSP weights: {str(path)!r} does not exist (train a policy with "
            "`geoattn-train experiment=tsp/pomo_curriculum`, then `python -m geoattn.solvers.pretrained "
            "export <checkpoint> <name>`)"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PretrainedWeightsError(f"{str(path)!r} is not valid JSON: {e}") from e
    if not isinstance(manifest, dict) or not isinstance(manifest.get("models"), dict):
        raise PretrainedWeightsError(f"{str(path)!r} is not a weights manifest (no 'models' object)")
    version = manifest.get("format_version")
    if version != MANIFEST_FORMAT_VERSION:
        raise PretrainedWeightsError(
            f"{str(path)!r} has format_version {version!r}; this geoattn reads {MANIFEST_FORMAT_VERSION}"
        )
    return manifest


def _model_config(raw: object, where: str) -> dict[str, Any]:
    """``raw`` checked to be exactly the constructor arguments of TSPAttentionModel, with their types."""
    if not isinstance(raw, dict) or set(raw) != set(_CONFIG_TYPES):
        keys = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise PretrainedWeightsError(
            f"{where}: model_config must have the keys {sorted(_CONFIG_TYPES)}, got {keys}"
        )
    for key, types in _CONFIG_TYPES.items():
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise PretrainedWeightsError(f"{where}: model_config.{key} = {value!r} has the wrong type")
    return dict(raw)


def available_pretrained(*, weights_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the pretrained policies in the weights folder, sorted; ``[]`` when there is no manifest."""
    folder = _folder(weights_dir)
    if not (folder / MANIFEST_NAME).is_file():
        return []
    return sorted(_read_manifest(folder)["models"])


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
    folder = _folder(weights_dir)
    manifest = _read_manifest(folder)
    models: dict[str, Any] = manifest["models"]
    if name is None:
        name = manifest.get("default")
        if name is None:
            raise ValueError(
                f"{str(folder / MANIFEST_NAME)!r} has no default model; pass one of {sorted(models)}"
            )
    entry = models.get(_check_name(name))
    if not isinstance(entry, dict):
        raise ValueError(f"no pretrained model {name!r} in {str(folder)!r}; available: {sorted(models)}")
    where = f"{str(folder / MANIFEST_NAME)!r}, model {name!r}"
    if entry.get("file") != f"{name}.safetensors":
        raise PretrainedWeightsError(
            f"{where}: 'file' must be {name + '.safetensors'!r}, got {entry.get('file')!r}"
        )
    expected = entry.get("sha256")
    if not isinstance(expected, str) or not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise PretrainedWeightsError(f"{where}: 'sha256' must be 64 lowercase hex digits, got {expected!r}")
    config = _model_config(entry.get("model_config"), where)
    path = folder / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"{where}: the weights file {str(path)!r} does not exist")
    data = verified_bytes(
        path,
        expected,
        lambda actual: PretrainedWeightsError(
            f"{str(path)!r} has sha256 {actual}, but the manifest records {expected}: the file is corrupt "
            "or was modified; reinstall geoattn or re-export the weights"
        ),
    )
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    try:
        state = load_safetensors(data)
        model = TSPAttentionModel(**config)
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, ValueError) as e:
        raise PretrainedWeightsError(f"{where}: the weights do not fit the model_config: {e}") from e
    return model.to(device).eval()


def _policy_from_checkpoint(checkpoint: Any, where: str) -> TSPAttentionModel:
    model_cfg = checkpoint.config.get("model")
    if not isinstance(model_cfg, dict) or model_cfg.get("_target_") != _POLICY_TARGET:
        target = model_cfg.get("_target_") if isinstance(model_cfg, dict) else None
        raise ValueError(
            f"{where}: expected a checkpoint of the {_POLICY_TARGET} task, its model is {target!r}"
        )
    config = _model_config({key: model_cfg.get(key) for key in _CONFIG_TYPES}, where)
    state = {
        key.removeprefix(_POLICY_PREFIX): value
        for key, value in checkpoint.model.items()
        if key.startswith(_POLICY_PREFIX)
    }
    model = TSPAttentionModel(**config)
    model.load_state_dict(state, strict=True)
    return model


def _last_validation(run_dir: Path) -> dict[str, Any] | None:
    """The last ``val`` row of ``run_dir/metrics.jsonl`` (the provenance's quality record), if any."""
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        return None
    rows = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip()]
    val = [row for row in rows if row.get("split") == "val"]
    return val[-1] if val else None


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
    from safetensors.torch import save as save_safetensors

    from geoattn.train.atomic import atomic_write, atomic_write_text
    from geoattn.train.checkpoint import load_checkpoint, resolve_checkpoint

    _check_name(name)
    file = resolve_checkpoint(checkpoint)
    loaded = load_checkpoint(file)
    model = _policy_from_checkpoint(loaded, f"checkpoint {str(file)!r}")
    state = {
        key: value.detach().to("cpu", torch.float32).contiguous() for key, value in model.state_dict().items()
    }
    data = save_safetensors(state, metadata={"format": "pt", "model": "TSPAttentionModel"})
    folder = _folder(weights_dir)
    folder.mkdir(parents=True, exist_ok=True)
    target = atomic_write(folder / f"{name}.safetensors", lambda f: f.write(data))
    manifest: dict[str, Any] = (
        _read_manifest(folder)
        if (folder / MANIFEST_NAME).is_file()
        else {"format_version": MANIFEST_FORMAT_VERSION, "default": None, "models": {}}
    )
    config = loaded.config
    manifest["models"][name] = {
        "file": target.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "model_config": model.config(),
        "description": description,
        "provenance": {
            "checkpoint": file.name,
            "step": loaded.step,
            "geoattn_version": loaded.geoattn_version,
            "seed": config.get("seed"),
            "data": config.get("data"),
            "optimizer": config.get("optimizer"),
            "last_validation": _last_validation(file.parent.parent),
        },
    }
    if default or manifest.get("default") is None:
        manifest["default"] = name
    atomic_write_text(folder / MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m geoattn.solvers.pretrained {export,list}``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m geoattn.solvers.pretrained", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="export a geoattn-train checkpoint of the TSP policy")
    export.add_argument("checkpoint", help="checkpoint file or run folder")
    export.add_argument("name", help="model name, e.g. tsp100")
    export.add_argument("--weights-dir", default=None, help="weights folder (default: the package's)")
    export.add_argument("--default", action="store_true", help="make it the default model")
    export.add_argument("--description", default="", help="free text for the manifest")
    listing = commands.add_parser("list", help="list the pretrained models")
    listing.add_argument("--weights-dir", default=None, help="weights folder (default: the package's)")
    args = parser.parse_args(argv)
    try:
        if args.command == "export":
            path = export_pretrained(
                args.checkpoint,
                args.name,
                weights_dir=args.weights_dir,
                default=args.default,
                description=args.description,
            )
            print(f"wrote {path} and {path.parent / MANIFEST_NAME}")
        else:
            folder = _folder(args.weights_dir)
            names = available_pretrained(weights_dir=folder)
            default = _read_manifest(folder).get("default") if names else None
            for model_name in names:
                print(f"{model_name}{' (default)' if model_name == default else ''}")
            if not names:
                print(f"no pretrained models in {folder}")
    except (OSError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
