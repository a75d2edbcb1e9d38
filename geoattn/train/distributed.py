"""Data-parallel training with PyTorch's own engine: ``torchrun`` starts the processes, DDP syncs gradients.

``torchrun --nproc-per-node=N -m geoattn.train ...`` (or the ``geoattn-train`` script under ``torchrun``)
starts ``N`` copies of the job; each reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from its environment
(:meth:`DistEnv.from_environ`). :func:`process_group` joins them into one process group (NCCL on CUDA, with
rank ``r`` on ``cuda:LOCAL_RANK``; gloo on CPU), and :class:`~geoattn.train.Trainer` then

- wraps the task in ``DistributedDataParallel``, which averages the gradients over the ranks in ``backward``;
- asks the data source for its share of every batch (``data.shard(rank, world_size)``, see
  :mod:`geoattn.train.protocol`) and draws it from the rank's own generator (:func:`rank_seed`);
- logs, validates and writes checkpoints on rank 0 only (a checkpoint also holds every rank's data-stream
  and RNG state, gathered with :func:`gather_to_main`);
- takes each step's loss as the mean over the ranks (:func:`mean_over_ranks`) and stops at the time limit
  when any rank reaches it (:func:`any_rank`), so every rank leaves the loop after the same step.

Without ``WORLD_SIZE`` (or with ``WORLD_SIZE=1``) nothing here does anything: a single process trains
exactly as it always did.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.distributed_c10d import PrefixStore
from torch.distributed.rendezvous import rendezvous

__all__ = [
    "DistEnv",
    "any_rank",
    "current",
    "gather_to_main",
    "mean_metrics_over_ranks",
    "mean_over_ranks",
    "process_group",
    "rank_seed",
    "sum_over_ranks",
    "torchrun_command",
    "torchrun_environ",
]

log = logging.getLogger(__name__)

_RANK_TAG = 0x72616E6B  # "rank": keeps rank seeds apart from the data generator's derived seeds
_groups_started = 0  # process groups this process has initialised (the same count on every rank)


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in a data-parallel job: ``rank`` in ``0 .. world_size - 1``, and its GPU slot.

    Attributes:
        rank: global rank (``RANK``); rank 0 writes the run folder.
        world_size: number of processes (``WORLD_SIZE``); ``1`` is an ordinary single-process run.
        local_rank: rank within the host (``LOCAL_RANK``); the index of the process's CUDA device.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, validates and writes checkpoints."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """More than one process."""
        return self.world_size > 1

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> DistEnv:
        """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (as ``torchrun`` sets them); absent means one process.

        Raises:
            ValueError: a variable that is not a non-negative integer, or ``RANK``/``LOCAL_RANK`` out of range.
        """
        env = os.environ if environ is None else environ

        def read(name: str, default: int) -> int:
            text = env.get(name)
            if text is None or text == "":
                return default
            try:
                value = int(text)
            except ValueError:
                value = -1
            if value < 0:
                raise ValueError(
                    f"environment: {name}={text!r} is not a non-negative integer (set by torchrun)"
                )
            return value

        world_size = read("WORLD_SIZE", 1)
        if world_size < 1:
            raise ValueError("environment: WORLD_SIZE=0; expected the number of processes (>= 1)")
        rank = read("RANK", 0)
        local_rank = read("LOCAL_RANK", rank)
        if rank >= world_size:
            raise ValueError(f"environment: RANK={rank} is not below WORLD_SIZE={world_size}")
        if local_rank > rank:
            raise ValueError(f"environment: LOCAL_RANK={local_rank} exceeds RANK={rank}")
        return cls(rank=rank, world_size=world_size, local_rank=local_rank)


def current() -> DistEnv:
    """The :class:`DistEnv` of the initialised default process group, or a single process when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistEnv()
    rank = dist.get_rank()
    return DistEnv(
        rank=rank, world_size=dist.get_world_size(), local_rank=int(os.environ.get("LOCAL_RANK", rank))
    )


