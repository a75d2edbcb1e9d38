r"""Pairwise κ-stereographic distance matrices: a Triton matmul-plus-epilogue kernel and its torch reference.

.. math::
    u_{ij} = \frac{\|x_i\|^2 + \|y_j\|^2 - 2\langle x_i, y_j\rangle}
    {1 + 2k_i\langle x_i, y_j\rangle + k_i^2\|x_i\|^2\|y_j\|^2},\qquad
    d_{ij} = 2\,\sqrt{u_{ij}}\,A(k_i u_{ij}),

with :math:`A(w) = \arctan\sqrt{w}/\sqrt{w}` (``w > 0``), :math:`\operatorname{artanh}\sqrt{-w}/\sqrt{-w}`
(``w < 0``), :math:`A(0) = 1` (a Taylor series near 0, so values and gradients are smooth through ``k = 0``).
With ``y_tangent=True`` the rows of ``y`` are tangent vectors :math:`v_j` at the origin, mapped onto each
row's own manifold first: :math:`y^{(i)}_j = v_j\,T(k_i\|v_j\|^2)`, :math:`T(w) = \tan\sqrt{w}/\sqrt{w}`.
No ``[..., N, M, D]`` intermediate is formed by either backend.
"""

from __future__ import annotations

import torch

from ...manifolds.distance import check_pairwise_inputs
from ...manifolds.stereographic import CurvatureLike
from ..backend import Backend, resolve_backend, triton_implemented
from .reference import pairwise_dist_reference, pairwise_sqdist_reference

__all__ = [
    "TRITON_IMPLEMENTED",
    "pairwise_dist",
    "pairwise_dist_reference",
    "pairwise_sqdist",
    "pairwise_sqdist_reference",
]

_OP = "pairwise_dist"
# Whether this folder has a Triton kernel (a kernel.py); `geoattn info` reports the same per kernel.
TRITON_IMPLEMENTED: bool = triton_implemented(_OP)
# Dtypes the Triton kernel computes (float32 accumulation and epilogue); others use the torch reference.
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def pairwise_dist(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    k: CurvatureLike,
    squared: bool = False,
    y_tangent: bool = False,
    backend: Backend = "auto",
) -> torch.Tensor:
    r"""Geodesic distances (or squared distances) between every row of ``x`` and every row of ``y``.

    Args:
        x: points ``[..., N, D]`` on the κ-stereographic manifold of curvature ``k``.
        y: points ``[..., M, D]`` (batch dimensions broadcast against ``x``'s; a ``y`` without batch
            dimensions is shared by the whole batch without being copied), or tangent vectors at the
            origin when ``y_tangent=True``.
        k: curvature: a float, or a tensor broadcastable to ``[..., N, 1]`` (a scalar, one value per
            batch/head, or one per row of ``x``); differentiable.
        squared: return :math:`d^2`, smooth everywhere (default ``False``: :math:`d`, whose gradient is 0
            where :math:`d^2 \le` ``MIN_NORM**2``, e.g. at ``x_i = y_j`` when the Gram cancellation is exact).
        y_tangent: map ``y`` onto each row's manifold with :math:`\exp_0^{k_i}` first (default ``False``).
        backend: ``"auto"`` (Triton for CUDA tensors, the torch reference otherwise), ``"torch"`` or
            ``"triton"`` (CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``). Default ``"auto"``.

    Returns:
        ``[..., N, M]`` in the dtype of ``x``, batch dimensions broadcast.

    Notes:
        The Triton kernel takes float32, float16 and bfloat16 inputs and computes in float32 (float32 Gram
        products without TF32), with the clamps of the input dtype (:mod:`geoattn.manifolds.numerics`).
        **float64 inputs always use the torch reference**, also with ``backend="triton"``. The backward
        pass keeps one float32 ``[..., N, M]`` buffer and reduces row/column sums with atomics, so kernel
        gradients are not bitwise deterministic. ``y`` broadcast along only some batch dimensions is
        expanded (copied) to the full batch.
    """
    kt = check_pairwise_inputs(x, y, k)
    for name, flag in (("squared", squared), ("y_tangent", y_tangent)):
        if not isinstance(flag, bool):
            raise TypeError(f"{_OP}: {name} must be a bool, got {flag!r}")
    if x.device != y.device:
        raise ValueError(f"{_OP}: x and y must be on the same device, got {x.device} and {y.device}")
    which = resolve_backend(backend, x, y, op=_OP, implemented=TRITON_IMPLEMENTED)
    if which == "torch" or x.dtype not in _KERNEL_DTYPES:
        reference = pairwise_sqdist_reference if squared else pairwise_dist_reference
        return reference(x, y, k=kt, y_tangent=y_tangent)
    from .kernel import pairwise_dist_triton  # triton is imported only when the kernel runs

    return pairwise_dist_triton(x, y, kt, squared=squared, y_tangent=y_tangent)


def pairwise_sqdist(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    k: CurvatureLike,
    y_tangent: bool = False,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Squared distances ``[..., N, M]``: :func:`pairwise_dist` with ``squared=True`` (same arguments)."""
    return pairwise_dist(x, y, k=k, squared=True, y_tangent=y_tangent, backend=backend)
