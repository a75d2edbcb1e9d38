r"""Pairwise κ-stereographic distances from one matrix product plus an elementwise epilogue.

For ``x`` of shape ``[..., N, D]`` and ``y`` of shape ``[..., M, D]`` the distance matrix needs only the Gram
matrix :math:`G = x y^\top` and the squared norms (see :func:`~geoattn.manifolds.stereographic.gyro_sqnorm_diff`):

.. math::
    u_{ij} = \frac{\|x_i\|^2 + \|y_j\|^2 - 2G_{ij}}{1 + 2k_iG_{ij} + k_i^2\|x_i\|^2\|y_j\|^2},
    \qquad d_{ij}^2 = 4\,u_{ij}\,A(k_i u_{ij})^2,

so no ``[..., N, M, D]`` intermediate is formed. This is the specification the Triton kernel
(``geoattn.kernels.pairwise_dist``) is tested against.

Precision: the numerator ``||x||^2 + ||y||^2 - 2G`` cancels for nearby points (as in ``torch.cdist``'s
matrix-product path), so ``d(x, x)`` is ``O(sqrt(eps))`` rather than exactly 0: about 1e-3 relative to
``||x||`` in float32 and 1e-8 in float64.
"""

from __future__ import annotations

import torch

from .stereographic import (
    CurvatureLike,
    as_curvature,
    gyro_sqnorm_diff,
    sqdist_from_gyro_sqnorm,
    sqrt_guarded,
    tan_ratio,
)

__all__ = ["check_pairwise_inputs", "pairwise_dist", "pairwise_sqdist"]


def check_pairwise_inputs(x: torch.Tensor, y: torch.Tensor, k: CurvatureLike) -> torch.Tensor:
    """Validate the arguments of :func:`pairwise_dist` and return ``k`` as a tensor like ``x``.

    Raises ``ValueError``/``TypeError`` naming the argument, its value and what is accepted.
    """
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"pairwise_dist: {name} must be a tensor, got {type(t).__name__}")
        if t.dim() < 2:
            raise ValueError(f"pairwise_dist: {name} must have shape [..., n, D], got {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"pairwise_dist: {name} must be floating point, got {t.dtype}")
    if x.dtype != y.dtype:
        raise TypeError(f"pairwise_dist: x and y must share a dtype, got {x.dtype} and {y.dtype}")
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"pairwise_dist: x [..., N, D] and y [..., M, D] need the same D, got {x.shape[-1]} and {y.shape[-1]}"
        )
    kt = as_curvature(k, x)
    batch = torch.broadcast_shapes(x.shape[:-2], y.shape[:-2])
    target = (*batch, x.shape[-2], 1)
    try:
        if kt.dim() > 0 and kt.shape[-1] != 1:
            raise RuntimeError
        torch.broadcast_shapes(kt.shape, target)
    except RuntimeError:
        raise ValueError(
            f"pairwise_dist: k of shape {tuple(kt.shape)} must broadcast to [..., N, 1] = {target} "
            "(a scalar, one value per batch/head, or one per row of x)"
        ) from None
    return kt


def pairwise_sqdist(
    x: torch.Tensor, y: torch.Tensor, *, k: CurvatureLike, y_tangent: bool = False
) -> torch.Tensor:
    r"""Squared geodesic distances between every row of ``x`` and every row of ``y``.

    Args:
        x: points ``[..., N, D]`` on the manifold of curvature ``k``.
        y: points ``[..., M, D]`` (batch dimensions broadcast against ``x``'s), or, with ``y_tangent=True``,
            tangent vectors at the origin that are mapped onto each *row's* manifold:
            :math:`y^{(i)}_j = \exp_0^{k_i}(y_j) = y_j\,T(k_i\|y_j\|^2)` (what RotH/AttH/MuRP-style KG scoring
            needs when every query has its own curvature), inside the epilogue.
        k: curvature: a float, or a tensor broadcastable to ``[..., N, 1]`` (scalar, per batch/head, or per
            row of ``x``).
        y_tangent: treat ``y`` as tangent vectors at the origin (default ``False``).

    Returns:
        ``[..., N, M]`` squared distances :math:`d_k(x_i, y_j)^2`; smooth, including at ``x_i = y_j``.
    """
    kt = check_pairwise_inputs(x, y, k)
    gram = x @ y.transpose(-1, -2)
    x2 = (x * x).sum(-1, keepdim=True)
    y2 = (y * y).sum(-1).unsqueeze(-2)
    if y_tangent:
        scale = tan_ratio(kt * y2)
        gram = gram * scale
        y2 = y2 * scale * scale
    return sqdist_from_gyro_sqnorm(gyro_sqnorm_diff(gram, x2, y2, kt), kt)


def pairwise_dist(
    x: torch.Tensor, y: torch.Tensor, *, k: CurvatureLike, y_tangent: bool = False
) -> torch.Tensor:
    """Geodesic distances ``[..., N, M]``: the square root of :func:`pairwise_sqdist` (same arguments).

    Agrees with geoopt's broadcast ``dist(x[..., :, None, :], y[..., None, :, :], k=k)``; the gradient at
    coincident points is 0.
    """
    return sqrt_guarded(pairwise_sqdist(x, y, k=k, y_tangent=y_tangent))
