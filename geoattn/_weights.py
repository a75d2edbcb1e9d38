"""Named pretrained weights in a folder: a sha256 manifest and safetensors files (shared by every shipped model).

Layout of a weights folder::

    manifest.json            {"format_version": 1, ["default": "<name>",]
                              "models": {"<name>": {"file": "<name>.safetensors", "sha256": "<hex>",
                                                    "model_config": {...}, "provenance": {...}, ...}}}
    <name>.safetensors       the model's state dict (float32)

The model-specific modules (:mod:`geoattn.solvers.pretrained`, :mod:`geoattn.solvers.pointer_pretrained`) say
which class a ``model_config`` builds and which keys and types it has; this module does the rest. Loading is
safe for untrusted files: the manifest is JSON, ``model_config`` is checked key by key against a table of
allowed types (no ``_target_``, nothing imported by name), and the weights are read as bytes, hashed,
compared with the manifest's sha256 (:func:`geoattn._integrity.verified_bytes`) and only then parsed by
``safetensors`` (tensors only, never code); the state dict must fit the model exactly. Every problem raises
:class:`PretrainedWeightsError` naming the file and what was wrong.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, TypeVar

import torch
from torch import nn

from geoattn._integrity import verified_bytes

__all__ = [
    "MANIFEST_FORMAT_VERSION",
    "MANIFEST_NAME",
    "ConfigTypes",
    "PretrainedWeightsError",
    "UnknownModelError",
    "WeightsFolder",
    "check_config",
    "check_name",
    "last_validation",
]

#: The manifest format this geoattn reads and writes.
MANIFEST_FORMAT_VERSION: Final = 1
MANIFEST_NAME: Final = "manifest.json"
#: ``model_config`` key -> the JSON types its value may have (``bool`` only where listed).
ConfigTypes = Mapping[str, tuple[type, ...]]
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_SHA256 = re.compile(r"[0-9a-f]{64}")
M = TypeVar("M", bound=nn.Module)


class PretrainedWeightsError(RuntimeError):
    """A weights folder whose manifest or weights cannot be used: corrupt, tampered, or another format."""


class UnknownModelError(PretrainedWeightsError, ValueError):
    """A model name that the manifest does not list (also a ``ValueError``: the caller's argument is wrong)."""


def check_name(name: object) -> str:
    """``name`` if it is a valid model name (1-64 of ``a-z 0-9 _ . -``), else ``ValueError``."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"pretrained model name {name!r} is invalid: use 1-64 characters a-z, 0-9, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return name


def check_config(raw: object, types: ConfigTypes, where: str) -> dict[str, Any]:
    """``raw`` checked to have exactly the keys of ``types``, each value of one of its types (a ``bool`` only
    where ``bool`` is listed); a copy, else :class:`PretrainedWeightsError` naming ``where`` and the key."""
    if not isinstance(raw, dict) or set(raw) != set(types):
        keys = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise PretrainedWeightsError(f"{where}: model_config must have the keys {sorted(types)}, got {keys}")
    for key, allowed in types.items():
        value = raw[key]
        if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
            raise PretrainedWeightsError(f"{where}: model_config.{key} = {value!r} has the wrong type")
    return dict(raw)


def last_validation(run_dir: Path) -> dict[str, Any] | None:
    """The last ``val`` row of ``run_dir/metrics.jsonl`` (a model's quality record), if any."""
    metrics = run_dir / "metrics.jsonl"
    if not metrics.is_file():
        return None
    rows = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip()]
    val = [row for row in rows if row.get("split") == "val"]
    return val[-1] if val else None


@dataclass(frozen=True)
class WeightsFolder:
    """A weights folder (module docstring) of one kind of model.

    Args:
        path: the folder.
        what: what the folder holds, for messages (``"TSP weights"``).
        module: the module whose ``python -m`` command line exports to it (:meth:`main`).
        train_hint: how to train a model, for the message when the manifest is missing.
        task: the ``_target_`` of the training task whose checkpoints it exports (:meth:`model_node`).
        has_default: the manifest names a default model (``load(None)`` loads it; ``list`` marks it).
    """

    path: Path
    what: str
    module: str
    train_hint: str
    task: str
    has_default: bool = False

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_NAME

    def at(self, weights_dir: str | os.PathLike[str] | None) -> WeightsFolder:
        """This kind of folder at ``weights_dir``; ``None`` is this one."""
        return self if weights_dir is None else replace(self, path=Path(weights_dir).expanduser())

    def model_node(self, config: Mapping[str, Any], where: str) -> dict[str, Any]:
        """The ``model`` node of a training checkpoint's ``config``, checked to be of :attr:`task`; else
        ``ValueError`` naming ``where`` and the node's ``_target_``."""
        node = config.get("model")
        if not isinstance(node, dict) or node.get("_target_") != self.task:
            target = node.get("_target_") if isinstance(node, dict) else None
            raise ValueError(
                f"{where}: expected a checkpoint of the {self.task} task, its model is {target!r}"
            )
        return node

    def read_manifest(self) -> dict[str, Any]:
        """The parsed and shape-checked manifest."""
        path = self.manifest_path
        if not path.is_file():
            raise FileNotFoundError(
                f"no pretrained {self.what}: {str(path)!r} does not exist ({self.train_hint}, then "
                f"`python -m {self.module} export <checkpoint> <name>`)"
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

    def names(self) -> list[str]:
        """The model names of the manifest, sorted; ``[]`` when there is no manifest."""
        return sorted(self.read_manifest()["models"]) if self.manifest_path.is_file() else []

    def entry(self, name: str | None) -> tuple[str, dict[str, Any]]:
        """``(name, manifest entry)`` of ``name``; ``None`` is the default (folders with ``has_default``).

        Raises ``ValueError`` for an invalid name and :class:`UnknownModelError` (a ``ValueError`` too) for
        one the manifest lacks (the message lists the available ones).
        """
        manifest = self.read_manifest()
        models: dict[str, Any] = manifest["models"]
        if name is None:
            name = manifest.get("default") if self.has_default else None
            if name is None:
                raise ValueError(
                    f"{str(self.manifest_path)!r} has no default model; pass one of {sorted(models)}"
                )
        entry = models.get(check_name(name))
        if not isinstance(entry, dict):
            raise UnknownModelError(
                f"no pretrained model {name!r} in {str(self.manifest_path)!r}; available: {sorted(models)}"
            )
        return name, entry

    def load(
        self, name: str | None, types: ConfigTypes, build: Callable[[dict[str, Any]], M]
    ) -> tuple[M, dict[str, Any]]:
        """The model ``build(model_config)`` of entry ``name`` with its verified weights, and the entry.

        ``name=None`` is the manifest's default (folders with ``has_default``). Raises ``FileNotFoundError``
        (no manifest or weights file), ``ValueError`` (invalid name; :class:`UnknownModelError` for an unknown
        one) or
        :class:`PretrainedWeightsError` (malformed manifest or config, sha256 mismatch, weights that do not
        fit the model).
        """
        name, entry = self.entry(name)
        where = f"{str(self.manifest_path)!r}, model {name!r}"
        if entry.get("file") != f"{name}.safetensors":
            raise PretrainedWeightsError(
                f"{where}: 'file' must be {name + '.safetensors'!r}, got {entry.get('file')!r}"
            )
        expected = entry.get("sha256")
        if not isinstance(expected, str) or not _SHA256.fullmatch(expected):
            raise PretrainedWeightsError(
                f"{where}: 'sha256' must be 64 lowercase hex digits, got {expected!r}"
            )
        config = check_config(entry.get("model_config"), types, where)
        path = self.path / entry["file"]
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
            model = build(config)
        except (TypeError, ValueError) as e:
            raise PretrainedWeightsError(f"{where}: model_config is invalid: {e}") from e
        try:
            model.load_state_dict(load_safetensors(data), strict=True)
        except (SafetensorError, RuntimeError, ValueError) as e:
            raise PretrainedWeightsError(f"{where}: the weights do not fit the model_config: {e}") from e
        return model, entry

    def save(self, name: str, model: nn.Module, entry: dict[str, Any], *, default: bool = False) -> Path:
        """Write ``model``'s state dict (float32) as ``<name>.safetensors`` and register it in the manifest as
        ``entry`` plus ``file`` and ``sha256``; other entries are kept, both files are written atomically.

        ``default``: make it the manifest's default (folders with ``has_default``; the first model saved is
        the default anyway). Returns the path of the weights file.
        """
        from safetensors.torch import save as save_safetensors

        from geoattn.train.atomic import atomic_write, atomic_write_text

        check_name(name)
        state = {
            key: value.detach().to("cpu", torch.float32).contiguous()
            for key, value in model.state_dict().items()
        }
        data = save_safetensors(state, metadata={"format": "pt", "model": type(model).__name__})
        self.path.mkdir(parents=True, exist_ok=True)
        manifest: dict[str, Any] = (
            self.read_manifest()
            if self.manifest_path.is_file()
            else {"format_version": MANIFEST_FORMAT_VERSION, "models": {}}
        )
        target = atomic_write(self.path / f"{name}.safetensors", lambda f: f.write(data))
        manifest["models"][name] = {"file": target.name, "sha256": hashlib.sha256(data).hexdigest(), **entry}
        if self.has_default and (default or manifest.get("default") is None):
            manifest["default"] = name
        atomic_write_text(self.manifest_path, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        return target

    def main(self, argv: Sequence[str] | None, *, export: Callable[..., Path], description: str) -> int:
        """``python -m <module> {export,list}``: the command line of a weights module; the exit status.

        ``export(checkpoint, name, weights_dir=..., description=...[, default=...])`` writes one model.
        """
        parser = argparse.ArgumentParser(prog=f"python -m {self.module}", description=description)
        commands = parser.add_subparsers(dest="command", required=True)
        task = self.task.rsplit(".", 1)[-1]
        export_cmd = commands.add_parser("export", help=f"export a geoattn-train checkpoint of {task}")
        export_cmd.add_argument("checkpoint", help="checkpoint file or run folder")
        export_cmd.add_argument("name", help="model name (a-z 0-9 _ . -)")
        export_cmd.add_argument("--weights-dir", default=None, help="weights folder (default: the package's)")
        if self.has_default:
            export_cmd.add_argument("--default", action="store_true", help="make it the default model")
        export_cmd.add_argument("--description", default="", help="free text for the manifest")
        listing = commands.add_parser("list", help="list the pretrained models")
        listing.add_argument("--weights-dir", default=None, help="weights folder (default: the package's)")
        args = parser.parse_args(argv)
        folder = self.at(args.weights_dir)
        try:
            if args.command == "export":
                extra = {"default": args.default} if self.has_default else {}
                path = export(
                    args.checkpoint,
                    args.name,
                    weights_dir=folder.path,
                    description=args.description,
                    **extra,
                )
                print(f"wrote {path} and {path.parent / MANIFEST_NAME}")
            else:
                names = folder.names()
                default = folder.read_manifest().get("default") if names and self.has_default else None
                for model_name in names:
                    print(f"{model_name}{' (default)' if model_name == default else ''}")
                if not names:
                    print(f"no pretrained models in {folder.path}")
        except (OSError, ValueError, RuntimeError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        return 0
