r"""1-N (LCWA) losses from the positive indices of each row, without a dense label matrix.

PyKEEN's LCWA loop hands :meth:`pykeen.losses.Loss.process_lcwa_scores` a dense ``[batch, num_targets]`` label
matrix :math:`y^0` (the multiplicity of each true target, 0 elsewhere). For the two losses 1-N training uses most,
the loss only needs, per row :math:`b`, the scores at the positives :math:`P_b` (with multiplicities
:math:`v_{bj}`), the row sum of the scores and one reduction over the row:

* :class:`~pykeen.losses.BCEWithLogitsLoss` (no ``pos_weight``), with PyKEEN's label smoothing
  :math:`y = (1-\varepsilon) y^0 + \tfrac{\varepsilon}{N-1}(1 - y^0) = a\,y^0 + c` where
  :math:`c = \varepsilon/(N-1)`, :math:`a = 1 - \varepsilon - c`:

  .. math::
      \sum_{b,j} \operatorname{softplus}(x_{bj}) - x_{bj} y_{bj}
      = \sum_{b,j} \operatorname{softplus}(x_{bj}) - a \sum_b \sum_{j \in P_b} v_{bj} x_{bj}
        - c \sum_{b,j} x_{bj},

  divided by :math:`B N` for ``reduction="mean"``;
* :class:`~pykeen.losses.CrossEntropyLoss`: PyKEEN normalises each label row to a distribution
  :math:`p_{bj} = v_{bj} / V_b` (:math:`V_b = \sum_{j \in P_b} v_{bj}`) and calls
  :func:`torch.nn.functional.cross_entropy` with ``label_smoothing=ε`` (target :math:`(1-\varepsilon)p + \varepsilon/N`):

  .. math::
      \ell_b = \operatorname{logsumexp}_j x_{bj} - (1-\varepsilon) \sum_{j \in P_b} p_{bj} x_{bj}
               - \frac{\varepsilon}{N} \sum_j x_{bj},

  averaged over rows for ``reduction="mean"``.

Every other loss (margin losses, ``pos_weight``, sample weights, ...) goes through PyKEEN's own
``process_lcwa_scores`` on a dense label matrix built on the scores' device by :func:`dense_labels`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from pykeen.losses import BCEWithLogitsLoss, CrossEntropyLoss, Loss
from pykeen.typing import FloatTensor, LongTensor
from torch.nn import functional as F

__all__ = ["PositiveTargets", "dense_labels", "sparse_lcwa_loss", "supports_sparse_lcwa"]


class PositiveTargets(NamedTuple):
    """The true targets of a batch of LCWA rows, in coordinate form (all on the scores' device).

    Attributes:
        rows: ``[nnz]`` row of each positive within the batch (sorted).
        cols: ``[nnz]`` target index (entity or relation id) of each positive.
        values: ``[nnz]`` multiplicity of each positive (1.0 unless a training triple is duplicated).
    """

    rows: LongTensor
    cols: LongTensor
    values: FloatTensor


def dense_labels(
    targets: PositiveTargets, num_rows: int, num_targets: int, dtype: torch.dtype
) -> FloatTensor:
    """The ``[num_rows, num_targets]`` label matrix PyKEEN's LCWA loop builds, on the targets' device."""
    labels = torch.zeros(num_rows, num_targets, dtype=dtype, device=targets.rows.device)
    labels.index_put_((targets.rows, targets.cols), targets.values.to(dtype), accumulate=True)
    return labels


def supports_sparse_lcwa(loss: Loss) -> bool:
    """Whether :func:`sparse_lcwa_loss` computes ``loss``'s LCWA objective (exact classes only: subclasses such
    as :class:`~pykeen.losses.InfoNCELoss` transform the scores and take PyKEEN's dense path)."""
    if type(loss) is BCEWithLogitsLoss:
        return loss.pos_weight is None
    return type(loss) is CrossEntropyLoss


def sparse_lcwa_loss(
    loss: Loss, scores: FloatTensor, targets: PositiveTargets, label_smoothing: float | None = None
) -> FloatTensor:
    """``loss.process_lcwa_scores(scores, dense_labels(targets), label_smoothing, num_targets)`` from the positives.

    Args:
        loss: a loss for which :func:`supports_sparse_lcwa` holds.
        scores: ``[batch, num_targets]`` scores of every row against every target.
        targets: the positives of the rows (every row has at least one).
        label_smoothing: PyKEEN's ``label_smoothing`` (``None`` or ``0`` for none), in ``[0, 1)``.

    Returns:
        the scalar loss, equal to PyKEEN's up to floating-point summation order.

    Raises:
        ValueError: for an unsupported loss or reduction, or ``scores`` that are not 2-D.
    """
    if not supports_sparse_lcwa(loss):
        raise ValueError(
            f"sparse_lcwa_loss: {type(loss).__name__} is not supported; accepted: BCEWithLogitsLoss without "
            "pos_weight, CrossEntropyLoss (use PyKEEN's process_lcwa_scores with dense_labels otherwise)"
        )
    if scores.dim() != 2:
        raise ValueError(f"sparse_lcwa_loss: scores must be [batch, num_targets], got {tuple(scores.shape)}")
    if loss.reduction not in ("mean", "sum"):
        raise ValueError(f"sparse_lcwa_loss: reduction must be 'mean' or 'sum', got {loss.reduction!r}")
    eps = float(label_smoothing or 0.0)
    num_rows, num_targets = scores.shape
    values = targets.values.to(scores.dtype)
    positive = scores[targets.rows, targets.cols] * values  # [nnz]
    if isinstance(loss, BCEWithLogitsLoss):
        c = eps / (num_targets - 1) if eps else 0.0
        total = F.softplus(scores).sum() - (1.0 - eps - c) * positive.sum()
        if c:
            total = total - c * scores.sum()
        return total / (num_rows * num_targets) if loss.reduction == "mean" else total
    # cross entropy against the L1-normalised label rows
    row_mass = torch.zeros(num_rows, dtype=scores.dtype, device=scores.device).index_add_(
        0, targets.rows, values
    )
    row_positive = torch.zeros_like(row_mass).index_add_(0, targets.rows, positive)
    per_row = torch.logsumexp(scores, dim=-1) - (1.0 - eps) * row_positive / row_mass
    if eps:
        per_row = per_row - (eps / num_targets) * scores.sum(dim=-1)
    return per_row.mean() if loss.reduction == "mean" else per_row.sum()
