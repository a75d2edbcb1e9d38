"""Trained pointer networks (Vinyals et al. 2015) shipped inside the package, loadable by name.

Layout of a weights folder (the package's ``geoattn/solvers/pointer_weights/`` unless ``weights_dir`` is given; the format
and its checks are :mod:`geoattn._weights`'s, shared with the TSP policies of :mod:`geoattn.solvers.pretrained`)::

    manifest.json            {"format_version": 1,
                              "models": {"<name>": {"file": "<name>.safetensors", "sha256": "<hex>",
                                                    "model_config": {problem, beam_width, masked_training,
                                                                     input_dim, hidden_dim, embed_dim,
                                                                     num_layers, clip},
                                                    "description": str, "provenance": {...}}}}
    <name>.safetensors       the PointerTask state dict (float32)

A model is the :class:`~geoattn.train.tasks.pointer.PointerTask` of its problem (convex hull, Delaunay or
TSP), so ``.predict(points)`` decodes and ``.validation_metrics(batch)`` scores by the paper's metrics;
``beam_width`` in the manifest is its default decoding (``1``: greedy), an attribute callers may change.
Loading is safe for untrusted files: the model is always a ``PointerTask`` built from a ``model_config``
checked key by key (no ``_target_``), and the weights are hashed and compared with the manifest's sha256
before ``safetensors`` parses them; any mismatch raises :class:`~geoattn._weights.PretrainedWeightsError`
naming the file and the problem.

The provenance of an exported model: checkpoint and step, the git SHA and device of the run (its
``run.json``), seed, the training data, optimizer and trainer configs, the last validation row of its
``metrics.jsonl``, and ``runs``: every training run of the chain that led to the checkpoint (followed through
``run.json``'s ``resumed_from``), oldest first, with its steps, batch size, device and wall-clock seconds.

Export from a ``geoattn-train`` checkpoint of a ``pointer/*`` experiment, and list::

    python -m geoattn.solvers.pointer_pretrained export runs/ptr_delaunay delaunay_5 --description "..."
    python -m geoattn.solvers.pointer_pretrained list
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import torch

from geoattn._weights import PretrainedWeightsError, WeightsFolder, check_config, check_name, last_validation

if TYPE_CHECKING:
    from geoattn.train.checkpoint import Checkpoint
    from geoattn.train.tasks.pointer import PointerTask

__all__ = [
    "WEIGHTS_DIR",
    "PretrainedWeightsError",
    "available_pointer_models",
    "export_pointer_model",
    "load_pointer_checkpoint",
    "load_pointer_model",
    "main",
    "pointer_model_entry",
]

#: The weights folder inside the package.
WEIGHTS_DIR: Final = Path(__file__).resolve().parent / "pointer_weights"
_FOLDER: Final = WeightsFolder(
    WEIGHTS_DIR,
    "pointer networks",
    "geoattn.solvers.pointer_pretrained",
    "train one with `geoattn-train experiment=pointer/delaunay_5`",
    "geoattn.train.tasks.pointer.PointerTask",
)
#: ``model_config``: exactly the keyword arguments of PointerTask (those of PointerNetwork flattened in).
_CONFIG_TYPES: Final[dict[str, tuple[type, ...]]] = {
    "problem": (str,),
    "beam_width": (int,),
    "masked_training": (bool,),
    "input_dim": (int,),
    "hidden_dim": (int,),
    "embed_dim": (int,),
    "num_layers": (int,),
    "clip": (int, float, type(None)),
}
_MAX_RUNS: Final = 100  # resume chains longer than this are cut (and a cycle cannot loop)


def _build(config: dict[str, Any]) -> PointerTask:
    from geoattn.train.tasks.pointer import PointerTask

    return PointerTask(**config)


def _model_config(task: PointerTask) -> dict[str, Any]:
    """The ``model_config`` that rebuilds ``task`` (every default resolved)."""
    network = task.network
    return {
        "problem": task.problem,
        "beam_width": task.beam_width,
        "masked_training": task.masked_training,
        "input_dim": network.input_dim,
        "hidden_dim": network.hidden_dim,
        "embed_dim": network.embed_dim,
        "num_layers": network.num_layers,
        "clip": network.pointer.clip,
    }


def _folder(weights_dir: str | os.PathLike[str] | None) -> WeightsFolder:
    """The weights folder at ``weights_dir``; ``None``: :data:`WEIGHTS_DIR`, read when called."""
    return _FOLDER.at(WEIGHTS_DIR if weights_dir is None else weights_dir)


def available_pointer_models(weights_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the pretrained pointer networks in the weights folder, sorted; ``[]`` without a manifest."""
    return _folder(weights_dir).names()


