r"""Pure-torch specification of attention on the κ-stereographic manifold (the op a fused kernel must match).

For queries :math:`q_i`, keys :math:`k_j` and values :math:`v_j` that are points of the κ-stereographic
manifold of head :math:`h`'s curvature :math:`\kappa_h`:

.. math::
    s_{ij} = -\beta_h\, d_{\kappa_h}(q_i, k_j)^2 - \gamma_h
    \quad\text{or}\quad
    s_{ij} = \beta_h \frac{\langle \log_0(q_i), \log_0(k_j)\rangle}{\sqrt{D_h}} - \gamma_h,

    a_{ij} = \operatorname{softmax}_j\bigl(s_{ij} + \text{masks}\bigr),\qquad
    o_i = \operatorname{midpoint}_{\kappa_h}\bigl(\{v_j\}, \{a_{ij}\}\bigr)
    \quad\text{or}\quad
    o_i = \exp_0\Bigl(\textstyle\sum_j a_{ij} \log_0(v_j)\Bigr).

Distance scores and midpoint aggregation follow Gulcehre et al. 2019, "Hyperbolic Attention Networks"
(arXiv:1805.09786), generalised to any sign of curvature with one curvature per head as in Cho et al. 2023,
"Curve Your Attention: Mixed-Curvature Transformers for Graph Representation Learning" (arXiv:2309.04082).
The gyro-midpoint is :func:`geoattn.manifolds.gyro_midpoint`; distances are
:func:`geoattn.manifolds.pairwise_sqdist` (a Gram matrix plus an epilogue, no ``[N, M, D]`` intermediate).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch.nn import functional as F

from geoattn.manifolds import expmap0, gyro_midpoint, logmap0, pairwise_sqdist, project
from geoattn.manifolds.stereographic import CurvatureLike, as_curvature

__all__ = [
    "Aggregation",
    "Score",
    "branch_points",
    "cat_attention_reference",
    "manifold_attention_reference",
    "mix_branches",
]

Score = Literal["distance", "tangent_dot"]
Aggregation = Literal["midpoint", "tangent"]


def _per_head(value: CurvatureLike, like: torch.Tensor) -> torch.Tensor:
    """A scalar or ``[H]`` value as ``[H, 1, 1]`` (or ``[1, 1, 1]``), broadcasting against ``[B, H, N, *]``."""
    return as_curvature(value, like).reshape(-1, 1, 1)


def manifold_attention_reference(
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
) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""Multi-head attention whose queries, keys and values are points on the κ-stereographic manifold.

    Args:
        q: ``[B, H, N, Dh]`` query **points** on head ``h``'s manifold (already mapped there, e.g. by
            ``expmap0``; for ``k < 0`` strictly inside the ball of radius :math:`1/\sqrt{-k}`).
        k: ``[B, H, M, Dh]`` key points, same manifolds.
        v: ``[B, H, M, Dv]`` value points, same manifolds.
        curvature: the signed curvature :math:`\kappa_h`, a float or a tensor of shape ``()``, ``[1]`` or
            ``[H]`` (one per head, any sign, 0 included); differentiable.
        beta: the temperature :math:`\beta_h > 0`, same shapes as ``curvature``.
        gamma: the bias :math:`\gamma_h`, same shapes. A per-row constant shift, so it cancels in the
            softmax (its gradient is 0); it is kept to state Gulcehre et al.'s score exactly.
        score: ``"distance"`` (:math:`-\beta d^2 - \gamma`, default) or ``"tangent_dot"``
            (:math:`\beta\langle\log_0 q, \log_0 k\rangle/\sqrt{D_h} - \gamma`).
        aggregation: ``"midpoint"`` (weighted gyro-midpoint, default) or ``"tangent"`` (weighted mean of
            :math:`\log_0 v` mapped back with :math:`\exp_0`).
        key_padding_mask: ``[B, M]`` bool, ``True`` marks padding keys that get no attention (default
            ``None``).
        attn_mask: bool (``True`` = not allowed, as in :class:`torch.nn.MultiheadAttention`) or a float mask
            added to the scores, broadcastable to ``[B, H, N, M]`` (e.g. ``[N, M]``). Default ``None``.
        causal: mask keys ``j > i`` (top-left aligned, as ``scaled_dot_product_attention``). Default
            ``False``.
        dropout_p: dropout probability on the attention weights (applied when ``> 0``). Default ``0.0``.
        need_weights: also return the attention weights (before dropout). Default ``False``.

    Returns:
        ``(out, attn)``: ``out`` ``[B, H, N, Dv]`` points on each head's manifold; ``attn`` ``[B, H, N, M]``
        (rows sum to 1) or ``None``. A row whose keys are all masked has all-zero weights and its output is
        the origin (zeros), with finite gradients, instead of NaN.

    At ``k = 0`` the distance score is :math:`-4\beta\|q_i - k_j\|^2 - \gamma` (the κ-stereographic metric at
    ``k = 0`` is 4 times the Euclidean one) and the midpoint is the weighted mean; ``tangent_dot`` with
    ``tangent`` aggregation and :math:`\beta = 1` is ``scaled_dot_product_attention``.
    """
    kappa = _per_head(curvature, q)
    b = _per_head(beta, q)
    g = _per_head(gamma, q)
    if score == "distance":
        scores = -b * pairwise_sqdist(q, k, k=kappa) - g
    else:
        uq, uk = logmap0(q, k=kappa), logmap0(k, k=kappa)
        scores = b * (uq @ uk.transpose(-1, -2)) / math.sqrt(q.shape[-1]) - g
    weights = _masked_softmax(scores, key_padding_mask, attn_mask, causal)
    attn = weights if need_weights else None
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p, training=True)
    if aggregation == "midpoint":
        out = gyro_midpoint(weights, v, k=kappa)
    else:
        out = expmap0(weights @ logmap0(v, k=kappa), k=kappa)
    return out, attn


