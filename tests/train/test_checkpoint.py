"""Checkpoints: safe loading, atomic writes, the _target_ allow-list, clear errors."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import torch
from omegaconf import DictConfig

from geoattn.train import (
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    UnsafeConfigError,
    check_targets,
    instantiate_from_checkpoint,
    load_checkpoint,
    save_checkpoint,
    train,
)
from geoattn.train.atomic import atomic_write
from geoattn.train.checkpoint import list_checkpoints
from geoattn.train.rng import get_rng_state

Compose = Callable[..., DictConfig]


def _checkpoint(step: int, config: dict[str, Any] | None = None) -> Checkpoint:
    return Checkpoint(
        step=step,
        model={"w": torch.full((2,), float(step))},
        optimizer={"state": {}, "param_groups": []},
        rng=get_rng_state(),
        data={"epoch": 0, "batches_in_epoch": step, "generator": torch.Generator().get_state()},
        config=config or {},
    )


@pytest.fixture
def trained_run(compose_train: Compose, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    train(compose_train("experiment=tree_embedding_hyperbolic", "trainer.max_steps=2"), run_dir=run_dir)
    return run_dir


def test_checkpoint_loads_with_weights_only_and_carries_everything(trained_run: Path) -> None:
    raw = torch.load(trained_run / "checkpoints" / "step_00000002.pt", weights_only=True)
    assert raw["format_version"] == FORMAT_VERSION and raw["step"] == 2
    assert {"model", "optimizer", "rng", "data", "config", "geoattn_version"} <= raw.keys()
    assert set(raw["rng"]) == {"torch", "cuda", "python", "numpy"}
    assert raw["config"]["model"]["_target_"] == "geoattn.train.tasks.tree_embedding.TreeEmbedding"
    assert raw["config"]["model"]["num_nodes"] == 13  # resolved, not "${data.num_nodes}"


def test_instantiate_from_checkpoint_rebuilds_the_trained_model(trained_run: Path) -> None:
    model = instantiate_from_checkpoint(trained_run)
    state = load_checkpoint(trained_run).model
    assert torch.equal(model.state_dict()["tangent"], state["tangent"])
    assert torch.equal(model.curvature(), -torch.nn.functional.softplus(state["curvature.theta"]))


def test_failed_save_leaves_the_previous_checkpoint_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "step.pt"
    save_checkpoint(_checkpoint(1), path)
    before = path.read_bytes()

    def broken_save(obj: object, f: BinaryIO) -> None:
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(_checkpoint(2), path)
    assert path.read_bytes() == before
    assert load_checkpoint(path).step == 1
    assert os.listdir(tmp_path) == ["step.pt"]  # no temp file left behind


def test_atomic_write_replaces_the_file_and_respects_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("old")
    atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_text() == "new"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_keep_last_prunes_old_checkpoints(compose_train: Compose, tmp_path: Path) -> None:
    cfg = compose_train("experiment=tree_embedding_euclidean", "trainer.max_steps=4", "trainer.keep_last=2")
    train(cfg, run_dir=tmp_path)
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == [
        "step_00000003.pt",
        "step_00000004.pt",
    ]


# --- the _target_ allow-list -------------------------------------------------------------------------------


def test_instantiate_from_checkpoint_refuses_os_system(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    config = {"model": {"_target_": "os.system", "command": f"touch {marker}"}}
    save_checkpoint(_checkpoint(1, config), tmp_path / "evil.pt")
    with pytest.raises(UnsafeConfigError, match=r"model\._target_ = 'os\.system' is not an allowed target"):
        instantiate_from_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"_target_": "subprocess.run", "args": ["true"]}, "subprocess.run"),
        (
            {
                "_target_": "geoattn.train.tasks.tree_embedding.TreeEmbedding",
                "curvature": {"_target_": "os.system"},
            },
            r"curvature\._target_ = 'os\.system'",
        ),
        (
            {"_target_": "torch.nn.Sequential", "_args_": [{"_target_": "builtins.eval", "source": "1"}]},
            r"_args_\[0\]\._target_ = 'builtins\.eval'",
        ),
        # attribute chains through geoattn modules to outside objects
        ({"_target_": "geoattn.train.checkpoint.os.system"}, "not an allowed target"),
        ({"_target_": "geoattn.train.checkpoint.torch.load"}, "not an allowed target"),
        # geoattn functions that have side effects are not models
        (
            {"_target_": "geoattn.train.atomic.atomic_write_text", "path": "x", "text": "y"},
            "not an allowed target",
        ),
        ({"_target_": "geoattn.no_such_module.Thing"}, "not an allowed target"),
        ({"_target_": 3}, "must be a string"),
        ({"_target_": "geoattn.manifolds.FixedCurvature", "k": "${oc.env:HOME}"}, "interpolation"),
    ],
)
def test_check_targets_rejects(config: dict[str, Any], match: str) -> None:
    with pytest.raises(UnsafeConfigError, match=match):
        check_targets(config)


@pytest.mark.parametrize(
    "config",
    [
        {"_target_": "geoattn.manifolds.HyperbolicCurvature", "init": -1.0},
        {
            "_target_": "geoattn.train.tasks.tree_embedding.TreeEmbedding",
            "num_nodes": 3,
            "curvature": {"_target_": "geoattn.manifolds.curvature.SignedCurvature"},
        },
        {"_target_": "torch.optim.AdamW", "_partial_": True},
        {"_target_": "geoopt.optim.RiemannianAdam", "_partial_": True},
        {
            "_target_": "torch.nn.Sequential",
            "_args_": [{"_target_": "torch.nn.Linear", "in_features": 2, "out_features": 2}],
        },
        {"no_target": {"nested": [1, 2, "text"]}},
    ],
)
def test_check_targets_accepts(config: dict[str, Any]) -> None:
    check_targets(config)


# --- clear errors ----------------------------------------------------------------------------------------


def test_format_version_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "future.pt"
    save_checkpoint(_checkpoint(1), path)
    raw = torch.load(path, weights_only=True)
    raw["format_version"] = FORMAT_VERSION + 1
    torch.save(raw, path)
    with pytest.raises(CheckpointError, match=rf"format version {FORMAT_VERSION + 1}.*reads format version"):
        load_checkpoint(path)


def test_missing_path_and_empty_folder_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.pt' does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match="no checkpoint files"):
        load_checkpoint(tmp_path)


def test_unreadable_and_foreign_files_are_clear_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip archive")
    with pytest.raises(CheckpointError, match="not a readable torch file"):
        load_checkpoint(garbage)

    foreign = tmp_path / "foreign.pt"
    torch.save([1, 2, 3], foreign)
    with pytest.raises(CheckpointError, match="not a geoattn checkpoint"):
        load_checkpoint(foreign)

    pickled_code = tmp_path / "code.pt"
    torch.save({"format_version": FORMAT_VERSION, "payload": Path("x")}, pickled_code)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_checkpoint(pickled_code)

    incomplete = tmp_path / "incomplete.pt"
    torch.save({"format_version": FORMAT_VERSION, "step": 1}, incomplete)
    with pytest.raises(CheckpointError, match="lacks the keys"):
        load_checkpoint(incomplete)


def test_a_run_folder_resolves_to_its_newest_checkpoint(tmp_path: Path) -> None:
    for step in (2, 10, 9):
        save_checkpoint(_checkpoint(step), tmp_path / "checkpoints" / f"step_{step:08d}.pt")
    assert load_checkpoint(tmp_path).step == 10
    assert load_checkpoint(tmp_path / "checkpoints").step == 10
