"""The Trainer's boundary checks: task protocol, settings, loss shape, device."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from geoattn.train import Trainer
from geoattn.train.trainer import move_to_device, resolve_device


class Mean(nn.Module):
    def __init__(self, scalar: bool = True) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))
        self.scalar = scalar

    def training_loss(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.w * batch
        return out.mean() if self.scalar else out

    def validation_metrics(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"w": self.w.sum()}


class Ones:
    def train_batches(self, generator: torch.Generator) -> Iterator[torch.Tensor]:
        yield torch.ones(2)  # one batch per epoch

    def val_batches(self) -> list[torch.Tensor]:
        return [torch.ones(2), torch.zeros(2)]


def _trainer(tmp_path: Path, **overrides: Any) -> Trainer:
    kwargs: dict[str, Any] = {
        "model": Mean(),
        "data": Ones(),
        "optimizer": lambda params: torch.optim.SGD(params, lr=0.5),
        "run_dir": tmp_path,
        "max_steps": 3,
        "progress_bar": False,
        "device": "cpu",
        "log_every": 1,
    }
    return Trainer(**{**kwargs, **overrides})


def test_epoch_wise_sources_are_restarted_and_validation_is_averaged(tmp_path: Path) -> None:
    result = _trainer(tmp_path).fit()
    assert result.step == 3  # three one-batch epochs
    assert result.val_metrics == {"w": pytest.approx(2 * (1 - 3 * 0.25))}  # each step moves w by lr * 0.5


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        ({"model": nn.Linear(2, 2)}, TypeError, "model: expected an nn.Module with training_loss"),
        ({"data": [1, 2]}, TypeError, "data: expected an object with train_batches"),
        ({"optimizer": "adam"}, TypeError, "optimizer: expected a callable"),
        ({"max_steps": -1}, ValueError, "trainer.max_steps=-1"),
        ({"val_every": 0}, ValueError, "trainer.val_every=0"),
        ({"grad_clip": -1.0}, ValueError, "trainer.grad_clip=-1.0"),
        ({"keep_last": 0}, ValueError, "trainer.keep_last=0"),
        ({"device": "tpu"}, ValueError, "trainer.device='tpu'"),
        (
            {"lr_schedule": "step"},
            ValueError,
            r"trainer.lr_schedule='step': expected one of \['constant', 'cosine'\]",
        ),
        ({"lr_final_ratio": 1.5}, ValueError, r"trainer.lr_final_ratio=1.5: expected a number in \[0, 1\]"),
    ],
)
def test_bad_arguments_are_named(tmp_path: Path, overrides: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        _trainer(tmp_path, **overrides)


def test_non_scalar_loss_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"Mean.training_loss must return a scalar tensor, got \(2,\)"):
        _trainer(tmp_path, model=Mean(scalar=False)).fit()


def test_grad_clip_bounds_the_update(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, max_steps=1, grad_clip=0.1)
    trainer.fit()
    # gradient (0.5, 0.5) has norm 0.707; clipped to 0.1, SGD with lr 0.5 moves each weight by 0.5 * 0.1 / sqrt 2
    assert torch.allclose(trainer.model.w, torch.full((2,), 1 - 0.05 / 2**0.5))


def test_cosine_schedule_decays_the_rate_and_a_resumed_run_continues_it(tmp_path: Path) -> None:
    # gradient 0.5 per weight; rates 0.5 * (1, 0.55, 0.1): cos decay from 1 to lr_final_ratio=0.1 over 3 steps
    expected = 1 - 0.5 * 0.5 * (1 + 0.55 + 0.1)
    schedule = {"lr_schedule": "cosine", "lr_final_ratio": 0.1}
    straight = _trainer(tmp_path / "straight", **schedule)
    straight.fit()
    assert torch.allclose(straight.model.w, torch.full((2,), expected))
    lrs = [
        row["lr"]
        for row in map(json.loads, (tmp_path / "straight/metrics.jsonl").read_text().splitlines())
        if row["split"] == "train"
    ]
    assert lrs == pytest.approx([0.5, 0.275, 0.05])  # log_every=1: the rate each step used

    stopped = _trainer(tmp_path / "resumed", time_limit_s=1e-9, **schedule)
    assert stopped.fit().step == 1
    resumed = _trainer(tmp_path / "resumed", **schedule)
    resumed.fit(resume=tmp_path / "resumed")
    assert torch.allclose(resumed.model.w, straight.model.w)


def test_a_checkpoint_without_base_rates_resumes_under_a_schedule_from_its_rate(tmp_path: Path) -> None:
    # a checkpoint from before the schedule option: its optimizer state holds no initial_lr
    _trainer(tmp_path, max_steps=1).fit()
    file = tmp_path / "checkpoints" / "step_00000001.pt"
    checkpoint = torch.load(file, weights_only=True)
    for group in checkpoint["optimizer"]["param_groups"]:
        del group["initial_lr"]
    torch.save(checkpoint, file)
    resumed = _trainer(tmp_path, lr_schedule="cosine", lr_final_ratio=0.1)
    resumed.fit(resume=tmp_path)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows if r["split"] == "train"][-2:] == pytest.approx([0.275, 0.05])  # base 0.5


def test_devices_and_batch_moves() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    batch = {"a": [torch.ones(1), (torch.zeros(1), "tag")], "n": 3}
    moved = move_to_device(batch, torch.device("cpu"))
    assert moved["n"] == 3 and moved["a"][1][1] == "tag" and isinstance(moved["a"][1], tuple)
