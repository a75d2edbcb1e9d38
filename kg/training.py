r"""A 1-N (LCWA) training loop for PyKEEN whose labels live on the model's device.

PyKEEN's :class:`~pykeen.training.LCWATrainingLoop` builds each batch on the CPU: for every ``(h, r)`` pair it
slices a scipy CSR row, densifies it to a ``num_entities``-float label vector, and the data loader stacks, pins
and copies ``[batch, num_entities]`` labels to the GPU (24 of 29 s of a profiled WN18RR MuRE epoch on an H200). This loop
keeps the same instances (PyKEEN's :class:`~pykeen.triples.LCWAInstances`, so the same pairs in the same order),
but moves their CSR incidence to the model's device once; the data loader yields only pair indices, and each
batch's positives are gathered on the device:

.. math::
    \text{rows} = \operatorname{repeat}(0..B{-}1,\ n_b),\qquad
    \text{cols} = \text{indices}[\text{indptr}[i_b] + (0..n_b{-}1)],\qquad
    n_b = \text{indptr}[i_b + 1] - \text{indptr}[i_b] .

The loss is then computed from those positives without a label matrix for binary and softmax cross entropy
(:mod:`geoattn.kg.losses`), or by PyKEEN's ``process_lcwa_scores`` on a label matrix built on the device for every
other loss; either way the objective is PyKEEN's. Scores come from the model's ``score_h``/``score_r``/``score_t``
(any PyKEEN model), or for tail prediction with PyKEEN's L2 TransE/MuRE/RotatE from one matrix product
(:mod:`geoattn.kg.scoring`; ``fast_scoring=False`` turns that off). With ``fused_loss=True`` those models' softmax
cross entropy skips the ``[batch, num_entities]`` score matrix altogether
(:func:`geoattn.kg.losses.fused_lcwa_cross_entropy`, a Triton log-sum-exp over distance tiles on CUDA).

Everything outside the batch (epochs, stoppers, checkpoints, callbacks, result trackers, sub-batching, slicing,
automatic memory optimisation) is PyKEEN's own :class:`~pykeen.training.TrainingLoop`. The shuffling uses the same
:class:`torch.utils.data.RandomSampler` as PyKEEN's loop, so with the same seed both loops see the same batches.
Importing :mod:`geoattn.kg` registers the loop, so ``pipeline(..., training_loop="fastlcwa")`` finds it.

In an initialised ``torch.distributed`` process group of ``W > 1`` processes (``torchrun``; ``geoattn-train``'s
KG runner joins it), the loop trains data-parallel (:mod:`geoattn.kg.distributed`): every rank walks the same
global batches, scores its share of each, and the gradients are summed over the ranks before each optimiser step,
so the update is that of the whole batch; only rank 0 writes PyKEEN's checkpoints (every rank reads them on resume).
Checkpoints are written atomically (:mod:`geoattn.kg.checkpoints`): a run killed mid-write can still resume.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from pykeen.losses import CrossEntropyLoss
from pykeen.training import LCWATrainingLoop, TrainingCallback
from pykeen.triples import CoreTriplesFactory, LCWAInstances
from pykeen.triples.instances import LCWABatch
from pykeen.typing import FloatTensor, LongTensor
from torch.utils.data import DataLoader, Dataset

from geoattn.train.distributed import current, rank_seed, sum_over_ranks

from .checkpoints import AtomicCheckpoints
from .distributed import SharedRandomSampler, rank_rows, sum_gradients
from .losses import (
    PositiveTargets,
    dense_labels,
    fused_lcwa_cross_entropy,
    sparse_lcwa_loss,
    supports_sparse_lcwa,
)
from .scoring import OneToManyDecomposer, OneToManyScorer, fast_tail_scorer, tail_distance_decomposition

__all__ = ["DeviceIncidence", "EpochClock", "FastLCWATrainingLoop"]


class DeviceIncidence:
    """The LCWA instances of a triples factory as tensors on one device: pairs and their CSR target incidence.

    Args:
        instances: PyKEEN's LCWA instances (unique pairs and their scipy CSR label matrix).
        device: where the tensors live (the model's device).

    Attributes:
        pairs: ``[P, 2]`` the unique ``(h, r)`` (or ``(r, t)``, ``(h, t)``) pairs, in PyKEEN's order.
        indptr: ``[P + 1]`` CSR row pointers; ``indices`` ``[nnz]`` the targets; ``values`` ``[nnz]`` their
            multiplicities (as PyKEEN's label matrix holds them).
    """

    def __init__(self, instances: LCWAInstances, device: torch.device) -> None:
        csr = instances.compressed
        csr.sum_duplicates()
        self.pairs = torch.as_tensor(instances.pairs, dtype=torch.long, device=device)
        self.indptr = torch.as_tensor(csr.indptr, dtype=torch.long, device=device)
        self.indices = torch.as_tensor(csr.indices, dtype=torch.long, device=device)
        self.values = torch.as_tensor(csr.data, dtype=torch.float32, device=device)
        self.num_targets = int(csr.shape[1])

    def __len__(self) -> int:
        return int(self.pairs.shape[0])

    def positives(self, ids: LongTensor) -> PositiveTargets:
        """The positives of the pairs ``ids`` ``[B]`` (on this device), rows numbered ``0..B-1``.

        One host synchronisation (the number of positives sizes the output).
        """
        starts = self.indptr[ids]
        counts = self.indptr[ids + 1] - starts  # [B]
        offsets = torch.cumsum(counts, 0)
        total = int(offsets[-1]) if len(ids) else 0
        rows = torch.repeat_interleave(torch.arange(len(ids), device=ids.device), counts, output_size=total)
        within = torch.arange(total, device=ids.device) - (offsets - counts)[rows]
        entries = starts[rows] + within
        return PositiveTargets(rows=rows, cols=self.indices[entries], values=self.values[entries])


class EpochClock(TrainingCallback):
    """A PyKEEN training callback that times the epochs: ``elapsed[epoch]`` is the wall time in seconds from the
    start of training (the loop's last ``train`` call, after any resumed checkpoint was loaded) to the end of that
    epoch. Any loop, any model: ``pipeline(..., training_kwargs=dict(callbacks=clock))``."""

    def __init__(self) -> None:
        super().__init__()
        self.start = time.perf_counter()
        self.elapsed: dict[int, float] = {}

    def register_training_loop(self, training_loop: Any) -> None:
        super().register_training_loop(training_loop)
        self.start = time.perf_counter()

    def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
        self.elapsed[epoch] = time.perf_counter() - self.start


class _PairIndices(Dataset[LongTensor]):
    """Indices ``0..P-1`` of the LCWA pairs; a whole batch is fetched at once (``__getitems__``)."""

    def __init__(self, num_pairs: int) -> None:
        self.num_pairs = num_pairs

    def __len__(self) -> int:
        return self.num_pairs

    def __getitem__(self, index: int) -> LongTensor:
        return torch.as_tensor(index)

    def __getitems__(self, indices: list[int]) -> LongTensor:
        return torch.as_tensor(indices, dtype=torch.long)


def _as_batch(batch: LongTensor) -> LongTensor:
    """The data loader's collate function: the fetched index tensor is the batch."""
    return batch


class FastLCWATrainingLoop(AtomicCheckpoints[LCWABatch], LCWATrainingLoop):
    """PyKEEN's LCWA (1-N, ``KvsAll``) training with the labels on the model's device.

    Args:
        fast_scoring: for tail prediction, score PyKEEN's L2 TransE/MuRE/RotatE against all entities with one
            matrix product (:func:`~geoattn.kg.scoring.fast_tail_scorer`) instead of the model's broadcast
            ``score_t`` (default ``True``; no effect on other models, on slicing or in inductive modes).
        fused_loss: for tail prediction with PyKEEN's L2 TransE/MuRE/RotatE and PyKEEN's
            :class:`~pykeen.losses.CrossEntropyLoss` (reduction ``"mean"`` or ``"sum"``), compute the loss with
            :func:`~geoattn.kg.losses.fused_lcwa_cross_entropy`, which never forms the ``[batch, num_entities]``
            score matrix (in inductive modes the loop falls back to the materialised path). Default ``False``:
            on an H200 it saves only 1-9% of a step (``benchmarks/kg/epoch_speed.py --breakdown-only``, column
            "fused step ms"), so it is for score matrices that do not fit in memory; the objective is the same
            either way, up to float rounding.
        kwargs: everything :class:`~pykeen.training.LCWATrainingLoop` takes (``model``, ``triples_factory``,
            ``optimizer``, ``target``, ...); ``loss_weighter`` is not supported.

    Raises:
        ValueError: when a ``loss_weighter`` is given, or ``fused_loss=True`` for a model, loss or target it does
            not support.
        TypeError: when ``fast_scoring`` or ``fused_loss`` is not a bool.

    Example::

        import geoattn.kg
        from pykeen.pipeline import pipeline

        result = pipeline(dataset=..., model="MuRE", loss="crossentropy", training_loop="fastlcwa")
    """

    #: the training pairs and their targets on the model's device, set when the training data loader is created
    incidence: DeviceIncidence | None

    def __init__(self, *, fast_scoring: bool = True, fused_loss: bool = False, **kwargs: Any) -> None:
        if kwargs.get("loss_weighter") is not None:
            raise ValueError(
                f"FastLCWATrainingLoop: loss_weighter={kwargs['loss_weighter']!r} is not supported; use "
                "training_loop='lcwa' for per-instance loss weights"
            )
        for name, flag in (("fast_scoring", fast_scoring), ("fused_loss", fused_loss)):
            if not isinstance(flag, bool):
                raise TypeError(f"FastLCWATrainingLoop: {name} must be a bool, got {flag!r}")
        super().__init__(**kwargs)
        self.fast_scoring = fast_scoring
        self.fused_loss = fused_loss
        self.incidence = None
        self._tail_scorer: OneToManyScorer | None = (
            fast_tail_scorer(self.model) if fast_scoring and self.target == 2 else None
        )
        self._decomposer: OneToManyDecomposer | None = self._fused_decomposer() if fused_loss else None

    def _fused_decomposer(self) -> OneToManyDecomposer:
        """The model's distance decomposition for ``fused_loss=True``, or a ``ValueError`` naming what is supported."""
        decompose = tail_distance_decomposition(self.model) if self.target == 2 else None
        loss = self.loss
        problems = []
        if decompose is None:
            problems.append(
                f"model {type(self.model).__name__} with target={self.target} (supported: tail prediction, "
                "target=2, with PyKEEN's TransE or MuRE with scoring_fct_norm=2, or RotatE)"
            )
        if type(loss) is not CrossEntropyLoss or loss.reduction not in ("mean", "sum"):
            problems.append(
                f"loss {type(loss).__name__}(reduction={loss.reduction!r}) (supported: PyKEEN's "
                "CrossEntropyLoss with reduction 'mean' or 'sum')"
            )
        if decompose is None or problems:
            raise ValueError(
                "FastLCWATrainingLoop: fused_loss=True does not support "
                + " and ".join(problems)
                + "; use fused_loss=False"
            )
        return decompose

    def _create_training_data_loader(  # type: ignore[override]
        self, triples_factory: CoreTriplesFactory, sampler: str | None, **kwargs: Any
    ) -> DataLoader[LongTensor]:
        """A loader of pair-index batches over PyKEEN's LCWA instances (whose incidence moves to the device)."""
        if sampler:
            raise NotImplementedError(
                f"FastLCWATrainingLoop: sampler={sampler!r} is not supported; LCWA training uses sampler=None"
            )
        instances = LCWAInstances.from_triples_factory(triples_factory, target=self.target)
        env = current()
        if env.is_distributed:
            # the same initial (or resumed) weights everywhere, and the same global batches on every rank
            for tensor in [*self.model.parameters(), *self.model.buffers()]:
                torch.distributed.broadcast(tensor.data, src=0)
            kwargs.pop("shuffle", None)
            kwargs["sampler"] = SharedRandomSampler(instances.pairs.shape[0])
            if not env.is_main:  # own dropout masks (rank 0 keeps the run's stream; batches come from rank 0)
                torch.manual_seed(rank_seed(torch.initial_seed(), env.rank))
        self.incidence = DeviceIncidence(instances, self.model.device)
        if self.incidence.num_targets != self.num_targets:
            raise ValueError(
                f"FastLCWATrainingLoop: the triples factory has {self.incidence.num_targets} targets, the model "
                f"{self.num_targets}; train on the factory the model was built for"
            )
        kwargs.setdefault("collate_fn", _as_batch)
        # only the batch indices travel: pin them only for a CUDA model (no warning on CPU)
        kwargs["pin_memory"] = bool(kwargs.get("pin_memory")) and self.model.device.type == "cuda"
        return DataLoader(dataset=_PairIndices(len(self.incidence)), **kwargs)

    @staticmethod
    def _get_batch_size(batch: LongTensor) -> int:  # type: ignore[override]
        return int(batch.shape[0])

    def scores(self, pairs: LongTensor, slice_size: int | None = None) -> FloatTensor:
        """``[B, num_targets]`` scores of the pairs ``[B, 2]`` against every target (the fast scorer if any)."""
        if self._tail_scorer is not None and not slice_size and self.mode is None:
            return self._tail_scorer(pairs)
        return self.score_method(pairs, slice_size=slice_size, mode=self.mode)

    def _process_batch(  # type: ignore[override]
        self,
        batch: LongTensor,
        start: int,
        stop: int,
        label_smoothing: float = 0.0,
        slice_size: int | None = None,
    ) -> FloatTensor:
        """The LCWA loss of the pairs ``batch[start:stop]`` plus the model's regularisation term; in a
        data-parallel job, this rank's share of it (its rows :func:`~geoattn.kg.distributed.rank_rows`, weighted
        ``n_r / n`` under a ``mean`` reduction, so that the ranks' values sum to the loss of the whole batch)."""
        if self.incidence is None:
            raise RuntimeError("FastLCWATrainingLoop: no training data loader was created (call train first)")
        ids = batch[start:stop].to(device=self.model.device, non_blocking=True)
        env = current()
        if not env.is_distributed:
            return self._loss(ids, label_smoothing, slice_size)
        mine = rank_rows(ids, env.rank, env.world_size)
        if len(mine) == 0:  # fewer rows than ranks: this rank's share of the loss is zero
            return torch.zeros((), device=self.model.device, requires_grad=True)
        weight = 1.0 if self.loss.reduction == "sum" else len(mine) / len(ids)
        return self._loss(mine, label_smoothing, slice_size) * weight

    def _forward_pass(  # type: ignore[override]
        self,
        batch: LongTensor,
        start: int,
        stop: int,
        current_batch_size: int,
        label_smoothing: float,
        slice_size: int | None,
        backward: bool = True,
    ) -> float:
        """PyKEEN's forward and backward pass of ``batch[start:stop]``; after the batch's last sub-batch, the
        gradients are summed over the ranks of a data-parallel job (each rank's loss is its share of the batch's)."""
        loss = super()._forward_pass(
            batch,  # type: ignore[arg-type]  # this loop's batches are pair indices, not PyKEEN's LCWABatch
            start,
            stop,
            current_batch_size,
            label_smoothing,
            slice_size,
            backward=backward,
        )
        if backward and stop == current_batch_size:
            sum_gradients(list(self.model.parameters()))
        return float(loss)

    def _train_epoch(self, *args: Any, **kwargs: Any) -> float:
        """PyKEEN's epoch; its loss summed over the ranks (each rank's batch losses are its shares)."""
        loss = torch.tensor(
            super()._train_epoch(*args, **kwargs), dtype=torch.float64, device=self.model.device
        )
        return sum_over_ranks(loss)

    def _save_state(self, *args: Any, **kwargs: Any) -> None:
        """PyKEEN's checkpoint, written atomically (:class:`~geoattn.kg.checkpoints.AtomicCheckpoints`) by rank 0
        alone (the ranks hold the same state)."""
        if current().is_main:
            super()._save_state(*args, **kwargs)

    def _loss(self, ids: LongTensor, label_smoothing: float, slice_size: int | None) -> FloatTensor:
        """The LCWA loss of the training pairs ``ids`` (on the device) plus the model's regularisation term."""
        assert self.incidence is not None
        pairs, targets = self.incidence.pairs[ids], self.incidence.positives(ids)
        value: FloatTensor
        if self._decomposer is not None and self.mode is None:
            pieces = self._decomposer(pairs)
            value = fused_lcwa_cross_entropy(
                pieces.q,
                pieces.t,
                pieces.gamma,
                pieces.beta,
                targets,
                squared=pieces.squared,
                label_smoothing=label_smoothing,
                num_targets=self.num_targets,
                reduction=self.loss.reduction,
            )
        elif supports_sparse_lcwa(self.loss):
            value = sparse_lcwa_loss(self.loss, self.scores(pairs, slice_size), targets, label_smoothing)
        else:
            scores = self.scores(pairs, slice_size)
            labels = dense_labels(targets, len(ids), self.num_targets, scores.dtype)
            value = self.loss.process_lcwa_scores(
                predictions=scores,
                labels=labels,
                label_smoothing=label_smoothing,
                num_entities=self.num_targets,
            )
        return value + self.model.collect_regularization_term()
