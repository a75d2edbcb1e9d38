r"""Attention on the κ-stereographic manifold: the public op, its torch reference and a fused Triton kernel.

.. math::
    s_{ij} = -\beta_h\, d_{\kappa_h}(q_i, k_j)^2 - \gamma_h \ \text{(or a tangent dot product)},\qquad
    o_i = \operatorname{midpoint}_{\kappa_h}\bigl(\{v_j\}, \operatorname{softmax}_j(s_{ij})\bigr)
    \ \text{(or a tangent mean)}.

See :mod:`geoattn.kernels.manifold_attention.reference` for the full specification and
:mod:`geoattn.kernels.manifold_attention.kernel` for the flash-style kernels (no ``[B, H, N, M]`` tensor,
memory linear in ``N``). ``backend="auto"`` runs the kernel for CUDA tensors and the reference otherwise.
"""

from __future__ import annotations

from typing import get_args

import torch

from geoattn.kernels.backend import Backend, resolve_backend, triton_implemented
from geoattn.manifolds.stereographic import CurvatureLike, as_curvature

from .reference import (
    Aggregation,
    Score,
    branch_points,
    cat_attention_reference,
    manifold_attention_reference,
    mix_branches,
)

__all__ = [
    "KERNEL_MAX_HEAD_DIM",
    "TRITON_IMPLEMENTED",
    "Aggregation",
    "Score",
    "cat_attention",
    "cat_attention_reference",
    "manifold_attention",
    "manifold_attention_reference",
]

_OP = "manifold_attention"
_SCORES: tuple[str, ...] = get_args(Score)
_AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)

# Whether this folder has a Triton kernel (a kernel.py); `geoattn info` reports the same per kernel.
TRITON_IMPLEMENTED: bool = triton_implemented(_OP)
# What the kernel computes (in float32); other dtypes, and head dims above the largest, use the reference.
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
KERNEL_MAX_HEAD_DIM = 128
_MAX_GRID_Y = 65535  # B * H programs along the grid's second axis


