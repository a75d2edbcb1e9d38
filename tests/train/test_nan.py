"""A NaN/inf loss stops training with a clear error and leaves the last good checkpoint intact."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from geoattn.train import NonFiniteLossError, Trainer, load_checkpoint


class Scale(nn.Module):
    """``loss = (w * x - 1)^2``: finite until the data feeds it a non-finite ``x``."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.5))

    def training_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return (self.w * batch["x"] - 1.0).square()

    def validation_metrics(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"w": self.w.detach()}


class PoisonedAt:
    """``x = 1`` for every batch except number ``bad_step`` (1-based), which carries ``value``."""

    def __init__(self, bad_step: int, value: float) -> None:
        self.bad_step = bad_step
        self.value = value

    def train_batches(self, generator: torch.Generator) -> Iterator[dict[str, torch.Tensor]]:
        step = 0
        while True:
            step += 1
            yield {"x": torch.tensor(self.value if step == self.bad_step else 1.0)}

    def val_batches(self) -> list[dict[str, torch.Tensor]]:
        return [{}]


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_loss_stops_without_checkpointing_that_step(value: float, tmp_path: Path) -> None:
    trainer = Trainer(
        model=Scale(),
        data=PoisonedAt(3, value),
        optimizer=lambda params: torch.optim.SGD(params, lr=0.1),
        run_dir=tmp_path,
        max_steps=10,
        val_every=1,
        ckpt_every=1,
        progress_bar=False,
        device="cpu",
    )
    with pytest.raises(NonFiniteLossError, match=rf"loss is {value} at step 3") as info:
        trainer.fit()
    assert info.value.step == 3
    assert "step_00000002.pt" in str(info.value)  # names the checkpoint that survives

    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step_00000001.pt", "step_00000002.pt"]
    last = load_checkpoint(tmp_path)
    assert last.step == 2
    # the model was not updated with the bad loss: it still equals the last checkpoint
    assert torch.isfinite(trainer.model.w) and torch.equal(last.model["w"], trainer.model.w.detach())

    info_json = json.loads((tmp_path / "run.json").read_text())
    assert info_json["status"] == "failed" and "NonFiniteLossError" in info_json["error"]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert max(row["step"] for row in rows) == 2


def test_non_finite_loss_before_any_checkpoint_says_so(tmp_path: Path) -> None:
    trainer = Trainer(
        model=Scale(),
        data=PoisonedAt(1, float("nan")),
        optimizer=lambda params: torch.optim.SGD(params, lr=0.1),
        run_dir=tmp_path,
        max_steps=5,
        progress_bar=False,
        device="cpu",
    )
    with pytest.raises(NonFiniteLossError, match=r"step 1\b.*no checkpoint was written"):
        trainer.fit()
    assert not (tmp_path / "checkpoints").exists()
