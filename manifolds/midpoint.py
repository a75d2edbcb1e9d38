r"""Weighted gyro-midpoints: the κ-stereographic counterpart of a weighted mean, used to aggregate values.

For weights :math:`w_{ij}` and points :math:`y_j` with conformal factors :math:`\lambda_j = 2/(1 + k\|y_j\|^2)`,

.. math::
    m_i = \tfrac12 \otimes_k \frac{\sum_j w_{ij}\,\lambda_j\,y_j}{\sum_j w_{ij}\,(\lambda_j - 1)}

(Ungar's gyromidpoint, as in Bachmann et al. 2020, "Constant Curvature Graph Convolutional Networks").
Both sums are matrix products ``W @ (lambda * Y)`` and ``W @ (lambda - 1)``, so attention can aggregate on
the manifold at matmul cost, and a fused kernel can accumulate both sums online.
"""

from __future__ import annotations

import torch

from .numerics import min_denom
from .stereographic import CurvatureLike, as_curvature, mobius_scalar_mul

__all__ = ["gyro_midpoint", "midpoint_from_sums", "midpoint_summands"]


def midpoint_summands(values: torch.Tensor, *, k: CurvatureLike) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per-point terms of the gyro-midpoint sums: :math:`(\lambda_j y_j,\ \lambda_j - 1)`.

    Args:
        values: ``[..., D]`` points on the manifold of curvature ``k``.
        k: curvature, a float or a tensor broadcastable against ``values`` with size 1 along the last
            dimension.

    Returns:
        ``(lambda * values, lambda - 1)`` of shapes ``[..., D]`` and ``[..., 1]``, with
        :math:`\lambda = 2/(1 + k\|y\|^2)`. Weighted sums of these (a matrix product, or a scatter sum over
        graph edges) go into :func:`midpoint_from_sums`.
    """
    kt = as_curvature(k, values)
    lam = 2.0 / (1.0 + kt * (values * values).sum(-1, keepdim=True))
    return lam * values, lam - 1.0


def midpoint_from_sums(
    numerator: torch.Tensor, denominator: torch.Tensor, *, k: CurvatureLike
) -> torch.Tensor:
    r"""The final step of a weighted gyro-midpoint, from its two weighted sums.

    .. math::
        m = \tfrac12 \otimes_k \frac{\sum_j w_j\,\lambda_j\,y_j}{\sum_j w_j\,(\lambda_j - 1)}

    Args:
        numerator: ``[..., D]``: :math:`\sum_j w_j \lambda_j y_j`.
        denominator: ``[..., 1]``: :math:`\sum_j w_j (\lambda_j - 1)`.
        k: curvature, broadcastable against ``numerator`` with size 1 along the last dimension.

    Returns:
        ``[..., D]`` midpoints. A denominator smaller in magnitude than ``MIN_DENOM`` is held at
        ``±MIN_DENOM``, so all-zero weights (an empty neighbourhood, a fully masked attention row) give the
        origin with finite gradients. For ``k > 0`` a negative denominator selects the antipode (see
        :func:`gyro_midpoint`).
    """
    kt = as_curvature(k, numerator)
    tiny = min_denom(denominator.dtype)
    sign = torch.where(denominator < 0, -1.0, 1.0).to(denominator.dtype)
    safe = torch.where(denominator.abs() < tiny, sign * tiny, denominator)
    midpoint = mobius_scalar_mul(0.5, numerator / safe, k=kt)
    beyond_equator = (kt > 0) & (denominator < 0)
    m2 = (midpoint * midpoint).sum(-1, keepdim=True).clamp_min(tiny)
    antipode = -midpoint / (torch.where(beyond_equator, kt, torch.ones_like(kt)) * m2)
    return torch.where(beyond_equator, antipode, midpoint)


def gyro_midpoint(weights: torch.Tensor, values: torch.Tensor, *, k: CurvatureLike) -> torch.Tensor:
    r"""Weighted gyro-midpoints of ``values`` for every row of ``weights``.

    Args:
        weights: ``[..., N, M]`` non-negative weights (rows need not sum to 1; only ratios matter).
        values: ``[..., M, D]`` points on the manifold of curvature ``k``.
        k: curvature, a float or a tensor broadcastable to ``[..., 1, 1]`` (scalar, per batch/head).

    Returns:
        ``[..., N, D]`` midpoints. Identities: the midpoint of identical points is that point; at ``k = 0``
        it is the weighted mean ``W @ Y / W.sum(-1)``; one-hot weights select a point; an all-zero row of
        weights gives the origin.

    For ``k > 0`` the formula determines the midpoint only up to its antipode: the two sums are the
    components of the weighted mean of the points embedded in :math:`\mathbb{R}^{d+1}` (``lambda - 1`` is
    the cosine of a point's angle from the origin, ``lambda * y`` its sine part), and ``1/2 ⊗`` halves an
    angle in ``(-pi/2, pi/2)``. Where the denominator is negative the mean lies beyond the equator, so the
    antipode ``-m / (k ||m||^2)`` is returned: the point of the sphere nearest to the embedded weighted mean
    (geoopt's ``weighted_midpoint`` instead compares summed distances, an extra O(NM) pass).

    The sums are :func:`midpoint_summands` contracted with ``weights``; graph layers form the same sums
    with scatter additions over edges and finish with the shared :func:`midpoint_from_sums`.
    """
    if weights.shape[-1] != values.shape[-2]:
        raise ValueError(
            f"gyro_midpoint: weights [..., N, M] and values [..., M, D] need the same M, "
            f"got weights {tuple(weights.shape)} and values {tuple(values.shape)}"
        )
    kt = as_curvature(k, values)
    scaled, lam_minus_one = midpoint_summands(values, k=kt)  # [..., M, D], [..., M, 1]
    return midpoint_from_sums(weights @ scaled, weights @ lam_minus_one, k=kt)