def manifold_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    curvature: CurvatureLike,
    beta: CurvatureLike,
    gamma: CurvatureLike,
    score: Score = "distance",
    aggregation: Aggregation = "midpoint",
    key_padding_mask: torch.Tensor | None = None,
    attn_mask: torch.Tensor | None = None,
    causal: bool = False,
    dropout_p: float = 0.0,
    need_weights: bool = False,
    backend: Backend = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""Multi-head attention over points of the κ-stereographic manifold, one curvature per head.

    Args:
        q: ``[B, H, N, Dh]`` query **points**, already on head ``h``'s manifold (map tangent features with
            ``geoattn.manifolds.expmap0`` and, for ``k < 0``, ``project`` first).
        k: ``[B, H, M, Dh]`` key points.
        v: ``[B, H, M, Dv]`` value points.
        curvature: signed curvature per head: a float or a tensor of shape ``()``, ``[1]`` or ``[H]``;
            any sign, 0 included, differentiable.
        beta: temperature :math:`\beta_h > 0` (same shapes as ``curvature``).
        gamma: score bias :math:`\gamma_h` (same shapes; cancels in the softmax).
        score: ``"distance"`` or ``"tangent_dot"``. Default ``"distance"``.
        aggregation: ``"midpoint"`` or ``"tangent"``. Default ``"midpoint"``.
        key_padding_mask: ``[B, M]`` bool, ``True`` = padding. Default ``None``.
        attn_mask: bool (``True`` = not allowed) or float additive mask broadcastable to ``[B, H, N, M]``.
            Default ``None``.
        causal: mask keys ``j > i``. Default ``False``.
        dropout_p: attention-weight dropout probability in ``[0, 1)``. Default ``0.0``.
        need_weights: also return the ``[B, H, N, M]`` attention weights. Default ``False``.
        backend: ``"auto"`` (Triton for CUDA tensors, the torch reference otherwise), ``"torch"``, or
            ``"triton"`` (CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``). Default ``"auto"``.

    Returns:
        ``(out [B, H, N, Dv], attn [B, H, N, M] or None)``; a fully masked row gives the origin (zeros) and
        all-zero weights. Details in :func:`manifold_attention_reference`.

    Notes:
        The Triton kernel covers both scores and both aggregations, per-head curvature of any sign, the
        key-padding and causal masks, any ``N``/``M`` and head dims up to ``KERNEL_MAX_HEAD_DIM`` (128), for
        float32, float16 and bfloat16 inputs (float32 arithmetic, float32 guards). These calls run the
        torch reference instead, also with ``backend="triton"``: an ``attn_mask``, ``dropout_p > 0``,
        ``need_weights=True`` (the kernel never forms the ``[B, H, N, M]`` weights), float64 inputs, head
        dims above 128, and ``B * H > 65535``. The gradient of ``gamma`` is 0 (it cancels in the softmax).
        The kernel's backward (one kernel over key blocks, one over query blocks) uses no atomics, so its
        gradients are deterministic.
    """
    _check_inputs(q, k, v, curvature, beta, gamma, score, aggregation, key_padding_mask, attn_mask, dropout_p)
    which = resolve_backend(backend, q, k, v, op=_OP, implemented=TRITON_IMPLEMENTED)
    kernel_ok = (
        q.dtype in _KERNEL_DTYPES
        and attn_mask is None
        and dropout_p == 0.0
        and not need_weights
        and max(q.shape[-1], v.shape[-1]) <= KERNEL_MAX_HEAD_DIM
        and q.shape[0] * q.shape[1] <= _MAX_GRID_Y
    )
    if which == "triton" and kernel_ok:
        from .kernel import manifold_attention_triton  # triton is imported only when the kernel runs

        out = manifold_attention_triton(
            q,
            k,
            v,
            curvature=curvature,
            beta=beta,
            gamma=gamma,
            distance=score == "distance",
            midpoint=aggregation == "midpoint",
            key_padding_mask=key_padding_mask,
            causal=causal,
        )
        return out, None
    return manifold_attention_reference(
        q,
        k,
        v,
        curvature=curvature,
        beta=beta,
        gamma=gamma,
        score=score,
        aggregation=aggregation,
        key_padding_mask=key_padding_mask,
        attn_mask=attn_mask,
        causal=causal,
        dropout_p=dropout_p,
        need_weights=need_weights,
    )


def cat_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    curvature: torch.Tensor,
    beta: torch.Tensor,
    gamma: torch.Tensor,
    alpha: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    causal: bool = False,
    one_pass: bool = False,
    backend: Backend = "auto",
) -> torch.Tensor:
    r"""Curvature-adaptive attention over shared tangent heads: ``G`` geometries mixed per query.

    The attention core of :class:`geoattn.nn.CurvatureAdaptiveAttention` with shared projections, distance
    scores and midpoint aggregation; the math is :func:`cat_attention_reference`.

    Args:
        q, k, v: tangent heads ``[B, H, N, D]``, ``[B, H, M, D]``, ``[B, H, M, Dv]``.
        curvature, beta, gamma: ``[G*H]`` tensors, one value per branch and head (branch-major).
        alpha: ``[B, N, G]`` routing weights.
        key_padding_mask: ``[B, M]`` bool, ``True`` = padding. Default ``None``.
        causal: mask keys ``j > i``. Default ``False``.
        one_pass: allow the one-pass kernel (below). Default ``False``: on an H200 it measured no faster
            than the one fused call over ``3H`` heads (bf16, B=4, H=16, D=64: 3.5 vs 3.7 ms at N=1024, 23.5
            vs 10.3 ms at N=4096; ``benchmarks/manifold_attention.py``, benchmarks/RESULTS.md).
        backend: as :func:`manifold_attention`. Default ``"auto"``.

    Returns:
        ``[B, H, N, Dv]``: :math:`\sum_b \alpha_{i,b} \log_0^{\kappa_b}(o^b_i)`.

    With ``one_pass=True``, the Triton backend, ``G = 3``, a kernel dtype, head dims up to 128 and **no gradient required**,
    one kernel computes the three branches from one sweep over ``K``/``V`` (one ``Q K^T`` per tile shared by
    the branches, whose points are row rescalings of the shared tangent heads). Otherwise (training, other
    ``G``) the branches run as one :func:`manifold_attention` call over ``G*H`` heads (the fused kernel on
    CUDA, with its backward), then are mapped back and mixed in torch.
    """
    branches = alpha.shape[-1]
    heads = q.shape[1]
    if alpha.dim() != 3 or alpha.shape[:2] != (q.shape[0], q.shape[2]):
        raise ValueError(
            f"cat_attention: alpha must have shape [B, N, G] with B, N of q {tuple(q.shape)}, got "
            f"{tuple(alpha.shape)}"
        )
    for name, t in (("curvature", curvature), ("beta", beta), ("gamma", gamma)):
        if not isinstance(t, torch.Tensor) or t.numel() != branches * heads:
            shown = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(
                f"cat_attention: {name} must be a tensor of G*H = {branches * heads} values, got {shown}"
            )
    which = resolve_backend(backend, q, k, v, op=_OP, implemented=TRITON_IMPLEMENTED)
    needs_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (q, k, v, curvature, beta, gamma, alpha)
    )
    if (
        one_pass
        and which == "triton"
        and branches == 3
        and not needs_grad
        and q.dtype in _KERNEL_DTYPES
        and max(q.shape[-1], v.shape[-1]) <= KERNEL_MAX_HEAD_DIM
        and q.shape[0] * heads <= _MAX_GRID_Y
    ):
        from .kernel import cat_attention_triton

        _check_inputs(q, k, v, 0.0, 0.0, 0.0, "distance", "midpoint", key_padding_mask, None, 0.0)
        return cat_attention_triton(
            q,
            k,
            v,
            curvature=curvature,
            beta=beta,
            alpha=alpha,
            key_padding_mask=key_padding_mask,
            causal=causal,
        )
    kappa = curvature.reshape(-1).to(q.dtype)
    points = [branch_points(t, kappa, branches) for t in (q, k, v)]
    out, _ = manifold_attention(
        *points,
        curvature=kappa,
        beta=beta.reshape(-1),
        gamma=gamma.reshape(-1),
        key_padding_mask=key_padding_mask,
        causal=causal,
        backend=backend,
    )
    return mix_branches(out, kappa, alpha)


def _check_inputs(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    curvature: CurvatureLike,
    beta: CurvatureLike,
    gamma: CurvatureLike,
    score: str,
    aggregation: str,
    key_padding_mask: torch.Tensor | None,
    attn_mask: torch.Tensor | None,
    dropout_p: float,
) -> None:
    """Raise ``ValueError``/``TypeError`` naming the argument, its value and what is accepted."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4 or not t.is_floating_point():
            shown = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"{_OP}: {name} must be a floating tensor [B, H, n, D], got {shown}")
    if not q.dtype == k.dtype == v.dtype or not q.device == k.device == v.device:
        raise TypeError(
            f"{_OP}: q, k, v must share dtype and device, got {q.dtype}/{k.dtype}/{v.dtype} "
            f"on {q.device}/{k.device}/{v.device}"
        )
    batch, heads, _, dim = q.shape
    if k.shape[:2] != (batch, heads) or k.shape[-1] != dim or v.shape[:3] != k.shape[:3]:
        raise ValueError(
            f"{_OP}: expected q [B, H, N, D], k [B, H, M, D], v [B, H, M, Dv]; got q {tuple(q.shape)}, "
            f"k {tuple(k.shape)}, v {tuple(v.shape)}"
        )
    for name, value in (("curvature", curvature), ("beta", beta), ("gamma", gamma)):
        t = as_curvature(value, q)
        if t.dim() > 1 or t.numel() not in (1, heads):
            raise ValueError(
                f"{_OP}: {name} must be a float or a tensor of shape (), [1] or [H] = [{heads}], "
                f"got shape {tuple(t.shape)}"
            )
    if score not in _SCORES:
        raise ValueError(f"{_OP}: score must be one of {_SCORES}, got {score!r}")
    if aggregation not in _AGGREGATIONS:
        raise ValueError(f"{_OP}: aggregation must be one of {_AGGREGATIONS}, got {aggregation!r}")
    m = k.shape[2]
    if key_padding_mask is not None and (
        key_padding_mask.dtype != torch.bool or tuple(key_padding_mask.shape) != (batch, m)
    ):
        raise ValueError(
            f"{_OP}: key_padding_mask must be a bool tensor [B, M] = [{batch}, {m}], got "
            f"{key_padding_mask.dtype} {tuple(key_padding_mask.shape)}"
        )
    if attn_mask is not None:
        target = (batch, heads, q.shape[2], m)
        try:
            if attn_mask.dim() > 4 or torch.broadcast_shapes(attn_mask.shape, target) != target:
                raise RuntimeError
        except RuntimeError:
            raise ValueError(
                f"{_OP}: attn_mask of shape {tuple(attn_mask.shape)} must broadcast to [B, H, N, M] = {target}"
            ) from None
        if attn_mask.dtype != torch.bool and attn_mask.dtype != q.dtype:
            raise TypeError(f"{_OP}: attn_mask must be bool or {q.dtype} (additive), got {attn_mask.dtype}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{_OP}: dropout_p must be in [0, 1), got {dropout_p}")
