r"""The training loop: a plain class with keyword arguments, independent of Hydra.

Per step ``s = 1 .. max_steps``: draw a batch, compute ``model.training_loss(batch)``, stop with
:class:`NonFiniteLossError` if it is NaN/inf (before ``backward``, so nothing after the last good step is
saved), backpropagate, clip, step the optimizer; then, when ``s`` is a multiple of the respective interval
(or the last step), log the mean loss, validate, and checkpoint -- in that order.

With ``time_limit_s`` set, the loop also ends after the first step that finishes ``time_limit_s`` seconds or
more after the loop started (after a resumed run has loaded its checkpoint and replayed its data stream); that
step is treated as the last one (validated and checkpointed), and
``run.json`` records ``status="time_limit"``, so a later run with the same ``max_steps`` resumes from it.

With ``lr_schedule="cosine"`` the learning rate of step ``s`` is each parameter group's initial rate times

.. math::
    r + (1 - r)\,\frac{1 + \cos(\pi (s - 1) / (S - 1))}{2},\qquad S = \texttt{max\_steps},\ r = \texttt{lr\_final\_ratio},

from the full rate at step 1 down to ``r`` times it at ``S``. The rate is a function of the step alone (the
initial rates travel in the optimizer's state), so a resumed run continues the same schedule with no scheduler
state of its own; runs stopped by ``time_limit_s`` should keep their ``max_steps`` for the same reason.

A model may also implement ``training_metrics() -> Mapping[str, float]`` (optional): its values, accumulated
by the model since the previous call, are added to each ``train`` row of ``metrics.jsonl``.

Validation is RNG-neutral (it restores every generator afterwards), so where a run validates does not
change its training trajectory; together with the checkpoint's RNG and data-stream state this makes a
resumed run continue exactly as the uninterrupted one would.

Under ``torchrun`` (a process group initialised by :func:`geoattn.train.distributed.process_group`) the
loop is data-parallel: the task runs inside ``DistributedDataParallel``, each rank trains on its share of
the batch (``data.shard``), the logged loss and training metrics are means over the ranks, and rank 0 alone
validates and writes the run folder. A checkpoint holds the unwrapped model (it loads in any number of
processes) and, under ``data["ranks"]``, the data-stream and RNG states of ranks ``1 .. world_size - 1``.
Resuming with the same number of processes continues every rank's stream exactly; with another number,
rank 0 continues its own stream, ranks that the checkpoint knows continue theirs, and new ranks start their
own stream at the checkpoint's position (same epoch and batch count, so a curriculum stays in step) with
fresh RNG seeds: the run continues with batches of the same distribution, not the same instances.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .checkpoint import (
    CHECKPOINT_DIR,
    Checkpoint,
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from .distributed import (
    any_rank,
    current,
    gather_to_main,
    mean_metrics_over_ranks,
    mean_over_ranks,
    rank_seed,
)
from .metadata import run_info, utc_now
from .protocol import DataSource, TaskModel, check_data, check_model
from .rng import data_generator, get_rng_state, seed_everything, set_rng_state
from .run_dir import RunDir

__all__ = [
    "LR_SCHEDULES",
    "NonFiniteLossError",
    "OptimizerFactory",
    "TrainResult",
    "Trainer",
    "move_to_device",
    "resolve_device",
]

log = logging.getLogger(__name__)

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
#: The values ``lr_schedule`` accepts (module docstring).
LR_SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, step: int, max_steps: int, final_ratio: float) -> float:
    """The multiple of the initial learning rate that optimizer step ``step`` (0-based) uses."""
    if schedule == "constant" or max_steps <= 1:
        return 1.0
    progress = min(step / (max_steps - 1), 1.0)
    return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; no checkpoint was written for that step or later."""

    def __init__(self, *, step: int, loss: float, last_checkpoint: Path | None) -> None:
        self.step = step
        self.loss = loss
        self.last_checkpoint = last_checkpoint
        kept = (
            f"the last checkpoint is {str(last_checkpoint)!r}"
            if last_checkpoint
            else "no checkpoint was written"
        )
        super().__init__(
            f"training loss is {loss} at step {step}; stopped before the update and without checkpointing "
            f"(lower the learning rate, set trainer.grad_clip, or check the data); {kept}"
        )


