r"""Attention on the κ-stereographic manifold: the public op and its torch reference (no Triton kernel yet).

.. math::
    s_{ij} = -\beta_h\, d_{\kappa_h}(q_i, k_j)^2 - \gamma_h \ \text{(or a tangent dot product)},\qquad
    o_i = \operatorname{midpoint}_{\kappa_h}\bigl(\{v_j\}, \operatorname{softmax}_j(s_{ij})\bigr)
    \ \text{(or a tangent mean)}.

See :mod:`geoattn.kernels.manifold_attention.reference` for the full specification. The op lives in a
kernel folder so that a fused Triton kernel (a ``kernel.py`` beside the reference) drops in without changing
callers; until it exists ``backend="auto"`` runs the reference on every device and ``backend="triton"``
raises ``NotImplementedError``.
"""

from __future__ import annotations

from typing import get_args

import torch

from geoattn.kernels.backend import Backend, resolve_backend, triton_implemented
from geoattn.manifolds.stereographic import CurvatureLike, as_curvature

from .reference import Aggregation, Score, manifold_attention_reference

__all__ = [
    "TRITON_IMPLEMENTED",
    "Aggregation",
    "Score",
    "manifold_attention",
    "manifold_attention_reference",
]

_OP = "manifold_attention"
_SCORES: tuple[str, ...] = get_args(Score)
_AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)

# Whether this folder has a Triton kernel (a kernel.py); `geoattn info` reports the same per kernel.
TRITON_IMPLEMENTED: bool = triton_implemented(_OP)


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
        backend: ``"auto"`` (the torch reference until a Triton kernel exists), ``"torch"``, or
            ``"triton"`` (raises ``NotImplementedError`` for now). Default ``"auto"``.

    Returns:
        ``(out [B, H, N, Dv], attn [B, H, N, M] or None)``; a fully masked row gives the origin (zeros) and
        all-zero weights. Details in :func:`manifold_attention_reference`.
    """
    _check_inputs(q, k, v, curvature, beta, gamma, score, aggregation, key_padding_mask, attn_mask, dropout_p)
    # Validates `backend`; while TRITON_IMPLEMENTED is False it resolves to "torch" or raises for "triton".
    resolve_backend(backend, q, k, v, op=_OP, implemented=TRITON_IMPLEMENTED)
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
