"""Pretrained weights: export from a training checkpoint, verified loading, clear errors for bad folders."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from geoattn.nn import TSPAttentionModel
from geoattn.solvers import PretrainedWeightsError, available_pretrained, export_pretrained, load_pretrained
from geoattn.solvers.pretrained import MANIFEST_NAME, WEIGHTS_DIR, main
from geoattn.train import Checkpoint, save_checkpoint
from geoattn.train.rng import get_rng_state
from geoattn.train.tasks.tsp_policy import TSPPolicy

CONFIG = {"embed_dim": 8, "heads": 2, "layers": 1, "ff_dim": 16, "clip": 10.0, "norm": "instance"}


def _checkpoint(folder: Path, seed: int = 0) -> tuple[Path, TSPPolicy]:
    """A checkpoint of the tsp_policy task with a tiny randomly initialised policy, in a run folder."""
    torch.manual_seed(seed)
    task = TSPPolicy(**CONFIG)  # type: ignore[arg-type]
    model_cfg = {"_target_": "geoattn.train.tasks.tsp_policy.TSPPolicy", **CONFIG, "val_num_starts": None}
    checkpoint = Checkpoint(
        step=7,
        model=task.state_dict(),
        optimizer={},
        rng=get_rng_state(),
        data={},
        config={"seed": seed, "model": model_cfg, "data": {"stages": [{"n": 20}]}},
    )
    (folder / "metrics.jsonl").parent.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 7, "split": "val", "aug_gap_n20": 1.5}) + "\n")
    return save_checkpoint(checkpoint, folder / "checkpoints" / "step_00000007.pt"), task


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, TSPPolicy]:
    """A weights folder with one exported model ``tiny``, and the task it came from."""
    file, task = _checkpoint(tmp_path / "run")
    export_pretrained(file, "tiny", weights_dir=tmp_path / "weights", description="test")
    return tmp_path / "weights", task


def _manifest(folder: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((folder / MANIFEST_NAME).read_text())
    return manifest


def test_export_then_load_gives_the_same_policy(exported: tuple[Path, TSPPolicy]) -> None:
    folder, task = exported
    model = load_pretrained("tiny", weights_dir=folder)
    assert isinstance(model, TSPAttentionModel) and not model.training
    assert model.config() == CONFIG
    for key, value in task.policy.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    entry = _manifest(folder)["models"]["tiny"]
    assert entry["file"] == "tiny.safetensors" and len(entry["sha256"]) == 64
    assert entry["provenance"]["step"] == 7 and entry["provenance"]["last_validation"]["aug_gap_n20"] == 1.5
    assert available_pretrained(weights_dir=folder) == ["tiny"]
    assert load_pretrained(weights_dir=folder).config() == CONFIG  # the first export is the default


def test_second_export_keeps_the_first_and_can_become_default(tmp_path: Path) -> None:
    folder = tmp_path / "weights"
    export_pretrained(_checkpoint(tmp_path / "a", seed=0)[0], "first", weights_dir=folder)
    export_pretrained(_checkpoint(tmp_path / "b", seed=1)[0], "second", weights_dir=folder, default=True)
    assert available_pretrained(weights_dir=folder) == ["first", "second"]
    assert _manifest(folder)["default"] == "second"
    first, second = load_pretrained("first", weights_dir=folder), load_pretrained(weights_dir=folder)
    assert not torch.equal(first.embed.weight, second.embed.weight)


def test_tampered_weights_are_refused(exported: tuple[Path, TSPPolicy]) -> None:
    folder, _ = exported
    path = folder / "tiny.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(PretrainedWeightsError, match=r"sha256 .* corrupt or was modified"):
        load_pretrained("tiny", weights_dir=folder)


def test_weights_that_do_not_fit_the_config_are_refused(exported: tuple[Path, TSPPolicy]) -> None:
    folder, _ = exported
    manifest = _manifest(folder)
    manifest["models"]["tiny"]["model_config"]["embed_dim"] = 16
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(PretrainedWeightsError, match="do not fit the model_config"):
        load_pretrained("tiny", weights_dir=folder)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda m: m.update(format_version=99), "format_version 99; this geoattn reads 1"),
        (lambda m: m.pop("models"), "not a weights manifest"),
        (lambda m: m["models"]["tiny"].update(file="../x.safetensors"), "'file' must be 'tiny.safetensors'"),
        (lambda m: m["models"]["tiny"].update(sha256="abc"), "64 lowercase hex"),
        (lambda m: m["models"]["tiny"]["model_config"].update(layers="1"), r"model_config.layers = '1'"),
        (lambda m: m["models"]["tiny"]["model_config"].update(_target_="os.system"), "must have the keys"),
    ],
)
def test_malformed_manifests_are_refused(exported: tuple[Path, TSPPolicy], edit: Any, match: str) -> None:
    folder, _ = exported
    manifest = _manifest(folder)
    edit(manifest)
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(PretrainedWeightsError, match=match):
        load_pretrained("tiny", weights_dir=folder)


def test_missing_and_unknown_are_named(exported: tuple[Path, TSPPolicy], tmp_path: Path) -> None:
    folder, _ = exported
    with pytest.raises(ValueError, match=r"no pretrained model 'other' .* available: \['tiny'\]"):
        load_pretrained("other", weights_dir=folder)
    with pytest.raises(ValueError, match=re.escape("name '../tiny' is invalid")):
        load_pretrained("../tiny", weights_dir=folder)
    (folder / "tiny.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape("tiny.safetensors' does not exist")):
        load_pretrained("tiny", weights_dir=folder)
    with pytest.raises(
        FileNotFoundError, match=r"manifest\.json' does not exist \(train a policy with `geoattn-train"
    ):
        load_pretrained(weights_dir=tmp_path / "empty")
    assert available_pretrained(weights_dir=tmp_path / "empty") == []
    (folder / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(PretrainedWeightsError, match="not valid JSON"):
        load_pretrained("tiny", weights_dir=folder)


def test_the_package_weights_load_or_say_what_is_missing() -> None:
    if not (WEIGHTS_DIR / MANIFEST_NAME).is_file():
        with pytest.raises(FileNotFoundError, match="no pretrained TSP weights"):
            load_pretrained()
        return
    for name in available_pretrained():
        assert isinstance(load_pretrained(name), TSPAttentionModel)


def test_export_refuses_other_tasks(tmp_path: Path) -> None:
    checkpoint = Checkpoint(
        step=1, model={}, optimizer={}, rng=get_rng_state(), data={}, config={"model": {"_target_": "x.Y"}}
    )
    file = save_checkpoint(checkpoint, tmp_path / "step_00000001.pt")
    with pytest.raises(
        ValueError, match=r"expected a checkpoint of the .*TSPPolicy task, its model is 'x\.Y'"
    ):
        export_pretrained(file, "bad", weights_dir=tmp_path / "weights")
    assert not (tmp_path / "weights" / MANIFEST_NAME).exists()


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file, _ = _checkpoint(tmp_path / "run")
    weights = str(tmp_path / "weights")
    assert main(["export", str(tmp_path / "run"), "cli", "--weights-dir", weights]) == 0
    assert main(["list", "--weights-dir", weights]) == 0
    assert "cli (default)" in capsys.readouterr().out
    assert main(["export", str(file), "Bad Name", "--weights-dir", weights]) == 1
    assert "is invalid" in capsys.readouterr().err