@dataclass(frozen=True)
class TrainResult:
    """What :meth:`Trainer.fit` returns: where the run lives and how it ended."""

    run_dir: Path
    step: int
    last_checkpoint: Path | None
    val_metrics: dict[str, float] = field(default_factory=dict)


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"``; ``"cuda"``/``"cuda:N"`` (must be available)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"trainer.device={device!r}: CUDA is not available here; use 'cpu' or 'auto'")
        return torch.device(device)
    raise ValueError(f"trainer.device={device!r}: expected 'auto', 'cpu', 'cuda' or 'cuda:N'")


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in a nest of dicts, lists and tuples to ``device``; other leaves stay as they are."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


class _BatchStream:
    """Training batches across epochs, with a state that replays exactly (see :mod:`geoattn.train.protocol`).

    The state is the generator state at the start of the current epoch plus the number of batches taken
    from it; restoring re-creates the epoch's iterator from that state and skips those batches.
    """

    def __init__(self, data: DataSource, generator: torch.Generator, state: Mapping[str, Any] | None) -> None:
        self.data = data
        self.generator = generator
        self.epoch = 0
        self.batches_in_epoch = 0
        if state is not None:
            self.epoch = int(state["epoch"])
            generator.set_state(state["generator"])
        self.epoch_start = generator.get_state()
        skip = int(state["batches_in_epoch"]) if state is not None else 0
        fast_forward = getattr(data, "fast_forward", None)
        if skip and fast_forward is not None:
            fast_forward(generator, skip)
            self.batches_in_epoch = skip
            skip = 0
        self._it: Iterator[Any] = iter(data.train_batches(generator))
        for i in range(skip):
            if next(self._it, _END) is _END:
                raise RuntimeError(
                    f"resume: data.train_batches ended after {i} of the {skip} batches the checkpoint consumed "
                    "in its epoch; the data config differs from the checkpoint's"
                )
            self.batches_in_epoch += 1

    def next(self) -> Any:
        batch = next(self._it, _END)
        if batch is _END:
            self.epoch += 1
            self.batches_in_epoch = 0
            self.epoch_start = self.generator.get_state()
            self._it = iter(self.data.train_batches(self.generator))
            batch = next(self._it, _END)
            if batch is _END:
                raise RuntimeError(f"data.train_batches yielded no batches (epoch {self.epoch})")
        self.batches_in_epoch += 1
        return batch

    def state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batches_in_epoch": self.batches_in_epoch, "generator": self.epoch_start}


_END = object()


class _TrainingLoss(nn.Module):
    """``forward(batch) = task.training_loss(batch)``: DDP syncs gradients of what runs in ``forward``."""

    def __init__(self, task: nn.Module) -> None:
        super().__init__()
        self.task = task

    def forward(self, batch: Any) -> torch.Tensor:
        return cast(TaskModel, self.task).training_loss(batch)


