r"""Data-parallel 1-N training across the processes of a ``torchrun`` job, and evaluation on rank 0 alone.

PyKEEN's training loops and evaluators run in one process. :class:`~geoattn.kg.FastLCWATrainingLoop` trains on
``W`` processes (one GPU each) of an initialised ``torch.distributed`` process group with the pieces here:

- every rank iterates over the *same* global batches: :class:`SharedRandomSampler` draws each epoch's
  permutation seed on rank 0 exactly as PyKEEN's shuffling (:class:`torch.utils.data.RandomSampler`) does and
  broadcasts it, so ``W`` processes see the batches one process would;
- rank ``r`` scores the rows ``r, r + W, r + 2W, ...`` of each (sub-)batch (:func:`rank_rows`), and weights its
  loss so that the ranks' losses sum to the loss of the whole batch: with a ``mean`` reduction over the
  ``n`` rows of a batch, of which rank ``r`` holds ``n_r``,

  .. math::
      \ell = \frac{1}{n} \sum_{i=1}^{n} \ell_i = \sum_{r} \frac{n_r}{n}\, \bar\ell_r ,

  (a ``sum`` reduction needs no weight), hence :func:`sum_gradients` — one all-reduce of every gradient after
  the batch's backward passes — leaves every rank with the gradient of the whole batch, and the optimiser steps
  stay identical on every rank (no ``DistributedDataParallel``: PyKEEN calls the model's ``score_*`` methods,
  not its ``forward``, which DDP's gradient hooks hang on);
- :class:`RankZeroEvaluator` evaluates on rank 0 and broadcasts the results, so the early stopper decides the
  same on every rank and the filtered ranking (PyKEEN's evaluators are single-process) runs once.

The ranks start from rank 0's weights (broadcast when the loop builds its data loader); there, every rank but 0
reseeds torch from ``(seed, rank)`` (:func:`geoattn.train.distributed.rank_seed`), so dropout draws independent
masks on each rank's rows, while rank 0 keeps the stream one process would have.

With one process (no process group, or ``world_size == 1``) none of this is used.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from pykeen.evaluation import MetricResults, RankBasedEvaluator
from torch.utils.data import Sampler

from geoattn.train.distributed import current

__all__ = [
    "RankZeroEvaluator",
    "SharedRandomSampler",
    "rank_rows",
    "sum_gradients",
]


def _collective_device() -> torch.device:
    """Where the default group's collectives take their tensors: the current CUDA device for NCCL, else CPU."""
    if dist.get_backend() == dist.Backend.NCCL:
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def rank_rows(ids: torch.Tensor, rank: int, world_size: int) -> torch.Tensor:
    """Rank ``rank``'s rows of a batch ``ids`` ``[n, ...]``: ``ids[rank::world_size]`` (``n_r`` rows, which
    differ by at most one between ranks; a rank may get none when ``n < world_size``)."""
    return ids[rank::world_size]


def sum_gradients(parameters: Sequence[torch.nn.Parameter]) -> None:
    """Replace every parameter's gradient by its sum over the ranks (no-op in one process).

    A parameter that has a gradient on some rank but not on this one contributes zeros here; one that has none
    on any rank keeps ``grad = None`` (so optimisers skip it, as they would in one process). Two all-reduces: the
    presence flags, then all present gradients flattened into one buffer.
    """
    if current().world_size == 1:
        return
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return
    present = torch.tensor(
        [p.grad is not None for p in params], dtype=torch.int32, device=_collective_device()
    )
    dist.all_reduce(present, op=dist.ReduceOp.MAX)
    synced = [p for p, flag in zip(params, present.tolist(), strict=True) if flag]
    if not synced:
        return
    for p in synced:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in synced if p.grad is not None])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in synced:
        assert p.grad is not None
        p.grad.copy_(flat[offset : offset + p.grad.numel()].view_as(p.grad))
        offset += p.grad.numel()


class SharedRandomSampler(Sampler[int]):
    """A random permutation of ``0..n-1`` per epoch, the same on every rank.

    Rank 0 draws the epoch's seed from torch's global generator as :class:`torch.utils.data.RandomSampler` (with
    no generator, PyKEEN's shuffling) does, and broadcasts it; every rank then permutes with
    ``torch.randperm(n, generator=torch.Generator().manual_seed(seed))``. In one process this *is* PyKEEN's
    shuffling, and with ``W`` processes rank 0's global generator advances exactly as one process's would.

    Args:
        num_items: ``n``, the dataset's length.
    """

    def __init__(self, num_items: int) -> None:
        self.num_items = num_items

    def __len__(self) -> int:
        return self.num_items

    def __iter__(self) -> Iterator[int]:
        env = current()
        seed = (
            torch.empty((), dtype=torch.int64).random_()
            if env.is_main
            else torch.zeros((), dtype=torch.int64)
        )
        if env.is_distributed:
            shared = seed.reshape(1).to(_collective_device())
            dist.broadcast(shared, src=0)
            seed = shared.cpu()[0]
        generator = torch.Generator()
        generator.manual_seed(int(seed.item()))
        yield from torch.randperm(self.num_items, generator=generator).tolist()


class RankZeroEvaluator(RankBasedEvaluator):
    """PyKEEN's :class:`~pykeen.evaluation.RankBasedEvaluator`, run on rank 0 only and broadcast to the others.

    PyKEEN's filtered ranking runs in one process; in a data-parallel job every rank holds the same weights, so
    rank 0 evaluates and every rank gets its :class:`~pykeen.evaluation.MetricResults` (and its automatically
    chosen batch and slice sizes), e.g. for the early stopper, which then decides the same everywhere. The
    other ranks wait in the broadcast. In one process this is :class:`~pykeen.evaluation.RankBasedEvaluator`.
    Accepts everything that class accepts.
    """

    def evaluate(self, *args: Any, **kwargs: Any) -> MetricResults[Any]:
        env = current()
        if not env.is_distributed:
            return super().evaluate(*args, **kwargs)
        box: list[Any] = [None]
        if env.is_main:
            box[0] = (super().evaluate(*args, **kwargs), self.batch_size, self.slice_size)
        dist.broadcast_object_list(box, src=0, device=_collective_device())
        results, self.batch_size, self.slice_size = box[0]
        return results
