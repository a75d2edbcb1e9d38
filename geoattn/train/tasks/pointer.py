r"""Pointer-network tasks (Vinyals et al. 2015): convex hull, Delaunay triangulation and TSP.

Training signal (the paper's): the teacher-forced negative log-likelihood of the exact label, summed over the
sequence and averaged over the batch,

.. math::
    \mathcal{L} = -\frac{1}{B} \sum_b \sum_{t < T_b} \log p_\theta(y_{b,t} \mid y_{b,<t}, x_b),

where :math:`y_b` is the label of instance :math:`b` written as pointer positions (:func:`pointer_targets`)
and :math:`T_b` its length.

How a label becomes positions (:class:`~geoattn.nn.PointerNetwork`'s conventions; position 0 is the
end-of-sequence token when the network has one, and input ``j`` is position ``j + 1``):

==============  ====  ======================================  ==========================================
problem         EOS   step mask                               label -> positions
==============  ====  ======================================  ==========================================
convex_hull     yes   ``CycleMask()``                         hull ``h_0..h_{k-1}`` -> ``h+1``, ``h_0+1``, 0
delaunay        yes   ``FreeMask(group_size=3)``              triangles ``[m, 3]`` -> flattened ``+1``, 0
tsp             no    ``PermutationMask(start=0)``            the canonical tour (starts at city 0)
==============  ====  ======================================  ==========================================

Data (:class:`PointerInstances`): like the paper's fixed training sets, a pool of ``train_count`` seeded
instances per size ``n`` in ``[n_min, n_max]``, labelled exactly by :func:`geoattn.tasks.labelled_dataset`
(convex hull by Qhull, Delaunay by Qhull, TSP by Held-Karp for ``n <= 12`` and LKH-3 above; in parallel over
the CPU cores, cached on disk); each training batch picks one size uniformly and ``batch_size`` instances of
its pool with replacement, all from the trainer's generator. Validation: a fixed labelled set per size in
``val_sizes``, one batch each, so every metric is exact over its set.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, Final, Literal, get_args

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from geoattn.nn import pointer_network as ptr
from geoattn.tasks.labels import labelled_dataset
from geoattn.tasks.metrics import (
    average_tour_length,
    delaunay_accuracy,
    hull_accuracy,
    hull_area_coverage,
    triangle_coverage,
)

from .tsp_policy import _int

__all__ = ["PROBLEMS", "PointerInstances", "PointerTask", "Problem", "pointer_targets", "problem_mask"]

Batch = dict[str, torch.Tensor]
Problem = Literal["convex_hull", "delaunay", "tsp"]
#: The problems of the paper, as accepted by ``problem`` arguments.
PROBLEMS: Final[tuple[str, ...]] = get_args(Problem)


def _check_problem(owner: str, problem: str) -> Problem:
    if problem not in PROBLEMS:
        raise ValueError(f"{owner}: problem must be one of {list(PROBLEMS)}, got {problem!r}")
    return problem  # type: ignore[return-value]  # checked against the Literal's values


def problem_mask(problem: str) -> tuple[bool, ptr.StepMask]:
    """``(eos, step mask)`` of ``problem`` (the table in the module docstring)."""
    kind = _check_problem("problem_mask", problem)
    if kind == "convex_hull":
        return True, ptr.CycleMask()
    if kind == "delaunay":
        return True, ptr.FreeMask(group_size=3)
    return False, ptr.PermutationMask(start=0)


def pointer_targets(problem: str, labels: torch.Tensor) -> torch.Tensor:
    """Padded labels written as pointer positions (module docstring), ``-1`` after each sequence's end.

    Args:
        problem: ``"convex_hull"``, ``"delaunay"`` or ``"tsp"``.
        labels: padded with ``-1``: hulls ``[B, k]``, triangles ``[B, m, 3]`` or tours ``[B, n]``
            (:meth:`geoattn.tasks.LabelledDataset.padded_labels`).

    Returns:
        ``[B, T]`` long: ``T = k + 2`` (hull, closed, then EOS), ``3 m + 1`` (Delaunay) or ``n`` (TSP).
    """
    kind = _check_problem("pointer_targets", problem)
    if kind == "tsp":
        if labels.dim() != 2 or bool((labels[:, 0] != 0).any()):
            raise ValueError(
                f"pointer_targets: TSP labels must be [B, n] tours starting at city 0 (canonical), got "
                f"shape {tuple(labels.shape)}"
            )
        return labels.long()
    flat = labels.flatten(1) if kind == "delaunay" else labels
    if flat.dim() != 2 or (kind == "delaunay" and labels.dim() != 3):
        raise ValueError(
            f"pointer_targets: {kind} labels must be padded [B, k] hulls or [B, m, 3] triangles, got "
            f"shape {tuple(labels.shape)}"
        )
    batch, width = flat.shape
    rows = torch.arange(batch)
    lengths = (flat >= 0).sum(dim=1)  # [B]
    targets = torch.full((batch, width + 2), -1, dtype=torch.long)
    targets[:, :width] = torch.where(flat >= 0, flat.long() + 1, -1)
    if kind == "convex_hull":
        targets[rows, lengths] = flat[:, 0].long() + 1  # close the cycle
        lengths = lengths + 1
    targets[rows, lengths] = 0  # end of sequence
    return targets[:, : int(lengths.max()) + 1]


class PointerInstances:
    """Seeded labelled instances of one problem: a training pool per size, and a fixed validation set.

    Args:
        problem: ``"convex_hull"``, ``"delaunay"`` or ``"tsp"``.
        n_min, n_max: training sizes, every ``n`` in ``[n_min, n_max]`` (``n_min >= 3``).
        batch_size: instances per training batch (all of one size).
        train_count: labelled training instances per size. (default: ``10000``)
        train_seed: the pool of size ``n`` uses seed ``train_seed + n``. (default: ``0``)
        val_sizes: validation sizes. (default: ``(n_max,)``)
        val_count: validation instances per size. (default: ``1000``)
        val_seed: the validation set of size ``n`` uses seed ``val_seed + n``; keep it apart from
            ``train_seed`` (the defaults are 1,000,000 apart). (default: ``1000000``)
        label_workers: processes computing labels; ``None``: every core. (default: ``None``)
        cache_dir: label cache folder; ``None`` recomputes every run. (default: ``None``)
        lkh_runs: LKH's ``RUNS`` for TSP labels with ``n > 12``. (default: ``1``)

    Batches: ``{"points": [B, n, 2]`` float32, ``"targets": [B, T]`` long positions (:func:`pointer_targets`)},
    and in validation batches also ``"labels"``: the padded exact labels (``[B, k]``, ``[B, m, 3]`` or
    ``[B, n]``).
    """

    def __init__(
        self,
        problem: Problem,
        n_min: int,
        n_max: int,
        batch_size: int,
        train_count: int = 10000,
        train_seed: int = 0,
        val_sizes: Sequence[int] | None = None,
        val_count: int = 1000,
        val_seed: int = 1_000_000,
        label_workers: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        lkh_runs: int = 1,
    ) -> None:
        owner = type(self).__name__
        self.problem = _check_problem(owner, problem)
        self.n_min = _int(owner, "n_min", n_min, 3)
        self.n_max = _int(owner, "n_max", n_max, self.n_min)
        self.batch_size = _int(owner, "batch_size", batch_size, 1)
        self.train_count = _int(owner, "train_count", train_count, 1)
        self.train_seed = train_seed
        sizes = [self.n_max] if val_sizes is None else list(val_sizes)
        if not sizes:
            raise ValueError(f"{owner}: val_sizes must list at least one size")
        self.val_sizes = [_int(owner, "val_sizes[]", n, 3) for n in sizes]
        self.val_count = _int(owner, "val_count", val_count, 1)
        self.val_seed = val_seed
        self.label_workers = None if label_workers is None else _int(owner, "label_workers", label_workers, 1)
        self.cache_dir = cache_dir
        self.lkh_runs = _int(owner, "lkh_runs", lkh_runs, 1)
        self._pools: dict[int, Batch] = {}
        self._val: list[Batch] | None = None

    def _labelled(self, n: int, count: int, seed: int) -> Batch:
        data = labelled_dataset(
            self.problem,
            n,
            count,
            seed=seed,
            cache_dir=self.cache_dir,
            workers=self.label_workers,
            lkh_runs=self.lkh_runs,
        )
        labels = data.padded_labels()
        return {"points": data.points, "targets": pointer_targets(self.problem, labels), "labels": labels}

    def pool(self, n: int) -> Batch:
        """The training pool of size ``n`` (labelled on first use, then kept)."""
        if not self.n_min <= n <= self.n_max:
            raise ValueError(f"{type(self).__name__}: n must be in [{self.n_min}, {self.n_max}], got {n}")
        if n not in self._pools:
            self._pools[n] = self._labelled(n, self.train_count, self.train_seed + n)
        return self._pools[n]

    def _draw(self, generator: torch.Generator) -> tuple[int, torch.Tensor]:
        """The random part of one training batch: its size ``n`` and the ``[batch_size]`` pool rows."""
        n = self.n_min + int(torch.randint(self.n_max - self.n_min + 1, (), generator=generator))
        return n, torch.randint(self.train_count, (self.batch_size,), generator=generator)

    def train_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        """Batches of one uniformly drawn size each, from ``generator``; infinite. Labels every pool first."""
        for n in range(self.n_min, self.n_max + 1):
            self.pool(n)
        while True:
            n, pick = self._draw(generator)
            pool = self._pools[n]
            yield _trim(pool["points"][pick], pool["targets"][pick])

    def fast_forward(self, generator: torch.Generator, count: int) -> None:
        """Advance ``generator`` past ``count`` batches of :meth:`train_batches` without building them (the
        trainer's resume: replaying tens of thousands of gathered batches took minutes)."""
        for _ in range(count):
            self._draw(generator)

    def val_batches(self) -> list[Batch]:
        """One batch per validation size (labelled once, then reused)."""
        if self._val is None:
            self._val = [self._labelled(n, self.val_count, self.val_seed + n) for n in self.val_sizes]
        return self._val


def _trim(points: torch.Tensor, targets: torch.Tensor) -> Batch:
    """A training batch: ``targets`` without the padding columns no instance uses (pools pad to their longest)."""
    return {"points": points, "targets": targets[:, : int((targets >= 0).sum(dim=1).max())]}


def _unpad(labels: torch.Tensor) -> list[npt.NDArray[np.int64]]:
    """Per-instance labels without their ``-1`` padding (rows of ``[B, k]``, or ``[B, m, 3]`` triangles)."""
    out = []
    for row in labels.cpu().numpy():
        keep = (row >= 0).all(axis=-1) if row.ndim == 2 else row >= 0
        out.append(row[keep])
    return out


class PointerTask(nn.Module):
    """The trainable task around a :class:`~geoattn.nn.PointerNetwork` (``self.network``) for one problem.

    Args:
        problem: ``"convex_hull"``, ``"delaunay"`` or ``"tsp"``; sets the network's EOS and the step mask
            (:func:`problem_mask`).
        beam_width: validation decoding: greedy for ``1``, else beam search with this many beams (the
            best beam is scored). (default: ``1``)
        masked_training: apply the step mask in the teacher-forced forward too (the paper does not: it
            constrains only the search). (default: ``False``)
        **network: keyword arguments of :class:`~geoattn.nn.PointerNetwork` (``input_dim``, ``hidden_dim``,
            ``embed_dim``, ``num_layers``, ``clip``), flat in the config so a checkpoint records them.

    :meth:`validation_metrics` takes a :class:`PointerInstances` batch of size ``n`` and returns, computed by
    :mod:`geoattn.tasks.metrics` on the decoded sequences:

    - convex hull: ``accuracy_n{n}``, ``area_fail_rate_n{n}`` and, when at least one prediction is a simple
      polygon, ``area_coverage_n{n}`` (the paper reports FAIL when the fail rate exceeds 1%);
    - Delaunay: ``accuracy_n{n}``, ``triangle_coverage_n{n}``;
    - TSP: ``tour_length_n{n}`` (mean), ``label_length_n{n}`` (mean length of the labels) and ``gap_n{n}``
      (percent, ``100 (tour / label - 1)``).

    All values are fractions (not percent) except the gap. :meth:`training_metrics` returns the mean
    training loss since its last call (``train_nll``, nats per sequence).
    """

    def __init__(
        self, problem: Problem, beam_width: int = 1, masked_training: bool = False, **network: Any
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.problem = _check_problem(owner, problem)
        self.beam_width = _int(owner, "beam_width", beam_width, 1)
        self.masked_training = bool(masked_training)
        if "eos" in network:
            raise ValueError(f"{owner}: eos is set by the problem ({problem!r}); remove it from the config")
        eos, self.mask = problem_mask(problem)
        self.network = ptr.PointerNetwork(eos=eos, **network)
        self._nll_sum: torch.Tensor | None = None
        self._nll_count = 0

    def training_loss(self, batch: Batch) -> torch.Tensor:
        """Negative sequence log-likelihood of the labels, averaged over the batch (module docstring)."""
        targets = batch["targets"]
        log_probs = self.network(batch["points"], targets, mask=self.mask if self.masked_training else None)
        loss = -ptr.sequence_log_likelihood(log_probs, targets).mean()
        detached = loss.detach()
        self._nll_sum = detached if self._nll_sum is None else self._nll_sum + detached
        self._nll_count += 1
        return loss

    def training_metrics(self) -> dict[str, float]:
        """``{"train_nll": mean loss}`` since the last call (then reset); empty before any step."""
        if self._nll_sum is None:
            return {}
        out = {"train_nll": float(self._nll_sum) / self._nll_count}
        self._nll_sum, self._nll_count = None, 0
        return out

    def predict(self, points: torch.Tensor) -> list[npt.NDArray[np.int64]]:
        """Decoded outputs of ``[B, n, 2]`` instances as input indices: hull vertex sequences ``[h]`` (closed
        by repeating the first), triangles ``[m, 3]`` or tours ``[n]``; empty where decoding failed."""
        strategy: ptr.DecodingStrategy = "greedy" if self.beam_width == 1 else "beam"
        decoded = self.network.decode(points, mask=self.mask, strategy=strategy, width=self.beam_width)
        offset = int(self.network.eos)
        out = []
        for row in decoded.sequences[:, 0].cpu().numpy():
            idx = row[row >= offset] - offset  # drops padding (-1) and EOS (position 0)
            if self.problem == "delaunay":
                idx = idx[: idx.size - idx.size % 3].reshape(-1, 3)
            out.append(idx.astype(np.int64))
        return out

    def validation_metrics(self, batch: Batch) -> dict[str, float]:
        """The problem's metrics on one validation batch (class docstring)."""
        points = batch["points"]
        n = points.shape[1]
        predictions = self.predict(points)
        labels = _unpad(batch["labels"])
        if self.problem == "convex_hull":
            area = hull_area_coverage(points, predictions, labels)
            out = {
                f"accuracy_n{n}": hull_accuracy(predictions, labels),
                f"area_fail_rate_n{n}": area.fail_rate,
            }
            if area.fail_rate < 1.0:
                out[f"area_coverage_n{n}"] = area.coverage
            return out
        if self.problem == "delaunay":
            return {
                f"accuracy_n{n}": delaunay_accuracy(predictions, labels),
                f"triangle_coverage_n{n}": triangle_coverage(predictions, labels),
            }
        tours = torch.as_tensor(np.stack(predictions), device=points.device)
        length = average_tour_length(points, tours)
        label = average_tour_length(points, batch["labels"])
        return {
            f"tour_length_n{n}": length,
            f"label_length_n{n}": label,
            f"gap_n{n}": 100.0 * (length / label - 1.0),
        }