def _positive(name: str, value: int | float | None, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(
            f"trainer.{name}={value!r}: expected a positive number{' or None' if optional else ''}"
        )


class Trainer:
    """Runs the training loop of one task and owns its run folder (:class:`~geoattn.train.run_dir.RunDir`).

    Args:
        model: an ``nn.Module`` following :class:`~geoattn.train.protocol.TaskModel`.
        data: a :class:`~geoattn.train.protocol.DataSource`.
        optimizer: called with ``model.parameters()`` (after the move to ``device``) to build the optimizer,
            e.g. ``functools.partial(torch.optim.AdamW, lr=1e-3)`` or a Hydra ``_partial_: true`` node.
        run_dir: the output folder (created when missing).
        max_steps: total optimizer steps. Default: ``1000``.
        val_every: validation interval in steps. Default: ``100``.
        ckpt_every: checkpoint interval in steps. Default: ``500``.
        log_every: training-loss logging interval in steps. Default: ``50``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; in a data-parallel job ``"auto"`` and
            ``"cuda"`` mean ``cuda:LOCAL_RANK``. Default: ``"auto"``.
        progress_bar: show tqdm (only when stderr is a terminal). Default: ``True``.
        grad_clip: max global gradient norm, or ``None``. Default: ``None``.
        keep_last: number of newest checkpoints to keep, or ``None`` for all. Default: ``None``.
        time_limit_s: wall-clock budget in seconds of one :meth:`fit` call (see the module docstring), or
            ``None``. Default: ``None``.
        lr_schedule: ``"constant"`` or ``"cosine"`` decay over ``max_steps`` (module docstring).
            Default: ``"constant"``.
        lr_final_ratio: the cosine schedule's last rate as a fraction of the initial one, in ``[0, 1]``.
            Default: ``0.0``.
        seed: seeds the data generator (global RNGs are the caller's job: seed before building the model).
            Default: ``0``.
        config: the resolved run config as plain containers, written to ``config.yaml`` and into every
            checkpoint. Default: ``None`` (empty).
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        data: DataSource,
        optimizer: OptimizerFactory,
        run_dir: str | os.PathLike[str],
        max_steps: int = 1000,
        val_every: int = 100,
        ckpt_every: int = 500,
        log_every: int = 50,
        device: str = "auto",
        progress_bar: bool = True,
        grad_clip: float | None = None,
        keep_last: int | None = None,
        time_limit_s: float | None = None,
        lr_schedule: str = "constant",
        lr_final_ratio: float = 0.0,
        seed: int = 0,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 0:
            raise ValueError(f"trainer.max_steps={max_steps!r}: expected an int >= 0")
        for name, value in (("val_every", val_every), ("ckpt_every", ckpt_every), ("log_every", log_every)):
            _positive(name, value)
        _positive("grad_clip", grad_clip, optional=True)
        _positive("keep_last", keep_last, optional=True)
        _positive("time_limit_s", time_limit_s, optional=True)
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"trainer.lr_schedule={lr_schedule!r}: expected one of {list(LR_SCHEDULES)}")
        if (
            isinstance(lr_final_ratio, bool)
            or not isinstance(lr_final_ratio, int | float)
            or not (0.0 <= lr_final_ratio <= 1.0)
        ):
            raise ValueError(f"trainer.lr_final_ratio={lr_final_ratio!r}: expected a number in [0, 1]")
        if not callable(optimizer):
            raise TypeError(
                f"optimizer: expected a callable params -> Optimizer, got {type(optimizer).__name__}"
            )
        self.model = check_model(model)
        self.data = check_data(data)
        self.optimizer_factory = optimizer
        self.dist = current()
        self.run = RunDir(run_dir, create=self.dist.is_main)
        self.max_steps = max_steps
        self.val_every = val_every
        self.ckpt_every = ckpt_every
        self.log_every = log_every
        self.device = resolve_device(device)
        if self.dist.is_distributed and self.device.type == "cuda":
            if device not in ("auto", "cuda"):
                raise ValueError(
                    f"trainer.device={device!r}: in a data-parallel job each process uses cuda:LOCAL_RANK; "
                    "use 'cuda' or 'auto' (choose GPUs with CUDA_VISIBLE_DEVICES)"
                )
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.progress_bar = progress_bar
        self.grad_clip = grad_clip
        self.keep_last = keep_last
        self.time_limit_s = time_limit_s
        self.lr_schedule = lr_schedule
        self.lr_final_ratio = float(lr_final_ratio)
        self.seed = seed
        self.config: dict[str, Any] = dict(config) if config is not None else {}
        self.step = 0
        self.last_checkpoint: Path | None = None
        self.stopped_by_time_limit = False

    def fit(self, *, resume: str | os.PathLike[str] | None = None) -> TrainResult:
        """Train up to ``max_steps``, continuing from ``resume`` (a checkpoint file or run folder) if given.

        Raises:
            NonFiniteLossError: the loss became NaN/inf (``run.json`` records the failure).
        """
        self.model.to(self.device)
        optimizer = self.optimizer_factory(self.model.parameters())
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer: the factory returned a {type(optimizer).__name__}, not a torch Optimizer"
            )
        generator = data_generator(self.seed, self.dist.rank)
        if self.dist.is_distributed:
            self._shard_data()
            if not self.dist.is_main:  # rank 0 keeps the run's seed; the others sample differently
                seed_everything(rank_seed(self.seed, self.dist.rank))
        data_state: Mapping[str, Any] | None = None
        resumed_from: str | None = None
        if resume is not None:
            file = resolve_checkpoint(resume)
            checkpoint = load_checkpoint(file)
            self._warn_on_config_change(checkpoint.config, file)
            self.model.load_state_dict(checkpoint.model)
            optimizer.load_state_dict(checkpoint.optimizer)
            data_state = self._restore_rank_state(checkpoint, generator)
            self.step = checkpoint.step
            self.last_checkpoint = file
            resumed_from = str(file)
        # The schedule's base rates travel in the optimizer's state; loading a checkpoint replaces the groups, and
        # one written without a schedule has none: its rate becomes the base.
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        stream = _BatchStream(self.data, generator, data_state)
        self._loss_fn: Callable[[Any], torch.Tensor] = self._task.training_loss
        if self.dist.is_distributed:  # after loading: DDP broadcasts rank 0's weights to every rank
            self._loss_fn = DistributedDataParallel(
                _TrainingLoss(self.model), device_ids=[self.device] if self.device.type == "cuda" else None
            )

        if self.dist.is_main:
            if self.config:
                self.run.write_config(OmegaConf.to_yaml(OmegaConf.create(self.config)))
            info = run_info(
                seed=self.seed, device=str(self.device), resumed_from=resumed_from, start_step=self.step
            )
            if self.dist.is_distributed:
                info["world_size"] = self.dist.world_size
            self.run.write_info(info)
        self.stopped_by_time_limit = False
        try:
            metrics = self._loop(optimizer, stream)
        except BaseException as e:
            if self.dist.is_main:
                self.run.update_info(
                    status="failed", error=f"{type(e).__name__}: {e}", end_step=self.step, end_time=utc_now()
                )
            raise
        status = "time_limit" if self.stopped_by_time_limit else "completed"
        if self.dist.is_main:
            self.run.update_info(status=status, end_step=self.step, end_time=utc_now())
        return TrainResult(self.run.path, self.step, self.last_checkpoint, metrics)

    def _shard_data(self) -> None:
        """Give a data-parallel job's data source this rank's share, or warn that batches grow with the job."""
        shard = getattr(self.data, "shard", None)
        if callable(shard):
            shard(self.dist.rank, self.dist.world_size)
        elif self.dist.is_main:
            log.warning(
                "%s has no shard(rank, world_size): each of the %d processes draws whole batches, so the "
                "global batch is %d times a single process's",
                type(self.data).__name__,
                self.dist.world_size,
                self.dist.world_size,
            )

    def _restore_rank_state(self, checkpoint: Checkpoint, generator: torch.Generator) -> Mapping[str, Any]:
        """Restore this rank's global RNGs from ``checkpoint`` and return its data-stream state.

        Rank 0 takes the checkpoint's own states; rank ``r`` takes ``data["ranks"][r - 1]`` when the
        checkpoint was written by at least ``r + 1`` processes, else it keeps its fresh RNG seeds and starts
        its own stream (``generator`` as it is now) at the checkpoint's epoch and batch count.
        """
        if self.dist.is_main:
            set_rng_state(checkpoint.rng)
            return checkpoint.data
        saved = checkpoint.data.get("ranks", [])
        if self.dist.rank <= len(saved):
            state = saved[self.dist.rank - 1]
            set_rng_state(state["rng"])
            return cast(Mapping[str, Any], state["data"])
        position = {key: checkpoint.data[key] for key in ("epoch", "batches_in_epoch")}
        return {**position, "generator": generator.get_state()}

    def _loop(self, optimizer: torch.optim.Optimizer, stream: _BatchStream) -> dict[str, float]:
        if self.step >= self.max_steps:
            log.warning("step %d >= max_steps %d: nothing to train", self.step, self.max_steps)
            return self.validate() if self.dist.is_main else {}
        start = time.perf_counter()
        metrics: dict[str, float] = {}
        losses: list[float] = []
        bar = tqdm(
            total=self.max_steps,
            initial=self.step,
            desc="train",
            dynamic_ncols=True,
            disable=not (self.progress_bar and self.dist.is_main and sys.stderr.isatty()),
        )
        self.model.train()
        try:
            while self.step < self.max_steps:
                losses.append(self._train_step(optimizer, stream))
                self.step += 1
                bar.update(1)
                if self.step % self.log_every == 0:
                    mean = sum(losses) / len(losses)
                    losses.clear()
                    bar.set_postfix(loss=f"{mean:.4g}")
                    lr = float(optimizer.param_groups[0]["lr"])
                    self._row("train", {"loss": mean, "lr": lr, **self._training_metrics()}, start)
                if self.time_limit_s is not None and any_rank(
                    time.perf_counter() - start >= self.time_limit_s, self.device
                ):
                    self.stopped_by_time_limit = self.step < self.max_steps
                    if self.dist.is_main:
                        log.warning(
                            "time limit of %gs reached at step %d: stopping", self.time_limit_s, self.step
                        )
                last = self.step == self.max_steps or self.stopped_by_time_limit
                if (last or self.step % self.val_every == 0) and self.dist.is_main:
                    metrics = self.validate()
                    self._row("val", metrics, start)
                    log.info("step %d: %s", self.step, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
                if last or self.step % self.ckpt_every == 0:
                    self._save(optimizer, stream)
                if last:
                    break
        finally:
            bar.close()
        return metrics

    @property
    def _task(self) -> TaskModel:
        return cast(TaskModel, self.model)

    def _train_step(self, optimizer: torch.optim.Optimizer, stream: _BatchStream) -> float:
        batch = move_to_device(stream.next(), self.device)
        loss = self._loss_fn(batch)
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise TypeError(
                f"{type(self.model).__name__}.training_loss must return a scalar tensor, got {shape}"
            )
        value = mean_over_ranks(loss)  # every rank sees the same value, so all stop together on NaN
        if not math.isfinite(value):
            raise NonFiniteLossError(step=self.step + 1, loss=value, last_checkpoint=self.last_checkpoint)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        factor = lr_factor(self.lr_schedule, self.step, self.max_steps, self.lr_final_ratio)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        optimizer.step()
        return value

    def _training_metrics(self) -> dict[str, float]:
        hook = getattr(self.model, "training_metrics", None)
        local = {key: float(value) for key, value in hook().items()} if callable(hook) else {}
        return mean_metrics_over_ranks(local)

    def validate(self) -> dict[str, float]:
        """Mean of ``model.validation_metrics`` over ``data.val_batches()``; leaves every RNG untouched."""
        rng = get_rng_state()
        was_training = self.model.training
        self.model.eval()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        try:
            with torch.no_grad():
                for batch in self.data.val_batches():
                    metrics = self._task.validation_metrics(move_to_device(batch, self.device))
                    for key, value in metrics.items():
                        sums[key] = sums.get(key, 0.0) + float(value)
                        counts[key] = counts.get(key, 0) + 1
        finally:
            self.model.train(was_training)
            set_rng_state(rng)
        return {key: sums[key] / counts[key] for key in sums}

    def _save(self, optimizer: torch.optim.Optimizer, stream: _BatchStream) -> Path:
        """Write the checkpoint for the current step (rank 0) and prune old ones beyond ``keep_last``.

        In a data-parallel job every rank must call this: it gathers the ranks' stream and RNG states.
        """
        path = checkpoint_path(self.run.path, self.step)
        data = stream.state()
        if self.dist.is_distributed:
            ranks = gather_to_main({"data": data, "rng": get_rng_state()})
            self.last_checkpoint = path
            if ranks is None:  # not rank 0: nothing to write
                return path
            data = {**data, "world_size": self.dist.world_size, "ranks": ranks[1:]}
        checkpoint = Checkpoint(
            step=self.step,
            model=self.model.state_dict(),
            optimizer=optimizer.state_dict(),
            rng=get_rng_state(),
            data=data,
            config=self.config,
        )
        path = save_checkpoint(checkpoint, path)
        self.last_checkpoint = path
        if self.keep_last is not None:
            for old in list_checkpoints(self.run.path / CHECKPOINT_DIR)[: -self.keep_last]:
                old.unlink()
        return path

    def _row(self, split: str, values: Mapping[str, float], start: float) -> None:
        if not self.dist.is_main:
            return
        elapsed = round(time.perf_counter() - start, 3)
        self.run.append_metrics({"step": self.step, "split": split, **values, "elapsed_s": elapsed})

    def _warn_on_config_change(self, saved: Mapping[str, Any], file: Path) -> None:
        changed = [
            change
            for key in ("seed", "model", "data", "optimizer")
            if key in self.config
            for change in _config_changes(key, saved.get(key), self.config[key])
        ]
        if changed:
            log.warning(
                "resume: the config differs from the checkpoint's (%s) in %s; the run will not replay exactly "
                "unless these settings change only how it computes (e.g. worker counts), not what",
                file,
                "; ".join(changed),
            )


def _config_changes(path: str, saved: Any, now: Any) -> list[str]:
    """``"<path.key>: <saved> -> <now>"`` for every leaf where two config trees differ."""
    if isinstance(saved, Mapping) and isinstance(now, Mapping):
        return [
            change
            for key in sorted({*saved, *now}, key=str)
            for change in _config_changes(f"{path}.{key}", saved.get(key), now.get(key))
        ]
    return [] if saved == now else [f"{path}: {saved!r} -> {now!r}"]
