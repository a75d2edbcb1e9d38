"""Named pointer networks: export from a training checkpoint, verified loading, clear errors, the shipped model."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from geoattn._weights import MANIFEST_NAME, PretrainedWeightsError
from geoattn.solvers.pointer_pretrained import (
    available_pointer_models,
    export_pointer_model,
    load_pointer_checkpoint,
    load_pointer_model,
    main,
    pointer_model_entry,
)
from geoattn.tasks.labels import labelled_dataset
from geoattn.train import Checkpoint, save_checkpoint
from geoattn.train.rng import get_rng_state
from geoattn.train.tasks.pointer import PointerTask

TARGET = "geoattn.train.tasks.pointer.PointerTask"


def _run(folder: Path, task: PointerTask, *, step: int, resumed_from: Path | None = None) -> Path:
    """A run folder as ``geoattn-train`` leaves it (run.json, config.yaml, metrics.jsonl, one checkpoint)."""
    model_cfg = {"_target_": TARGET, "problem": task.problem, "hidden_dim": task.network.hidden_dim}
    checkpoint = Checkpoint(
        step=step,
        model=task.state_dict(),
        optimizer={},
        rng=get_rng_state(),
        data={},
        config={"seed": 0, "model": model_cfg, "data": {"train_seed": 0, "batch_size": 4}},
    )
    file = save_checkpoint(checkpoint, folder / "checkpoints" / f"step_{step:08d}.pt")
    info = {
        "git_sha": "abc123",
        "device": "cuda",
        "start_step": 0 if resumed_from is None else 3,
        "end_step": step,
        "start_time": "2026-01-01T00:00:00+00:00",
        "end_time": "2026-01-01T00:01:40+00:00",
        "resumed_from": None if resumed_from is None else str(resumed_from),
    }
    (folder / "run.json").write_text(json.dumps(info))
    (folder / "config.yaml").write_text("data:\n  batch_size: 4\n")
    (folder / "metrics.jsonl").write_text(
        json.dumps({"step": step, "split": "val", "accuracy_n5": 0.5}) + "\n"
    )
    return file


def _task(problem: str, seed: int = 0) -> PointerTask:
    torch.manual_seed(seed)
    return PointerTask(problem, hidden_dim=8)  # type: ignore[arg-type]


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, PointerTask]:
    """A weights folder holding ``tiny`` (Delaunay, resumed once), and the task it came from."""
    task = _task("delaunay")
    first = _run(tmp_path / "first", task, step=3)
    _run(tmp_path / "second", task, step=7, resumed_from=first)
    export_pointer_model(tmp_path / "second", "tiny", weights_dir=tmp_path / "weights", description="test")
    return tmp_path / "weights", task


def _manifest(folder: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((folder / MANIFEST_NAME).read_text())
    return manifest


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and (x == y).all() for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("problem", ["convex_hull", "delaunay", "tsp"])
def test_export_then_load_predicts_the_same(tmp_path: Path, problem: str, one_thread: None) -> None:
    task = _task(problem).eval()
    export_pointer_model(_run(tmp_path / "run", task, step=7), problem, weights_dir=tmp_path)
    loaded = load_pointer_model(problem, weights_dir=tmp_path)
    assert isinstance(loaded, PointerTask) and not loaded.training and loaded.problem == problem
    points = torch.rand(8, 5, 2, generator=torch.Generator().manual_seed(1))
    assert _same(loaded.predict(points), task.predict(points))
    loaded.beam_width = task.beam_width = 3
    assert _same(loaded.predict(points), task.predict(points))
    file = tmp_path / f"{problem}.safetensors"
    assert available_pointer_models(tmp_path) == [problem] and file.is_file()


def test_manifest_records_config_and_provenance(exported: tuple[Path, PointerTask]) -> None:
    folder, _ = exported
    entry = pointer_model_entry("tiny", weights_dir=folder)
    assert entry["model_config"] == {
        "problem": "delaunay",
        "beam_width": 1,
        "masked_training": False,
        "input_dim": 2,
        "hidden_dim": 8,
        "embed_dim": 8,
        "num_layers": 1,
        "clip": None,
    }
    assert entry["file"] == "tiny.safetensors" and re.fullmatch("[0-9a-f]{64}", entry["sha256"])
    provenance = entry["provenance"]
    assert provenance["step"] == 7 and provenance["git_sha"] == "abc123" and provenance["seed"] == 0
    assert provenance["last_validation"]["accuracy_n5"] == 0.5 and provenance["data"]["batch_size"] == 4
    runs = provenance["runs"]
    assert [(r["run"], r["start_step"], r["end_step"]) for r in runs] == [("first", 0, 3), ("second", 3, 7)]
    assert all(r["wall_s"] == 100.0 and r["batch_size"] == 4 for r in runs)
    assert provenance["train_wall_s"] == 200.0
    assert "default" not in _manifest(folder)  # pointer networks solve different problems: no default


def test_checkpoint_loads_like_its_export(exported: tuple[Path, PointerTask], tmp_path: Path) -> None:
    folder, _ = exported
    task, entry = load_pointer_checkpoint(tmp_path / "second")
    assert not task.training and entry["provenance"]["step"] == 7
    assert entry["model_config"] == pointer_model_entry("tiny", weights_dir=folder)["model_config"]
    loaded = load_pointer_model("tiny", weights_dir=folder)
    for key, value in task.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


@pytest.mark.parametrize("tamper", ["weights", "manifest"])
def test_a_sha256_mismatch_is_refused(exported: tuple[Path, PointerTask], tamper: str) -> None:
    """A modified weights file, or a manifest recording another sha256: the file is never parsed."""
    folder, _ = exported
    path, manifest = folder / "tiny.safetensors", _manifest(folder)
    recorded = manifest["models"]["tiny"]["sha256"]
    if tamper == "weights":
        path.write_bytes(path.read_bytes()[:-1] + b"!")
    else:
        recorded = manifest["models"]["tiny"]["sha256"] = "0" * 64
        (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    found = re.escape(f"{str(path)!r} has sha256 ") + "[0-9a-f]{64}"
    with pytest.raises(
        PretrainedWeightsError, match=found + re.escape(f", but the manifest records {recorded}")
    ):
        load_pointer_model("tiny", weights_dir=folder)


def test_unknown_and_invalid_names(exported: tuple[Path, PointerTask]) -> None:
    folder, _ = exported
    manifest = re.escape(str(folder / MANIFEST_NAME))
    with pytest.raises(
        PretrainedWeightsError, match=rf"no pretrained model 'hull' in '{manifest}'; .*\['tiny'\]"
    ):
        load_pointer_model("hull", weights_dir=folder)
    with pytest.raises(ValueError, match=re.escape("name '../tiny' is invalid")):
        load_pointer_model("../tiny", weights_dir=folder)
    with pytest.raises(FileNotFoundError, match=r"no pretrained pointer networks: .* does not exist \(train"):
        load_pointer_model("tiny", weights_dir=folder / "missing")


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("hidden_dim", "8", r"model_config\.hidden_dim = '8' has the wrong type"),
        ("masked_training", 0, r"model_config\.masked_training = 0 has the wrong type"),
        ("beam_width", True, r"model_config\.beam_width = True has the wrong type"),
        ("clip", "inf", r"model_config\.clip = 'inf' has the wrong type"),
        ("_target_", "os.system", r"model_config must have the keys"),
        ("problem", "knapsack", r"model_config is invalid: .*problem must be one of"),
        ("hidden_dim", 16, r"the weights do not fit the model_config"),
    ],
)
def test_bad_configs_are_refused(
    exported: tuple[Path, PointerTask], key: str, value: Any, match: str
) -> None:
    folder, _ = exported
    manifest = _manifest(folder)
    manifest["models"]["tiny"]["model_config"][key] = value
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    where = re.escape(f"{str(folder / MANIFEST_NAME)!r}, model 'tiny': ")
    with pytest.raises(PretrainedWeightsError, match=where + match):
        load_pointer_model("tiny", weights_dir=folder)


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(tmp_path / "run", _task("tsp"), step=7)
    weights = str(tmp_path / "weights")
    assert main(["export", str(tmp_path / "run"), "tsp_tiny", "--weights-dir", weights]) == 0
    assert main(["list", "--weights-dir", weights]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "tsp_tiny"
    assert main(["export", str(tmp_path / "run"), "Bad Name", "--weights-dir", weights]) == 1
    assert "is invalid" in capsys.readouterr().err
    other = Checkpoint(step=1, model={}, optimizer={}, rng={}, data={}, config={"model": {"_target_": "x.Y"}})
    save_checkpoint(other, tmp_path / "other" / "step_00000001.pt")
    assert main(["export", str(tmp_path / "other"), "other", "--weights-dir", weights]) == 1
    err = capsys.readouterr().err
    assert re.search(
        r"step_00000001\.pt': expected a checkpoint of the .*PointerTask task, its model is 'x\.Y'", err
    )
    assert available_pointer_models(weights) == ["tsp_tiny"]


def _check_triangles(predictions: list[np.ndarray], n: int) -> None:
    for triangles in predictions:
        assert triangles.ndim == 2 and triangles.shape[1] == 3 and 1 <= len(triangles) <= 2 * n - 5
        assert ((triangles >= 0) & (triangles < n)).all()
        assert all(len(set(t)) == 3 for t in triangles.tolist())  # three distinct vertices each


def _check_hulls(predictions: list[np.ndarray], n: int) -> None:
    for hull in predictions:  # closed: the first vertex repeated at the end, the others distinct
        assert len(hull) >= 4 and hull[0] == hull[-1] and len(set(hull[:-1].tolist())) == len(hull) - 1
        assert ((hull >= 0) & (hull < n)).all()


def _check_tours(predictions: list[np.ndarray], n: int) -> None:
    for tour in predictions:
        assert tour[0] == 0 and sorted(tour.tolist()) == list(range(n))  # a permutation from city 0


# name: (problem, hidden units, steps, test n, structural check, {metric: (low, high)}) — the bounds sit well
# outside what the network scores on these 100 instances (RESULTS.md: 10,000-instance test sets), so they
# catch a broken load or decoder, not noise.
SHIPPED = {
    "delaunay_5": (
        "delaunay",
        256,
        47205,
        5,
        _check_triangles,
        {"accuracy_n5": (0.6, 1.0), "triangle_coverage_n5": (0.85, 1.0)},
    ),
    "convex_hull_50": (
        "convex_hull",
        256,
        18272,
        50,
        _check_hulls,
        {"accuracy_n50": (0.6, 1.0), "area_coverage_n50": (0.995, 1.0)},
    ),
    "tsp_20": ("tsp", 512, 8700, 10, _check_tours, {"gap_n10": (0.0, 3.0)}),  # n = 10: Held-Karp labels
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_networks_decode_valid_outputs_and_score_near_their_tests(
    one_thread: None, name: str
) -> None:
    problem, hidden, steps, n, check, bounds = SHIPPED[name]
    assert name in available_pointer_models()
    model = load_pointer_model(name)
    assert model.problem == problem and model.network.hidden_dim == hidden
    assert pointer_model_entry(name)["provenance"]["step"] == steps
    data = labelled_dataset(problem, n, 100, seed=2_000_000 + n, workers=1)
    check(model.predict(data.points), n)
    metrics = model.validation_metrics({"points": data.points, "labels": data.padded_labels()})
    for key, (low, high) in bounds.items():
        assert low <= metrics[key] <= high, (key, metrics)