@contextmanager
def process_group(device: torch.device) -> Iterator[DistEnv]:
    """Join the ``torchrun`` job this process belongs to, for the duration of the ``with`` block.

    With ``WORLD_SIZE > 1`` and no process group yet, initialises the default group (``nccl`` when
    ``device`` is CUDA, after selecting ``cuda:LOCAL_RANK``; ``gloo`` otherwise; rendezvous through the
    ``MASTER_ADDR``/``MASTER_PORT`` that ``torchrun`` sets), and on leaving waits for every rank (a normal
    exit) and destroys the group -- also when the block raises, without the wait, which could never end
    when the other ranks are gone. A single process, or a group someone else initialised, is left alone.
    Each group's keys in the rendezvous store carry the group's ordinal, so one ``torchrun`` process may
    run several jobs one after another (a second group never reads the first one's addresses).

    Args:
        device: the resolved training device of this process (``cuda`` means ``cuda:LOCAL_RANK``).

    Yields:
        This process's :class:`DistEnv`.

    Raises:
        ValueError: a CUDA run with ``LOCAL_RANK`` beyond the visible devices.
    """
    env = DistEnv.from_environ()
    if not env.is_distributed or dist.is_initialized():
        yield current()
        return
    if device.type == "cuda":
        if env.local_rank >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK={env.local_rank} but only {torch.cuda.device_count()} CUDA devices are visible; "
                "start at most that many processes per host (torchrun --nproc-per-node)"
            )
        torch.cuda.set_device(env.local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    global _groups_started
    store, rank, world_size = next(rendezvous("env://"))
    store = PrefixStore(f"geoattn/{_groups_started}", store)
    _groups_started += 1
    dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world_size)
    log.info("rank %d of %d joined the %s process group", env.rank, env.world_size, backend)
    try:
        yield current()
    except BaseException:
        dist.destroy_process_group()
        raise
    # Wait for every rank through the rendezvous store, not dist.barrier(): gloo sends asynchronously, so a
    # rank whose last collective (a barrier too) has returned may still have a send in flight, and exiting
    # then left a peer waiting forever (seen under load). A rank reaches this point only after its own last
    # collective completed, which needs every peer's sends: once all ranks are here, nothing is in flight.
    store.set(f"done/{rank}", "1")
    store.wait([f"done/{r}" for r in range(world_size)])
    dist.destroy_process_group()


def torchrun_command(nproc: int, args: Sequence[str]) -> list[str]:
    """The command line of ``torchrun --standalone --nproc-per-node=nproc *args`` with this Python.

    ``args`` are torchrun's further options, then the script or ``-m module`` and its arguments.
    """
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}", *args]


def torchrun_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child ``torchrun``: ``environ`` (default ``os.environ``) with ``NCCL_NVLS_ENABLE=0``
    (NCCL's NVLink multicast off, as the shared GPU hosts require), ``OMP_NUM_THREADS=1`` unless set, and
    without the rank variables of a job this process may itself belong to."""
    env = {**(os.environ if environ is None else environ), "NCCL_NVLS_ENABLE": "0"}
    env.setdefault("OMP_NUM_THREADS", "1")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s global RNGs (torch, numpy, python): ``seed`` itself for rank 0.

    Other ranks get a seed derived from ``(seed, rank)`` through numpy's ``SeedSequence``, so their random
    choices (e.g. the tours a policy samples) differ from rank 0's.
    """
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, _RANK_TAG, rank]).generate_state(1, np.uint32)[0])


def sum_over_ranks(value: torch.Tensor) -> float:
    """The sum of a scalar tensor over every rank, in its dtype (one all-reduce; the value itself on one process).

    The tensor must be where the group's collectives take it (CUDA for NCCL).
    """
    total = value.detach().clone()
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return float(total)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return float(total)


def mean_over_ranks(value: torch.Tensor) -> float:
    """The mean of a scalar tensor over every rank, in float32 (one all-reduce; the value itself on one process)."""
    return sum_over_ranks(value.float()) / current().world_size


def any_rank(flag: bool, device: torch.device) -> bool:
    """``True`` on every rank when ``flag`` is true on any rank (``flag`` itself on one process)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return flag
    votes = torch.tensor([int(flag)], device=device)
    dist.all_reduce(votes, op=dist.ReduceOp.MAX)
    return bool(votes.item())


def gather_to_main(obj: Any) -> list[Any] | None:
    """Every rank's picklable ``obj``, in rank order, on rank 0; ``None`` on the other ranks.

    On one process: ``[obj]``.
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return [obj]
    gathered: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, gathered, dst=0)
    return gathered


def mean_metrics_over_ranks(metrics: Mapping[str, float]) -> dict[str, float]:
    """Per key, the mean of ``metrics[key]`` over the ranks that report it (on every rank).

    On one process: ``metrics`` as a dict.
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return dict(metrics)
    everyone: list[dict[str, float]] = [{} for _ in range(dist.get_world_size())]
    dist.all_gather_object(everyone, dict(metrics))
    keys = sorted({key for rank_metrics in everyone for key in rank_metrics})
    return {key: sum(m[key] for m in everyone if key in m) / sum(key in m for m in everyone) for key in keys}
