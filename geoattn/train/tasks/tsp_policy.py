r"""The TSP policy task: train :class:`~geoattn.nn.TSPAttentionModel` on random uniform instances.

Training signal: POMO's shared-baseline REINFORCE (Kwon et al. 2020, arXiv:2010.16011). For each instance
:math:`x` of a batch, the policy samples one tour :math:`\tau_s` from every start city :math:`s = 1..n`; the
baseline is the mean length over those :math:`n` tours, and the loss is

.. math::
    \mathcal{L} = \frac{1}{Bn} \sum_{b,s} \big(L(\tau_{b,s}) - \bar L_b\big)\, \log p_\theta(\tau_{b,s} \mid x_b),
    \qquad \bar L_b = \frac{1}{n} \sum_s L(\tau_{b,s}),

whose gradient is the policy gradient of the expected tour length with a baseline that needs no critic.
Or imitation of LKH-3 tours (``signal="imitation"``, as in BQ-NCO / LEHD, NeurIPS 2023): the mean negative
log-likelihood per decision of the labelled tour :math:`\tau^*`, scored teacher-forced in one parallel pass
(:meth:`~geoattn.nn.TSPAttentionModel.tour_log_likelihood`, no decoding loop),

.. math::
    \mathcal{L} = -\frac{1}{B (n-2)} \sum_b \log p_\theta(\tau^*_b \mid x_b).

On CUDA the forward runs under bfloat16 autocast (log-probabilities in float32).

Data (:class:`RandomTSPInstances`): batches of uniform points in the unit square drawn from the trainer's
seeded generator (a ``[B, n, 2]`` batch is a few kilobytes, moved to the device with the batch), following an
optional curriculum over ``n`` (``stages``: e.g. 20 -> 50 -> 100, the last stage running until the end).
In a data-parallel job (:mod:`geoattn.train.distributed`) each of the ``W`` processes draws
``batch_size / W`` instances per step from its own generator (:meth:`RandomTSPInstances.shard`); the
gradients DDP averages are then those of the loss over the ``batch_size`` instances of the global batch
(POMO's baseline is per instance, so splitting instances across processes changes nothing in the loss).
Validation: a fixed seeded set per size in ``val_sizes``, decoded greedily (one start) and with POMO
multi-start x8 augmentation; gaps in percent against a reference mean length,
:math:`100\,(\operatorname{mean} L / \operatorname{mean} L^{\text{ref}} - 1)`, where the reference is
``"concorde"`` (the published Concorde averages for random uniform TSP20/50/100, 3.83 / 5.69 / 7.76; an
estimate for a finite set, good to about ``0.3 / \sqrt{count}`` relative), ``"lkh"`` (LKH-3 tours of the same
instances, :func:`geoattn.tasks.labelled_dataset`, cached on disk) or ``"none"`` (lengths only).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, Literal, get_args

import torch
from torch import nn

from geoattn.nn.attention_model import TSPAttentionModel
from geoattn.solvers._tour import tour_length
from geoattn.solvers.neural import decode_tours, symmetry_augment
from geoattn.tasks.labels import labelled_dataset
from geoattn.tasks.points import uniform_points

__all__ = ["CONCORDE_MEAN_LENGTH", "RandomTSPInstances", "TSPPolicy", "pomo_loss"]

Batch = dict[str, torch.Tensor]
Reference = Literal["concorde", "lkh", "none"]
Signal = Literal["pomo", "imitation"]

#: Mean optimal tour length of random uniform TSP instances in the unit square (Concorde; Kool et al. 2019).
CONCORDE_MEAN_LENGTH: Final[dict[int, float]] = {20: 3.83, 50: 5.69, 100: 7.76}


def pomo_loss(lengths: torch.Tensor, log_likelihood: torch.Tensor) -> torch.Tensor:
    r"""POMO's loss :math:`\operatorname{mean}_{b,s} (L_{b,s} - \bar L_b) \log p_{b,s}` from ``[B, P]`` tensors."""
    advantage = lengths - lengths.mean(dim=1, keepdim=True)
    return (advantage.detach() * log_likelihood).mean()


