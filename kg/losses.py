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

For distance-based scores :math:`x_{bj} = -\|q_b - t_j\|^p + \beta_b + \gamma_j`, the cross entropy needs of the
``[B, N]`` matrix only its row log-sum-exp and row sums, which :func:`fused_lcwa_cross_entropy` takes from
:func:`geoattn.kernels.distance_logsumexp.distance_logsumexp` without forming the matrix.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from pykeen.losses import BCEWithLogitsLoss, CrossEntropyLoss, Loss
from pykeen.typing import FloatTensor, LongTensor
from torch.nn import functional as F

from ..kernels.backend import Backend
from ..kernels.distance_logsumexp import distance_logsumexp

__all__ = [
    "PositiveTargets",
    "dense_labels",
    "fused_lcwa_cross_entropy",
    "sparse_lcwa_loss",
    "supports_sparse_lcwa",
]


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
    return _cross_entropy(
        torch.logsumexp(scores, dim=-1),
        scores.sum(dim=-1) if eps else None,
        positive,
        targets,
        eps,
        num_targets,
        loss.reduction,
    )


def _cross_entropy(
    lse: FloatTensor,
    rowsum: FloatTensor | None,
    positive: FloatTensor,
    targets: PositiveTargets,
    eps: float,
    num_targets: int,
    reduction: str,
) -> FloatTensor:
    r"""The module's cross entropy :math:`\ell_b` from the row log-sum-exp ``lse [B]``, the row sums ``[B]`` of the
    scores (``None`` when ``eps = 0``) and ``positive [nnz]`` (each positive's score times its multiplicity),
    reduced by ``reduction`` (``"mean"`` or ``"sum"``)."""
    row_mass = torch.zeros_like(lse).index_add_(0, targets.rows, targets.values.to(lse.dtype))
    row_positive = torch.zeros_like(lse).index_add_(0, targets.rows, positive)
    per_row = lse - (1.0 - eps) * row_positive / row_mass
    if eps and rowsum is not None:
        per_row = per_row - (eps / num_targets) * rowsum
    return per_row.mean() if reduction == "mean" else per_row.sum()


def fused_lcwa_cross_entropy(
    q: FloatTensor,
    t: FloatTensor,
    gamma: FloatTensor | None,
    beta: FloatTensor | None,
    targets: PositiveTargets,
    *,
    squared: bool,
    label_smoothing: float | None,
    num_targets: int,
    reduction: str = "mean",
    backend: Backend = "auto",
) -> FloatTensor:
    r"""PyKEEN's LCWA :class:`~pykeen.losses.CrossEntropyLoss` of distance scores, without the ``[B, N]`` matrix.

    The scores are :math:`x_{bj} = s_{bj} + \beta_b` with :math:`s_{bj} = -\|q_b - t_j\|_2^{\,p} + \gamma_j`
    (:math:`p = 2` for ``squared=True``, else 1), and the loss is the module's cross entropy

    .. math::
        \ell_b = \operatorname{logsumexp}_j x_{bj} - (1-\varepsilon) \sum_{j \in P_b} p_{bj} x_{bj}
                 - \frac{\varepsilon}{N} \sum_j x_{bj},

    i.e. :func:`sparse_lcwa_loss` on the materialised :math:`x` (``CrossEntropyLoss(reduction=reduction)``), with
    :math:`\operatorname{logsumexp}_j x_{bj} = \operatorname{lse}_b + \beta_b` and
    :math:`\sum_j x_{bj} = \operatorname{rowsum}_b + N\beta_b` from
    :func:`~geoattn.kernels.distance_logsumexp.distance_logsumexp` (the Triton kernel on CUDA), and the
    positives' scores :math:`x_{bj}, j \in P_b` computed row-wise from ``q[rows]`` and ``t[cols]``
    (``O(nnz d)``; the direct difference, so they are more accurate than the Gram form near 0). The
    :math:`\beta_b` terms cancel in exact arithmetic (:math:`1 - (1-\varepsilon) - \varepsilon = 0`); they are
    kept so that values and gradients are those of the materialised path.

    Args:
        q: ``[B, d]`` query points.
        t: ``[N, d]`` points of every target.
        gamma: ``[N]`` target biases, or ``None``.
        beta: ``[B]`` row biases, or ``None``.
        targets: the positives of the rows (every row has at least one).
        squared: ``True`` for squared distances (:math:`p = 2`), ``False`` for distances (:math:`p = 1`).
        label_smoothing: PyKEEN's ``label_smoothing`` :math:`\varepsilon` (``None`` or ``0`` for none).
        num_targets: :math:`N`, the number of rows of ``t``.
        reduction: ``"mean"`` (over rows, PyKEEN's default) or ``"sum"``. Default ``"mean"``.
        backend: of :func:`~geoattn.kernels.distance_logsumexp.distance_logsumexp` (default ``"auto"``: Triton
            for CUDA tensors, the torch reference otherwise).

    Returns:
        the scalar loss, in float32 for float32/float16/bfloat16 inputs and float64 for float64.

    Raises:
        ValueError: for a ``num_targets`` other than ``t``'s rows, a ``reduction`` other than ``"mean"``/``"sum"``,
            or a ``beta`` that is not ``[B]`` (and everything :func:`distance_logsumexp` rejects).
    """
    if reduction not in ("mean", "sum"):
        raise ValueError(f"fused_lcwa_cross_entropy: reduction must be 'mean' or 'sum', got {reduction!r}")
    if num_targets != t.shape[0]:
        raise ValueError(
            f"fused_lcwa_cross_entropy: num_targets={num_targets} must be the number of rows of t {tuple(t.shape)}"
        )
    if beta is not None and tuple(beta.shape) != (q.shape[0],):
        raise ValueError(
            f"fused_lcwa_cross_entropy: beta must be None or [B] = [{q.shape[0]}], got {tuple(beta.shape)}"
        )
    eps = float(label_smoothing or 0.0)
    lse, rowsum = distance_logsumexp(q, t, gamma, squared=squared, backend=backend)
    dtype = lse.dtype
    diff = q[targets.rows].to(dtype) - t[targets.cols].to(dtype)  # [nnz, d]
    positive = diff.square().sum(-1) if squared else torch.linalg.vector_norm(diff, dim=-1)
    positive = -positive
    if gamma is not None:
        positive = positive + gamma[targets.cols].to(dtype)
    if beta is not None:
        beta = beta.to(dtype)
        lse = lse + beta
        rowsum = rowsum + num_targets * beta
        positive = positive + beta[targets.rows]
    positive = positive * targets.values.to(dtype)
    return _cross_entropy(lse, rowsum, positive, targets, eps, num_targets, reduction)
