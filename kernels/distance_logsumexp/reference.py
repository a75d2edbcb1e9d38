r"""The specification of :func:`geoattn.kernels.distance_logsumexp.distance_logsumexp` in plain torch.

.. math::
    s_{bj} = -\|q_b - t_j\|_2^{\,p} + \gamma_j,\qquad
    \operatorname{lse}_b = \log\sum_j e^{s_{bj}},\qquad \operatorname{rowsum}_b = \sum_j s_{bj},

with :math:`p = 2` (``squared=True``) or :math:`p = 1`. The squared distance is taken in the Gram form the kernel
uses, :math:`D_{bj} = \max(\|q_b\|^2 + \|t_j\|^2 - 2\langle q_b, t_j\rangle,\ 0)`, and for :math:`p = 1` its root
is guarded: :math:`\sqrt{D}` where :math:`D >` ``MIN_NORM**2`` and 0 (with gradient 0, a subgradient of the norm
at 0) elsewhere, so gradients are finite at coincident points. Computed in the promotion of the input dtype and
float32 (float32 for half-precision inputs, float64 for float64); the reference forms the ``[B, N]`` scores.
"""

from __future__ import annotations

import torch

from ...manifolds.numerics import min_norm

__all__ = ["compute_dtype", "distance_logsumexp_reference", "distance_scores_reference"]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the op computes and returns in for inputs of ``dtype``: float32, or float64 for float64."""
    return torch.promote_types(dtype, torch.float32)


def distance_scores_reference(
    q: torch.Tensor, t: torch.Tensor, gamma: torch.Tensor | None = None, *, squared: bool
) -> torch.Tensor:
    """The ``[B, N]`` scores :math:`s_{bj}` of ``q [B, d]``, ``t [N, d]``, ``gamma [N]`` (or ``None``)."""
    dtype = compute_dtype(q.dtype)
    qf, tf = q.to(dtype), t.to(dtype)
    d2 = (qf.square().sum(-1, keepdim=True) + tf.square().sum(-1) - 2.0 * (qf @ tf.T)).clamp_min(0.0)
    if squared:
        dist = d2
    else:
        pos = d2 > min_norm(dtype) ** 2
        dist = torch.where(pos, torch.where(pos, d2, 1.0).sqrt(), 0.0)
    return -dist if gamma is None else gamma.to(dtype) - dist


def distance_logsumexp_reference(
    q: torch.Tensor, t: torch.Tensor, gamma: torch.Tensor | None = None, *, squared: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lse [B], rowsum [B])`` of :func:`distance_scores_reference` (``lse = -inf``, ``rowsum = 0`` for N = 0)."""
    scores = distance_scores_reference(q, t, gamma, squared=squared)
    return torch.logsumexp(scores, dim=-1), scores.sum(dim=-1)