def _int(owner: str, name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{owner}: {name} must be an int >= {low}, got {value!r}")
    return value


class RandomTSPInstances:
    """Random uniform TSP instances for training, with a curriculum over ``n``, and a fixed validation set.

    Args:
        stages: the curriculum, a list of ``{"n": int >= 3, "batch_size": int >= 1, "steps": int >= 1 | None}``
            run in order; ``steps=None`` (allowed only for the last stage) runs until training ends, and a
            last stage with ``steps`` set is repeated.
        label_count: ``None`` (default) draws fresh instances for every batch (reinforcement learning). An
            int makes a fixed pool of ``label_count`` seeded instances per stage size, labelled with LKH-3
            tours (:func:`geoattn.tasks.labelled_dataset`, in parallel over all cores, cached in
            ``lkh_cache_dir``), for imitation: each batch draws instances from the pool with replacement,
            each in a random one of the 8 symmetric images with its tour rotated to a random start and
            possibly reversed (all optimal for the image).
        label_seed: seed of the pool of size ``n`` is ``label_seed + n``. (default: ``0``)
        label_workers: processes labelling the pools and ``"lkh"`` references; ``None``: every core.
            (default: ``None``)
        val_sizes: validation sizes ``n``. (default: ``(20, 50, 100)``)
        val_count: validation instances per size. (default: ``256``)
        val_seed: seed of the validation instances (size ``n`` uses ``val_seed + n``). (default: ``1234``)
        val_reference: ``"concorde"`` (sizes 20, 50, 100 only), ``"lkh"`` or ``"none"``. (default:
            ``"concorde"``)
        lkh_cache_dir: cache folder for ``"lkh"`` references; ``None`` recomputes every run.
        lkh_runs: LKH's ``RUNS`` for ``"lkh"`` references. (default: ``1``)

    Batches:
        train: ``{"coords": [B, n, 2]}`` float32, plus ``"tours": [B, n]`` long with ``label_count``.
        val (one per size): ``{"coords": [V, n, 2]}``, plus ``"reference": [V]`` lengths unless
        ``val_reference="none"``.
    """

    def __init__(
        self,
        stages: Sequence[Mapping[str, Any]],
        label_count: int | None = None,
        label_seed: int = 0,
        label_workers: int | None = None,
        val_sizes: Sequence[int] = (20, 50, 100),
        val_count: int = 256,
        val_seed: int = 1234,
        val_reference: Reference = "concorde",
        lkh_cache_dir: str | os.PathLike[str] | None = None,
        lkh_runs: int = 1,
    ) -> None:
        owner = type(self).__name__
        if not stages:
            raise ValueError(f"{owner}: stages must list at least one stage")
        self.stages: list[tuple[int, int, int | None]] = []
        for i, stage in enumerate(stages):
            unknown = set(stage) - {"n", "batch_size", "steps"}
            if unknown:
                raise ValueError(
                    f"{owner}: stages[{i}] has unknown keys {sorted(unknown)}; expected n, batch_size, steps"
                )
            steps = stage.get("steps")
            if steps is None and i != len(stages) - 1:
                raise ValueError(f"{owner}: stages[{i}].steps is None, allowed only in the last stage")
            self.stages.append(
                (
                    _int(owner, f"stages[{i}].n", stage.get("n"), 3),
                    _int(owner, f"stages[{i}].batch_size", stage.get("batch_size"), 1),
                    None if steps is None else _int(owner, f"stages[{i}].steps", steps, 1),
                )
            )
        if val_reference not in ("concorde", "lkh", "none"):
            raise ValueError(
                f"{owner}: val_reference must be 'concorde', 'lkh' or 'none', got {val_reference!r}"
            )
        self.val_sizes = [_int(owner, "val_sizes[]", n, 3) for n in val_sizes]
        if val_reference == "concorde" and (missing := set(self.val_sizes) - set(CONCORDE_MEAN_LENGTH)):
            raise ValueError(
                f"{owner}: val_reference='concorde' knows sizes {sorted(CONCORDE_MEAN_LENGTH)}, not "
                f"{sorted(missing)}; use 'lkh' or 'none'"
            )
        self.label_count = None if label_count is None else _int(owner, "label_count", label_count, 1)
        self.label_seed = label_seed
        self.label_workers = None if label_workers is None else _int(owner, "label_workers", label_workers, 1)
        self.val_count = _int(owner, "val_count", val_count, 1)
        self.val_seed = val_seed
        self.val_reference = val_reference
        self.lkh_cache_dir = lkh_cache_dir
        self.lkh_runs = _int(owner, "lkh_runs", lkh_runs, 1)
        self._val: list[Batch] | None = None
        self._pools: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.shards = 1

    def shard(self, rank: int, world_size: int) -> None:
        """Make :meth:`train_batches` yield one process's share, ``batch_size / world_size`` instances per batch.

        Every process draws its share from its own generator, so ``rank`` selects nothing here: the shares
        differ because the generators do. The global batch (all shares) keeps each stage's ``batch_size``.

        Raises:
            ValueError: a stage's ``batch_size`` that ``world_size`` does not divide, or a bad ``rank``.
        """
        owner = type(self).__name__
        _int(owner, "shard world_size", world_size, 1)
        if not 0 <= _int(owner, "shard rank", rank, 0) < world_size:
            raise ValueError(f"{owner}: shard rank must be in [0, {world_size}), got {rank}")
        uneven = [i for i, (_, batch_size, _) in enumerate(self.stages) if batch_size % world_size]
        if uneven:
            sizes = [self.stages[i][1] for i in uneven]
            raise ValueError(
                f"{owner}: stages{uneven} have batch_size {sizes}, not divisible by the {world_size} "
                "processes; choose batch sizes that are multiples of the process count"
            )
        self.shards = world_size

    def train_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        """The curriculum's batches, drawn from ``generator``; infinite."""
        for n, batch_size, steps in self.stages[:-1]:
            for _ in range(steps or 0):
                yield self._train_batch(n, batch_size, generator)
        n, batch_size, _ = self.stages[-1]
        while True:
            yield self._train_batch(n, batch_size, generator)

    def labelled_pool(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The imitation pool of size ``n``: ``[label_count, n, 2]`` points and their ``[label_count, n]`` tours."""
        if self.label_count is None:
            raise ValueError(f"{type(self).__name__}: label_count is None, there is no labelled pool")
        if n not in self._pools:
            data = labelled_dataset(
                "tsp",
                n,
                self.label_count,
                seed=self.label_seed + n,
                cache_dir=self.lkh_cache_dir,
                workers=self.label_workers,
                lkh_runs=self.lkh_runs,
            )
            self._pools[n] = (data.points, torch.stack(data.labels))
        return self._pools[n]

    def _train_batch(self, n: int, global_batch_size: int, generator: torch.Generator) -> Batch:
        batch_size = global_batch_size // self.shards
        if self.label_count is None:
            return {"coords": torch.rand(batch_size, n, 2, generator=generator)}
        points, labels = self.labelled_pool(n)
        pick = torch.randint(self.label_count, (batch_size,), generator=generator)
        image = torch.randint(8, (batch_size,), generator=generator)
        shift = torch.randint(n, (batch_size, 1), generator=generator)
        reverse = torch.randint(2, (batch_size, 1), generator=generator).bool()
        coords = symmetry_augment(points[pick])[image, torch.arange(batch_size)]  # [B, n, 2]
        steps = torch.arange(n)
        order = torch.where(reverse, shift - steps, shift + steps) % n  # a rotation, or a reversed one
        return {"coords": coords, "tours": labels[pick].gather(1, order)}

    def val_batches(self) -> list[Batch]:
        """One batch per validation size (built once, then reused)."""
        if self._val is None:
            self._val = [self._val_batch(n) for n in self.val_sizes]
        return self._val

    def _val_batch(self, n: int) -> Batch:
        seed = self.val_seed + n
        if self.val_reference == "lkh":
            data = labelled_dataset(
                "tsp",
                n,
                self.val_count,
                seed=seed,
                cache_dir=self.lkh_cache_dir,
                workers=self.label_workers,
                lkh_runs=self.lkh_runs,
            )
            tours = torch.stack(data.labels)
            return {"coords": data.points, "reference": tour_length(data.points.double(), tours).float()}
        coords = uniform_points(self.val_count, n, seed=seed)
        if self.val_reference == "none":
            return {"coords": coords}
        return {"coords": coords, "reference": torch.full((self.val_count,), CONCORDE_MEAN_LENGTH[n])}


class TSPPolicy(nn.Module):
    """The trainable task around a :class:`~geoattn.nn.TSPAttentionModel` (``self.policy``).

    Args:
        signal: ``"pomo"`` (reinforcement learning; batches ``{"coords"}``) or ``"imitation"`` (batches
            ``{"coords", "tours"}`` from :class:`RandomTSPInstances` with ``label_count``). (default: ``"pomo"``)
        val_num_starts: start cities of the multi-start validation decode; ``None``: ``min(n, 100)``.
            (default: ``None``)
        **policy: the keyword arguments of :class:`~geoattn.nn.TSPAttentionModel` (``embed_dim``, ``heads``,
            ``layers``, ``ff_dim``, ``clip``, ``norm``), flat in the config so a checkpoint records them.

    :meth:`training_loss` returns :func:`pomo_loss` over ``n`` sampled tours per instance, or the imitation
    loss (module docstring); :meth:`validation_metrics` takes a validation batch of
    :class:`RandomTSPInstances` and returns, for its size ``n``, ``greedy_len_n{n}`` and ``aug_len_n{n}``
    (mean lengths of the greedy and the multi-start x8 tours) and, with a reference, ``greedy_gap_n{n}``
    and ``aug_gap_n{n}`` in percent. :meth:`training_metrics` returns the means since its last call of the
    sampled tour length (``train_len_n{n}``, POMO) or of the loss (``train_nll_n{n}``, imitation) per ``n``.
    """

    def __init__(self, signal: Signal = "pomo", val_num_starts: int | None = None, **policy: Any) -> None:
        super().__init__()
        if signal not in get_args(Signal):
            raise ValueError(f"{type(self).__name__}: signal must be 'pomo' or 'imitation', got {signal!r}")
        self.signal = signal
        self.policy = TSPAttentionModel(**policy)
        self.val_num_starts = val_num_starts
        self._train_sums: dict[str, tuple[torch.Tensor, int]] = {}

    @staticmethod
    def _autocast(coords: torch.Tensor) -> contextlib.AbstractContextManager[Any]:
        if coords.device.type == "cuda":
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _accumulate(self, key: str, value: torch.Tensor) -> None:
        total, count = self._train_sums.get(key, (torch.zeros((), device=value.device), 0))
        self._train_sums[key] = (total + value.detach(), count + 1)

    def training_loss(self, batch: Batch) -> torch.Tensor:
        """The loss of :attr:`signal` on one training batch."""
        coords = batch["coords"]
        b, n, _ = coords.shape
        if self.signal == "imitation":
            if "tours" not in batch:
                raise ValueError(
                    "TSPPolicy(signal='imitation') needs batches with 'tours': set data.label_count"
                )
            with self._autocast(coords):
                log_likelihood = self.policy.tour_log_likelihood(
                    self.policy.encode(coords), batch["tours"][:, None]
                )
            loss = -log_likelihood.mean() / (n - 2)
            self._accumulate(f"train_nll_n{n}", loss)
            return loss
        starts = torch.arange(n, device=coords.device).expand(b, n)
        with self._autocast(coords):
            tours, log_likelihood = self.policy.rollout(self.policy.encode(coords), starts, mode="sample")
        lengths = tour_length(coords.repeat_interleave(n, dim=0), tours.reshape(b * n, n)).view(b, n)
        self._accumulate(f"train_len_n{n}", lengths.mean())
        return pomo_loss(lengths, log_likelihood)

    def training_metrics(self) -> dict[str, float]:
        """Means of the training metrics since the last call (then reset)."""
        out = {key: float(total) / count for key, (total, count) in sorted(self._train_sums.items())}
        self._train_sums.clear()
        return out

    def validation_metrics(self, batch: Batch) -> dict[str, float]:
        """Greedy and multi-start x8 mean lengths (and gaps) on one validation batch."""
        coords = batch["coords"]
        n = coords.shape[1]
        greedy = decode_tours(self.policy, coords, strategy="greedy", augment=False).lengths
        aug = decode_tours(
            self.policy, coords, strategy="multistart", num_starts=self.val_num_starts, augment=True
        ).lengths
        out = {f"greedy_len_n{n}": float(greedy.mean()), f"aug_len_n{n}": float(aug.mean())}
        if "reference" in batch:
            reference = float(batch["reference"].mean())
            out[f"greedy_gap_n{n}"] = 100.0 * (out[f"greedy_len_n{n}"] / reference - 1.0)
            out[f"aug_gap_n{n}"] = 100.0 * (out[f"aug_len_n{n}"] / reference - 1.0)
        return out
