"""The task protocol: what a ``model`` config and a ``data`` config must instantiate.

A task is two objects that the trainer only talks to through these methods, so adding a task means adding
a model class, a data class and their configs, never touching the loop:

- the **model** is an ``nn.Module`` with
  ``training_loss(batch) -> Tensor`` (a scalar to minimise) and
  ``validation_metrics(batch) -> dict[str, float | Tensor]`` (scalars; called under ``torch.no_grad()``
  in eval mode; the trainer averages each metric over the validation batches, so a task that needs exact
  whole-set metrics yields one validation batch);
- the **data** object has
  ``train_batches(generator) -> Iterator[batch]`` and ``val_batches() -> Iterable[batch]``.

Batches are any nesting of dicts, lists and tuples of tensors; the trainer moves tensors to the device.

``train_batches`` may be infinite or end after one epoch (the trainer then calls it again with the same
generator). All its randomness must come from ``generator``: resuming restores the generator state at the
start of the current epoch and replays the batches already consumed in it, which reproduces the run
exactly as long as the iterator is a deterministic function of the generator. An infinite iterator is one
long epoch, so resuming it replays every batch since the start: prefer epoch-wise iterators when producing a
batch is expensive, or implement ``fast_forward(generator, count) -> None`` (optional): advance ``generator``
exactly as taking ``count`` batches from a fresh ``train_batches(generator)`` would, without building them; the
trainer then calls it instead of replaying, and starts ``train_batches`` from the advanced generator.

Data-parallel training (:mod:`geoattn.train.distributed`): every rank calls ``train_batches`` with its own
generator. A data source may implement ``shard(rank, world_size) -> None`` (optional), called once before
training on every rank when ``world_size > 1``, after which ``train_batches`` must yield that rank's share of
each global batch (e.g. ``batch_size / world_size`` instances), so the job's global batch is the batch of a
single-process run. A data source without ``shard`` yields whole batches on every rank: the global batch is
then ``world_size`` times larger (the trainer logs a warning).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["DataSource", "TaskModel", "check_data", "check_model"]


@runtime_checkable
class TaskModel(Protocol):
    """An ``nn.Module`` that knows its loss and its validation metrics."""

    def training_loss(self, batch: Any) -> torch.Tensor:
        """A scalar loss for one training batch."""
        ...

    def validation_metrics(self, batch: Any) -> Mapping[str, float | torch.Tensor]:
        """Scalar metrics for one validation batch."""
        ...


@runtime_checkable
class DataSource(Protocol):
    """Training batches drawn with a ``torch.Generator``, and fixed validation batches."""

    def train_batches(self, generator: torch.Generator) -> Iterator[Any]:
        """Batches for training: infinite, or one epoch."""
        ...

    def val_batches(self) -> Iterable[Any]:
        """Batches for validation (the same every call)."""
        ...


def check_model(model: object) -> nn.Module:
    """Return ``model`` if it is an ``nn.Module`` implementing :class:`TaskModel`, else raise ``TypeError``."""
    if not isinstance(model, nn.Module) or not isinstance(model, TaskModel):
        raise TypeError(
            f"model: expected an nn.Module with training_loss(batch) and validation_metrics(batch), "
            f"got {type(model).__module__}.{type(model).__qualname__}"
        )
    return model


def check_data(data: object) -> DataSource:
    """Return ``data`` if it implements :class:`DataSource`, else raise ``TypeError``."""
    if not isinstance(data, DataSource):
        raise TypeError(
            f"data: expected an object with train_batches(generator) and val_batches(), "
            f"got {type(data).__module__}.{type(data).__qualname__}"
        )
    return data
