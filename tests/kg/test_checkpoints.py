"""Atomic PyKEEN checkpoints: a run killed while its checkpoint is being written can still resume."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from pykeen.datasets.base import Dataset
from pykeen.models import MuRE
from pykeen.training import LCWATrainingLoop, TrainingLoop

from geoattn.kg import FastLCWATrainingLoop
from geoattn.kg.checkpoints import (
    AtomicCheckpoints,
    AtomicLCWATrainingLoop,
    AtomicSLCWATrainingLoop,
    atomic_training_loop,
)


class Killed(BaseException):
    """What the process would get from a time limit: not an ``Exception``, so PyKEEN does not handle it."""


def _truncating_save(obj: object, f: Any, **kwargs: Any) -> None:
    """``torch.save`` killed midway: some bytes reach the file, then the process dies."""
    if isinstance(f, str | Path):
        f = open(f, "wb")  # noqa: SIM115  (closed below, like the OS would at exit)
    f.write(b"\x80\x02 half a checkpoint")
    f.close()
    raise Killed


def _train(loop_cls: type[TrainingLoop], data: Dataset, epochs: int, folder: Path) -> None:  # type: ignore[type-arg]
    model = MuRE(triples_factory=data.training, embedding_dim=8, random_seed=0)
    loop = loop_cls(model=model, triples_factory=data.training, optimizer="adam")
    loop.train(
        triples_factory=data.training,
        num_epochs=epochs,
        batch_size=128,
        use_tqdm=False,
        pin_memory=False,
        checkpoint_directory=folder,
        checkpoint_name="ckpt.pt",
        checkpoint_frequency=0,
    )


def _killed_while_saving(
    loop_cls: type[TrainingLoop],  # type: ignore[type-arg]
    data: Dataset,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """Train one epoch (checkpointed), then a second one whose checkpoint write is killed; the checkpoint path."""
    _train(loop_cls, data, 1, folder)
    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", _truncating_save)
        with pytest.raises(Killed):
            _train(loop_cls, data, 2, folder)
    return folder / "ckpt.pt"


@pytest.mark.parametrize("loop_cls", [AtomicLCWATrainingLoop, AtomicSLCWATrainingLoop, FastLCWATrainingLoop])
def test_a_kill_mid_write_keeps_the_last_checkpoint(
    loop_cls: type[TrainingLoop],  # type: ignore[type-arg]
    tiny_inverse: Dataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checkpoint = _killed_while_saving(loop_cls, tiny_inverse, tmp_path, monkeypatch)
    assert torch.load(checkpoint, weights_only=False)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp file left behind
    _train(loop_cls, tiny_inverse, 2, tmp_path)  # and the run resumes to its end
    assert torch.load(checkpoint, weights_only=False)["epoch"] == 2


def test_pykeens_own_loop_loses_the_checkpoint(
    tiny_inverse: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the loops above exist: PyKEEN's loop writes in place, and the same kill leaves a broken file."""
    checkpoint = _killed_while_saving(LCWATrainingLoop, tiny_inverse, tmp_path, monkeypatch)
    with pytest.raises(pickle.UnpicklingError, match="invalid load key"):
        torch.load(checkpoint, weights_only=False)


def test_the_runner_trains_with_atomic_loops() -> None:
    assert atomic_training_loop("lcwa") is AtomicLCWATrainingLoop
    assert atomic_training_loop("slcwa") is AtomicSLCWATrainingLoop
    assert atomic_training_loop("fastlcwa") == "fastlcwa"  # FastLCWATrainingLoop, atomic itself
    assert issubclass(FastLCWATrainingLoop, AtomicCheckpoints)
