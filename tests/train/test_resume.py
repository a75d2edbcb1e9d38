"""Resuming continues a run exactly: N steps straight equals k steps, then N - k more from the checkpoint."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import DictConfig
from torch import nn

from geoattn.train import Trainer, load_checkpoint, train
from geoattn.train.rng import seed_everything

Compose = Callable[..., DictConfig]


def _assert_same_state(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("resume_from", ["run_dir", "checkpoint_file"])
def test_tree_embedding_resume_matches_a_straight_run(
    resume_from: str, compose_train: Compose, tmp_path: Path
) -> None:
    # 3 batches per epoch: stopping after 2 resumes mid-epoch, and steps 3..5 cross into the next epoch.
    common = ["experiment=tree_embedding_signed", "trainer.ckpt_every=100", "trainer.val_every=100"]
    straight = train(compose_train(*common, "trainer.max_steps=5"), run_dir=tmp_path / "straight")
    first = train(compose_train(*common, "trainer.max_steps=2"), run_dir=tmp_path / "first")
    assert first.last_checkpoint is not None
    resume = tmp_path / "first" if resume_from == "run_dir" else first.last_checkpoint
    second = train(
        compose_train(*common, "trainer.max_steps=5", f"resume={resume}"), run_dir=tmp_path / "second"
    )

    assert straight.step == second.step == 5
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "second")
    _assert_same_state(a.model, b.model)
    _assert_same_state(a.optimizer["state"][0], b.optimizer["state"][0])
    assert (
        a.data["epoch"] == b.data["epoch"] == 1
        and a.data["batches_in_epoch"] == b.data["batches_in_epoch"] == 2
    )
    assert straight.val_metrics == second.val_metrics
    # and the run really moved: the parameters differ from those at step 2
    assert not torch.equal(a.model["tangent"], load_checkpoint(tmp_path / "first").model["tangent"])


class NoisyRegression(nn.Module):
    """A model whose loss draws from the torch, python and numpy global generators every step."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(3))
        self.dropout = nn.Dropout(0.5)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        noise = random.random() + float(np.random.rand())
        prediction = self.dropout(batch["x"]) @ self.weight
        return ((prediction - batch["y"] - noise) ** 2).mean()

    def validation_metrics(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        torch.rand(1)  # validation may draw too: the trainer keeps it from shifting training's RNG
        return {"mse": ((batch["x"] @ self.weight - batch["y"]) ** 2).mean()}


class EndlessPoints:
    """An infinite source (one endless epoch) drawing each batch from the generator."""

    def train_batches(self, generator: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            x = torch.randn(4, 3, generator=generator)
            yield {"x": x, "y": x.sum(-1)}

    def val_batches(self) -> list[dict[str, torch.Tensor]]:
        x = torch.linspace(-1, 1, 12).view(4, 3)
        return [{"x": x, "y": x.sum(-1)}]


def _fit(run_dir: Path, max_steps: int, resume: Path | None = None, val_every: int = 100) -> Trainer:
    seed_everything(3)
    trainer = Trainer(
        model=NoisyRegression(),
        data=EndlessPoints(),
        optimizer=lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9),
        run_dir=run_dir,
        max_steps=max_steps,
        val_every=val_every,
        ckpt_every=100,
        progress_bar=False,
        device="cpu",
        seed=3,
    )
    trainer.fit(resume=resume)
    return trainer


def test_resume_restores_global_rngs_and_infinite_streams(tmp_path: Path) -> None:
    straight = _fit(tmp_path / "straight", 7, val_every=1)
    _fit(tmp_path / "first", 3)
    resumed = _fit(tmp_path / "second", 7, resume=tmp_path / "first")
    _assert_same_state(straight.model.state_dict(), resumed.model.state_dict())
    # the checkpoint of the straight run also matches the state after the resumed one
    _assert_same_state(load_checkpoint(tmp_path / "straight").model, resumed.model.state_dict())


def test_resuming_a_finished_run_trains_nothing(tmp_path: Path) -> None:
    done = _fit(tmp_path / "first", 2)
    again = _fit(tmp_path / "second", 2, resume=tmp_path / "first")
    assert again.step == 2
    _assert_same_state(done.model.state_dict(), again.model.state_dict())
    assert not (tmp_path / "second" / "checkpoints").exists()


class _CountingStream:
    """An infinite stream of seeded scalars that counts the batches it builds, with ``fast_forward``."""

    def __init__(self) -> None:
        self.built = 0

    def train_batches(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        while True:
            self.built += 1
            yield torch.rand((), generator=generator)

    def val_batches(self) -> list[Any]:
        return []

    def fast_forward(self, generator: torch.Generator, count: int) -> None:
        for _ in range(count):
            torch.rand((), generator=generator)


def test_resume_fast_forwards_instead_of_replaying_when_the_data_can() -> None:
    from geoattn.train.trainer import _BatchStream

    straight_data = _CountingStream()
    straight = _BatchStream(straight_data, torch.Generator().manual_seed(3), None)
    taken = [straight.next() for _ in range(5)]
    state = {**straight.state(), "batches_in_epoch": 3}  # as if checkpointed after 3 batches
    data = _CountingStream()
    resumed = _BatchStream(data, torch.Generator(), state)
    assert data.built == 0  # nothing replayed
    assert [resumed.next() for _ in range(2)] == taken[3:]
    assert resumed.state()["batches_in_epoch"] == 5 and data.built == 2


def test_resume_names_each_config_setting_that_changed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def fit(config: dict[str, Any], resume: Path | None = None) -> None:
        Trainer(
            model=NoisyRegression(),
            data=EndlessPoints(),
            optimizer=lambda params: torch.optim.SGD(params, lr=0.1),
            run_dir=tmp_path / ("second" if resume else "first"),
            max_steps=2,
            progress_bar=False,
            device="cpu",
            config=config,
        ).fit(resume=resume)

    fit({"seed": 0, "data": {"workers": 1, "n": 5}})
    with caplog.at_level(logging.WARNING, logger="geoattn.train.trainer"):
        fit(
            {"seed": 0, "data": {"workers": 4, "n": 5}, "trainer": {"max_steps": 2}},
            resume=tmp_path / "first",
        )
    (warning,) = [r.getMessage() for r in caplog.records if "resume:" in r.getMessage()]
    assert "in data.workers: 1 -> 4; the run will not replay exactly" in warning and "data.n" not in warning