def _masked_softmax(
    scores: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    attn_mask: torch.Tensor | None,
    causal: bool,
) -> torch.Tensor:
    """Softmax over the last dimension after masking; fully masked rows become all-zero (not NaN)."""
    neg_inf = float("-inf")
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(attn_mask, neg_inf)
        else:
            scores = scores + attn_mask
    if key_padding_mask is not None:
        scores = scores.masked_fill(key_padding_mask[:, None, None, :], neg_inf)
    if causal:
        n, m = scores.shape[-2:]
        future = torch.ones(n, m, dtype=torch.bool, device=scores.device).triu(1)
        scores = scores.masked_fill(future, neg_inf)
    if attn_mask is None and key_padding_mask is None and not causal:
        return torch.softmax(scores, dim=-1)
    empty = scores.amax(dim=-1, keepdim=True) == neg_inf  # [..., N, 1]: every key masked
    return torch.softmax(scores.masked_fill(empty, 0.0), dim=-1).masked_fill(empty, 0.0)


def branch_points(u: torch.Tensor, curvature: torch.Tensor, branches: int) -> torch.Tensor:
    r"""Tangent heads ``u [B, H, n, D]`` shared by ``G = branches`` geometries, as points of every branch:
    ``[B, G*H, n, D]`` (branch-major), :math:`\operatorname{proj}(\exp_0^{\kappa}(u))` with ``curvature``
    ``[G*H]`` (as :class:`geoattn.nn.HeadGeometry` maps the shared projections of CAT)."""
    k4 = curvature.view(-1, 1, 1)
    return project(expmap0(u.repeat(1, branches, 1, 1), k=k4), k=k4)


def mix_branches(out: torch.Tensor, curvature: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    r"""Branch outputs ``out [B, G*H, N, D]`` (points) mixed in the tangent space with routing weights
    ``alpha [B, N, G]``: :math:`\sum_b \alpha_{i,b} \log_0^{\kappa_b}(o^b_i)`, ``[B, H, N, D]``."""
    branches = alpha.shape[-1]
    tangent = logmap0(out, k=curvature.view(-1, 1, 1)).unflatten(1, (branches, -1))  # [B, G, H, N, D]
    return (tangent * alpha.transpose(1, 2)[:, :, None, :, None].to(tangent.dtype)).sum(1)


def cat_attention_reference(
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
) -> torch.Tensor:
    r"""Curvature-adaptive attention with shared projections: ``G`` geometries over the same tangent heads.

    .. math::
        y_i = \sum_b \alpha_{i,b}\,\log_0^{\kappa_b}\Bigl(\operatorname{midpoint}_{\kappa_b}\bigl(
        \{v^b_j\}, \operatorname{softmax}_j(-\beta_b\, d_{\kappa_b}(q^b_i, k^b_j)^2 - \gamma_b)\bigr)\Bigr),
        \qquad x^b = \operatorname{proj}(\exp_0^{\kappa_b}(x))

    (the attention core of :class:`geoattn.nn.CurvatureAdaptiveAttention` with ``shared_projections=True``,
    distance scores and midpoint aggregation, before its output projection).

    Args:
        q, k, v: tangent heads ``[B, H, N, D]``, ``[B, H, M, D]``, ``[B, H, M, Dv]``.
        curvature, beta, gamma: ``[G*H]`` per branch and head (branch-major).
        alpha: routing weights ``[B, N, G]``.
        key_padding_mask: ``[B, M]`` bool, ``True`` = padding. Default ``None``.
        causal: mask keys ``j > i``. Default ``False``.

    Returns:
        ``[B, H, N, Dv]`` mixed tangent outputs.
    """
    branches = alpha.shape[-1]
    kappa = as_curvature(curvature, q).reshape(-1)
    points = [branch_points(t, kappa, branches) for t in (q, k, v)]
    out, _ = manifold_attention_reference(
        *points, curvature=kappa, beta=beta, gamma=gamma, key_padding_mask=key_padding_mask, causal=causal
    )
    return mix_branches(out, kappa, alpha)