def pointer_model_entry(name: str, *, weights_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The manifest entry of ``name`` (``model_config``, ``description``, ``provenance``, ...), unverified:
    what the model is and how it was trained, without loading it."""
    return _folder(weights_dir).entry(name)[1]


def load_pointer_model(
    name: str,
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    map_location: str | torch.device = "cpu",
) -> PointerTask:
    """Load a pretrained pointer network as its :class:`~geoattn.train.tasks.pointer.PointerTask`, in eval
    mode, after verifying its sha256.

    Args:
        name: a name from :func:`available_pointer_models`.
        weights_dir: the weights folder; ``None`` is the package's.
        map_location: where to put the model (a device or its name). (default: ``"cpu"``)

    Raises:
        FileNotFoundError: no manifest, or the weights file it names is missing.
        ValueError: ``name`` is not a valid model name.
        PretrainedWeightsError: ``name`` is not in the manifest (``UnknownModelError``, also a ``ValueError``;
            the message lists the available names), the manifest is malformed or of another format version,
            the model_config has other keys or types than PointerTask's, or the weights do not match their
            sha256 (corrupt or tampered) or the model.
    """
    task, _ = _folder(weights_dir).load(name, _CONFIG_TYPES, _build)
    return task.to(map_location).eval()


def _task_from_checkpoint(checkpoint: Checkpoint, where: str) -> PointerTask:
    model_cfg = _FOLDER.model_node(checkpoint.config, where)
    kwargs = {key: value for key, value in model_cfg.items() if key != "_target_"}
    unknown = sorted(set(kwargs) - set(_CONFIG_TYPES))
    if unknown:
        raise ValueError(
            f"{where}: model config keys {unknown} are not PointerTask's {sorted(_CONFIG_TYPES)}"
        )
    task = _build(kwargs)
    task.load_state_dict(checkpoint.model, strict=True)
    check_config(_model_config(task), _CONFIG_TYPES, where)
    return task


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _batch_size(run_dir: Path) -> int | None:
    """``data.batch_size`` of a run's ``config.yaml``, if it has one."""
    import yaml

    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))
        value = config["data"]["batch_size"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) else None


def _wall_seconds(info: dict[str, Any]) -> float | None:
    try:
        start = datetime.datetime.fromisoformat(info["start_time"])
        end = datetime.datetime.fromisoformat(info["end_time"])
    except (KeyError, TypeError, ValueError):
        return None
    return (end - start).total_seconds()


def _training_runs(run_dir: Path) -> list[dict[str, Any]]:
    """The runs that trained a checkpoint of ``run_dir``, oldest first, following ``resumed_from``."""
    runs: list[dict[str, Any]] = []
    seen: set[Path] = set()
    folder: Path | None = run_dir
    while folder is not None and folder.resolve() not in seen and len(runs) < _MAX_RUNS:
        seen.add(folder.resolve())
        info = _read_json(folder / "run.json")
        if info is None:
            break
        runs.append(
            {
                "run": folder.name,
                "start_step": info.get("start_step"),
                "end_step": info.get("end_step"),
                "batch_size": _batch_size(folder),
                "device": info.get("device"),
                "wall_s": _wall_seconds(info),
                "status": info.get("status"),
                "git_sha": info.get("git_sha"),
            }
        )
        resumed = info.get("resumed_from")
        folder = Path(resumed).parent.parent if isinstance(resumed, str) else None
    return runs[::-1]


def _provenance(file: Path, checkpoint: Checkpoint) -> dict[str, Any]:
    run_dir = file.parent.parent
    info = _read_json(run_dir / "run.json") or {}
    config = checkpoint.config
    runs = _training_runs(run_dir)
    seconds = [run["wall_s"] for run in runs]
    return {
        "checkpoint": file.name,
        "step": checkpoint.step,
        "geoattn_version": checkpoint.geoattn_version,
        "git_sha": info.get("git_sha"),
        "git_dirty": info.get("git_dirty"),
        "device": info.get("device"),
        "seed": config.get("seed"),
        "data": config.get("data"),
        "optimizer": config.get("optimizer"),
        "trainer": config.get("trainer"),
        "last_validation": last_validation(run_dir),
        "runs": runs,
        "train_wall_s": sum(seconds) if runs and None not in seconds else None,
    }


def load_pointer_checkpoint(
    checkpoint: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> tuple[PointerTask, dict[str, Any]]:
    """The :class:`~geoattn.train.tasks.pointer.PointerTask` of a ``geoattn-train`` checkpoint (file or run
    folder), in eval mode, and the manifest entry an export would write for it (``model_config``,
    ``provenance``; module docstring). Loaded safely (``weights_only=True``, no ``_target_`` instantiated).

    Raises:
        FileNotFoundError: no checkpoint there.
        ValueError: the checkpoint is not of a PointerTask, or its model config has keys PointerTask lacks.
        geoattn.train.checkpoint.CheckpointError: unreadable, or not a geoattn checkpoint.
    """
    from geoattn.train.checkpoint import load_checkpoint, resolve_checkpoint

    file = resolve_checkpoint(checkpoint)
    loaded = load_checkpoint(file)
    task = _task_from_checkpoint(loaded, f"checkpoint {str(file)!r}")
    entry = {"model_config": _model_config(task), "provenance": _provenance(file, loaded)}
    return task.to(map_location).eval(), entry


def export_pointer_model(
    checkpoint: str | os.PathLike[str],
    name: str,
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    description: str = "",
) -> Path:
    """Write the pointer network of a ``geoattn-train`` checkpoint as ``<name>.safetensors`` (float32) and
    register it in the manifest with its sha256, ``model_config`` and provenance (module docstring).

    Args:
        checkpoint: a checkpoint file or run folder (its newest checkpoint) of a ``pointer/*`` experiment.
        name: the model's name (``a-z 0-9 _ . -``).
        weights_dir: the weights folder (created if missing); ``None`` is the package's.
        description: free text stored in the manifest.

    Returns:
        The path of the weights file. Both files are written atomically; other entries are kept.
    """
    check_name(name)
    task, entry = load_pointer_checkpoint(checkpoint)
    return _folder(weights_dir).save(name, task, {**entry, "description": description})


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m geoattn.solvers.pointer_pretrained {export,list}``; returns the exit status."""
    return _folder(None).main(argv, export=export_pointer_model, description=(__doc__ or "").split("\n")[0])


if __name__ == "__main__":
    raise SystemExit(main())
