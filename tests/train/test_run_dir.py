"""The run folder: resolved config.yaml, run.json metadata, metrics.jsonl rows."""

from __future__ import annotations

import datetime
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from omegaconf import DictConfig

from geoattn.train import resolve_config, train
from geoattn.train.metadata import git_state, package_versions

Compose = Callable[..., DictConfig]


@pytest.fixture
def run(compose_train: Compose, tmp_path: Path) -> tuple[Path, dict[str, object]]:
    cfg = compose_train(
        "experiment=tree_embedding_hyperbolic", "trainer.max_steps=4", "trainer.val_every=2", "seed=7"
    )
    train(cfg, run_dir=tmp_path)
    return tmp_path, resolve_config(cfg)


def test_config_yaml_is_the_resolved_config(run: tuple[Path, dict[str, object]]) -> None:
    run_dir, resolved = run
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert written == resolved
    assert "${" not in (run_dir / "config.yaml").read_text()


def test_run_json_records_code_versions_seed_and_outcome(run: tuple[Path, dict[str, object]]) -> None:
    info = json.loads((run[0] / "run.json").read_text())
    assert info["seed"] == 7
    assert info["status"] == "completed" and info["start_step"] == 0 and info["end_step"] == 4
    assert info["resumed_from"] is None and info["device"] == "cpu"
    assert info["git_sha"] is None or len(info["git_sha"]) == 40
    assert {"torch", "triton", "torch_geometric", "pykeen", "geoopt", "hydra-core"} <= info["packages"].keys()
    assert info["packages"]["torch"]  # installed here, so a version string
    start = datetime.datetime.fromisoformat(info["start_time"])
    assert start.tzinfo is not None and start <= datetime.datetime.fromisoformat(info["end_time"])


def test_metrics_jsonl_has_train_and_val_rows(run: tuple[Path, dict[str, object]]) -> None:
    lines = (run[0] / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    train_rows = [r for r in rows if r["split"] == "train"]
    val_rows = [r for r in rows if r["split"] == "val"]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4]  # log_every=1
    assert [r["step"] for r in val_rows] == [2, 4]
    assert all({"loss", "lr", "elapsed_s"} <= r.keys() for r in train_rows)
    assert all({"loss", "distortion", "map", "k", "elapsed_s"} <= r.keys() for r in val_rows)
    assert all(r["k"] < 0 for r in val_rows)  # hyperbolic
    assert all(0.0 <= r["map"] <= 1.0 for r in val_rows)


def test_git_state_outside_a_checkout_and_without_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GEOATTN_GIT_SHA", raising=False)
    assert git_state(tmp_path) == {"sha": None, "dirty": None}
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable to be found
    assert git_state() == {"sha": None, "dirty": None}


def test_git_sha_variable_names_the_commit_where_git_cannot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEOATTN_GIT_SHA", "0c371dc")
    assert git_state(tmp_path) == {"sha": "0c371dc", "dirty": None}  # no checkout there, the variable answers


def test_git_state_inside_a_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEOATTN_GIT_SHA", raising=False)

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    try:
        git("init", "-q")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not available")
    (tmp_path / "f").write_text("1")
    git("add", "f")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "c")
    state = git_state(tmp_path)
    assert state["sha"] is not None and len(state["sha"]) == 40 and state["dirty"] is False
    (tmp_path / "f").write_text("2")
    assert git_state(tmp_path)["dirty"] is True


def test_package_versions_reports_missing_packages_as_none() -> None:
    versions = package_versions(("torch", "surely-not-installed-pkg"))
    assert versions["torch"] and versions["surely-not-installed-pkg"] is None
