# Triton-jitted functions are untyped by nature (their arguments are blocks, pointers or constexprs).
# mypy: disable-error-code="no-untyped-def, untyped-decorator"
r"""Fused manifold attention in Triton: flash-style forward and FlashAttention-2-style backward.

Per head :math:`h` (curvature :math:`\kappa`, temperature :math:`\beta`), with the query tile resident and
key/value tiles streamed, the forward kernel (``_manifold_attention_fwd_kernel``) computes

.. math::
    G &= Q K^\top \ (\texttt{tl.dot}, \text{float32}),\qquad
    u = \frac{\max(a + b - 2G,\ 0)}{\max(1 + 2\kappa G + \kappa^2 ab,\ \text{MIN\_DENOM})},\qquad
    d^2 = 4\,u\,A(\kappa u)^2,\\
    s &= -\beta\,d^2 \ \ (\texttt{DISTANCE})\quad\text{or}\quad s = \beta\,G/\sqrt{D}
    \ \ (\text{tangent dot: } Q, K \text{ are } \log_0 q, \log_0 k),

with :math:`a = \|q_i\|^2`, :math:`b = \|k_j\|^2` and :math:`A` of :mod:`geoattn.kernels.triton_math`
(the bias :math:`\gamma` cancels in the softmax and never enters the kernel). Masked scores are
:math:`-\infty`; an online softmax (base 2, running max :math:`m_i` and sum :math:`l_i`) accumulates

.. math::
    \text{num}_i = \sum_j p_{ij}\,\tilde v_j,\qquad \text{den}_i = \sum_j p_{ij}\,c_j

in the same pass, where for the gyro-midpoint (``MIDPOINT``) :math:`\tilde v_j = \lambda_j v_j`,
:math:`c_j = \lambda_j - 1` (:func:`geoattn.manifolds.midpoint_summands`), and for the tangent mean
:math:`\tilde v_j = \log_0 v_j` (no ``den``). The epilogue divides by :math:`l_i` and finishes in registers:
:func:`geoattn.manifolds.midpoint_from_sums` (``1/2 ⊗ (num/den)``, denominator held at ``±MIN_DENOM``,
antipode for :math:`\kappa > 0` and ``den < 0``) or :math:`\exp_0(\text{num})`. A row with every key
masked has :math:`l_i = 0`, sums 0 and output 0 (the origin), as the reference. The kernel writes the output,
the normalised sums (float32) and the per-row log-sum-exp (base 2; :math:`+\infty` for an empty row, so
that recomputed probabilities are 0).

Backward (recompute, nothing of size ``N x M`` stored): :class:`ManifoldAttentionFunction` first
differentiates the finishing step in torch (``O(N D)``, autograd of the same library function) for
:math:`\bar{\text{num}}_i`, :math:`\bar{\text{den}}_i` and its share of :math:`\bar\kappa`, then
:math:`\Delta_i = \bar{\text{num}}_i\cdot\text{num}_i + \bar{\text{den}}_i\,\text{den}_i`, and one kernel
(``_manifold_attention_bwd_kernel``: one program per key block, looping over query blocks) recomputes
:math:`G, s, p` tile by tile:

.. math::
    \bar p_{ij} = \bar{\text{num}}_i\cdot\tilde v_j + \bar{\text{den}}_i\,c_j,\qquad
    \bar s_{ij} = p_{ij}(\bar p_{ij} - \Delta_i),\qquad \overline{d^2}_{ij} = -\beta\,\bar s_{ij},

then the distance epilogue's backward (the formulas of :mod:`geoattn.kernels.pairwise_dist.kernel`) gives
:math:`\bar G, \bar a, \bar b, \bar\kappa` per element. The program keeps :math:`\bar K = \bar G^\top Q +
2K\,\mathrm{diag}(\sum_i \bar b)`, :math:`\bar{\tilde V} = P^\top \bar{\text{num}}` and
:math:`\bar c = P^\top\bar{\text{den}}` in registers, and adds its share of :math:`\bar Q = \bar G K`
and of the row sums of :math:`\bar a`, :math:`\bar\kappa` and
:math:`\bar\beta = \sum_j \bar s_{ij}\,\partial s_{ij}/\partial\beta` to float32 buffers with atomics
(FlashAttention-2's dQ scheme: the epilogue, the expensive part, is recomputed once instead of twice; the
gradients of q, curvature and beta are therefore not bitwise deterministic). :math:`\bar Q` gets
:math:`2Q\,\mathrm{diag}(\sum_j \bar a)` and the rows are reduced per head in torch. :math:`\bar\gamma = 0`.

Computation is float32 throughout (float32 ``tl.dot`` without TF32; float16/bfloat16 operands of ``tl.dot``
are rounded to the input dtype as in FlashAttention) with the guards of **float32**
(:mod:`geoattn.manifolds.numerics`), also for float16/bfloat16 inputs. The curvature is uniform per program,
so :math:`A` evaluates only the ``atan`` or the ``artanh`` branch (``artan_ratio_of_sign``: one ``rsqrt``
for :math:`\sqrt{|w|}` and its reciprocal, and in compiled kernels the hardware ``log2``).

One-pass CAT (``_cat_attention_fwd_kernel``, forward only): with shared projections the three branches'
points are per-row rescalings of the same tangent heads, :math:`x^b = s^b(x)\,x` (``expmap0`` and
``project`` only rescale), so one Gram tile :math:`G = U_Q U_K^\top` serves all three
(:math:`G^b_{ij} = s^b_{q,i} s^b_{k,j} G_{ij}`, :math:`a^b = (s^b_q)^2\|u_q\|^2`), and one load of
:math:`U_V` serves the three value sums (:math:`\tilde v^b_j = \lambda^b_j s^b_{v,j} u_{v,j}`). Three
online softmaxes run side by side; the epilogue maps each midpoint back with :math:`\log_0^{\kappa_b}` and
mixes with the routing weights. The per-row factors are ``O((N + M) H)`` torch work.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import triton
import triton.language as tl

from ...manifolds import expmap0, logmap0, midpoint_from_sums, midpoint_summands, project
from ...manifolds.numerics import artanh_clamp, min_denom, min_norm
from ...manifolds.stereographic import tan_ratio as tan_ratio_torch
from ..backend import triton_interpreting
from ..triton_math import artan_ratio, artan_ratio_grad, artan_ratio_of_sign, tan_ratio

__all__ = [
    "ManifoldAttentionFunction",
    "cat_attention_triton",
    "manifold_attention_bwd",
    "manifold_attention_fwd",
    "manifold_attention_triton",
]

_LOG2E: tl.constexpr = tl.constexpr(1.4426950408889634)

# ---------------------------------------------------------------------------------------------------------
# Shared pieces of the three kernels
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _dot(a, b, acc, INTERPRET: tl.constexpr, DOT_DTYPE: tl.constexpr):
    """``acc + a @ b`` in float32: operands rounded to the input dtype (``DOT_DTYPE``), or upcast to
    float32 under the interpreter (``INTERPRET``, whose ``dot`` multiplies the raw storage of bfloat16)."""
    if INTERPRET:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    return tl.dot(a.to(DOT_DTYPE), b.to(DOT_DTYPE), acc, input_precision="ieee")


@triton.jit
def _load_tile(ptr, offs_r, mask_r, n_cols, BLOCK_C: tl.constexpr):
    """Rows ``offs_r`` of a contiguous ``[rows, n_cols]`` matrix: ``[len(offs_r), BLOCK_C]``, zero-padded."""
    offs_c = tl.arange(0, BLOCK_C)
    return tl.load(
        ptr + offs_r[:, None] * n_cols + offs_c[None, :],
        mask=mask_r[:, None] & (offs_c[None, :] < n_cols),
        other=0.0,
    )


@triton.jit
def _store_tile(ptr, value, offs_r, mask_r, n_cols, BLOCK_C: tl.constexpr):
    offs_c = tl.arange(0, BLOCK_C)
    tl.store(
        ptr + offs_r[:, None] * n_cols + offs_c[None, :],
        value.to(ptr.dtype.element_ty),
        mask=mask_r[:, None] & (offs_c[None, :] < n_cols),
    )


@triton.jit
def _allowed(offs_n, offs_m, mask_m, kpm_ptr, HAS_KPM: tl.constexpr, CAUSAL: tl.constexpr):
    """``[BLOCK_N, BLOCK_M]`` bool: key ``j`` exists, is not padding and (causal) ``j <= i``."""
    ok = mask_m[None, :] & (offs_n[:, None] >= 0)
    if HAS_KPM:
        pad = tl.load(kpm_ptr + offs_m, mask=mask_m, other=1)
        ok = ok & (pad == 0)[None, :]
    if CAUSAL:
        ok = ok & (offs_m[None, :] <= offs_n[:, None])
    return ok


@triton.jit
def _distance(g, a, b, kk, min_den, artanh_bound, INTERPRET: tl.constexpr):
    """The distance epilogue on a Gram tile ``g [BLOCK_N, BLOCK_M]`` with ``a [BLOCK_N, 1]``,
    ``b [1, BLOCK_M]`` and the head's curvature ``kk``: ``(d2, u, w, aw, den, num_raw, den_raw)``."""
    num_raw = a + b - 2.0 * g
    den_raw = 1.0 + 2.0 * kk * g + kk * kk * a * b
    den = tl.maximum(den_raw, min_den)
    u = tl.maximum(num_raw, 0.0) / den
    w = kk * u
    aw = artan_ratio_of_sign(w, kk, artanh_bound, FAST_LOG=not INTERPRET)
    return 4.0 * u * aw * aw, u, w, aw, den, num_raw, den_raw


@triton.jit
def _scores(
    g, a, b, kk, bb, sm_scale, min_den, artanh_bound, DISTANCE: tl.constexpr, INTERPRET: tl.constexpr
):
    """Scores in natural units and ``ds/dbeta``: ``-beta d^2`` and ``-d^2``, or ``beta G/sqrt(D)`` and
    ``G/sqrt(D)`` (tangent dot)."""
    if DISTANCE:
        d2, _, _, _, _, _, _ = _distance(g, a, b, kk, min_den, artanh_bound, INTERPRET)
        return -bb * d2, -d2
    return bb * sm_scale * g, sm_scale * g


@triton.jit
def _distance_bwd(g, a, b, kk, gf, min_den, artanh_bound, INTERPRET: tl.constexpr):
    """Backward of ``d^2`` given ``gf = dL/d(d^2)``: ``(dL/dG, dL/da, dL/db, dL/dkappa)`` per element
    (the reference's clamps pass no gradient where they hold)."""
    _, u, w, aw, den, num_raw, den_raw = _distance(g, a, b, kk, min_den, artanh_bound, INTERPRET)
    ap = artan_ratio_grad(w, aw, artanh_bound)
    gu = gf * (4.0 * aw * (aw + 2.0 * w * ap))  # dL/du
    gn = tl.where(num_raw >= 0.0, 1.0 / den, 0.0)  # du/dnum
    gd = tl.where(den_raw >= min_den, -u / den, 0.0)  # du/dden
    dg = gu * (2.0 * kk * gd - 2.0 * gn)
    da = gu * (gn + kk * kk * b * gd)
    db = gu * (gn + kk * kk * a * gd)
    dk = gu * (2.0 * g + 2.0 * kk * a * b) * gd + gf * (8.0 * u * u * aw * ap)
    return dg, da, db, dk


@triton.jit
def _online_softmax(s, m_i, l_i):
    """One tile of the online softmax over scores ``s [BLOCK_N, BLOCK_M]`` in log2 units (-inf = masked):
    ``(p, alpha, m_new, l_new)`` with ``p = 2^(s - m_new)`` and ``alpha`` the rescaling of earlier sums."""
    m_new = tl.maximum(m_i, tl.max(s, axis=1))
    m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # rows with no key yet: nothing to rescale
    alpha = tl.exp2(m_i - m_safe)
    p = tl.exp2(s - m_safe[:, None])  # [BLOCK_N, BLOCK_M]
    return p, alpha, m_new, l_i * alpha + tl.sum(p, axis=1)


@triton.jit
def _midpoint_from_sums(num, den, kk, min_den, artanh_bound):
    """:func:`geoattn.manifolds.midpoint_from_sums` on ``num [BLOCK_N, BLOCK_DV]``, ``den [BLOCK_N]``:
    ``1/2 ⊗ (num / den)``, den held at ``±MIN_DENOM``, the antipode for ``k > 0`` beyond the equator."""
    safe = tl.where(tl.abs(den) < min_den, tl.where(den < 0, -min_den, min_den), den)
    x = num / safe[:, None]
    x2 = tl.sum(x * x, axis=1)
    half_a = 0.5 * artan_ratio(kk * x2, artanh_bound)
    mid = (half_a * tan_ratio(kk * half_a * half_a * x2))[:, None] * x
    beyond = (den < 0) & (tl.zeros_like(den) + kk > 0)  # [BLOCK_N]
    m2 = tl.maximum(tl.sum(mid * mid, axis=1), min_den)
    return tl.where(beyond[:, None], -mid / tl.where(beyond, kk * m2, 1.0)[:, None], mid)


@triton.jit
def _head(H, kappa_ptr, beta_ptr):
    """This program's ``(batch, head)`` pair from axis 1 of the grid, as int64, and the head's parameters."""
    pid_bh = tl.program_id(1).to(tl.int64)
    h = pid_bh % H
    return pid_bh, pid_bh // H, tl.load(kappa_ptr + h), tl.load(beta_ptr + h)


# ---------------------------------------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _manifold_attention_fwd_kernel(
    q_ptr,  # [B*H, N, D] input dtype (points, or log0 q for the tangent dot)
    k_ptr,  # [B*H, M, D]
    v_ptr,  # [B*H, M, DV] input dtype: lambda v (midpoint) or log0 v (tangent mean)
    c_ptr,  # [B*H, M] float32: lambda - 1 (midpoint only)
    qn2_ptr,  # [B*H, N] float32 |q|^2 (distance only)
    kn2_ptr,  # [B*H, M] float32 |k|^2 (distance only)
    kappa_ptr,  # [H] float32
    beta_ptr,  # [H] float32
    kpm_ptr,  # [B, M] uint8, 1 = padding (HAS_KPM only)
    out_ptr,  # [B*H, N, DV] input dtype
    num_ptr,  # [B*H, N, DV] float32 normalised sum of p v~
    den_ptr,  # [B*H, N] float32 normalised sum of p c (midpoint only)
    lse_ptr,  # [B*H, N] float32 base-2 log-sum-exp of the scores in log2 units (+inf: empty row)
    H,
    N,
    M,
    N_BUCKET,  # autotune key only
    M_BUCKET,  # autotune key only
    sm_scale,
    min_den,
    artanh_bound,
    D: tl.constexpr,
    DV: tl.constexpr,
    DISTANCE: tl.constexpr,
    MIDPOINT: tl.constexpr,
    CAUSAL: tl.constexpr,
    HAS_KPM: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_DV: tl.constexpr,
    INTERPRET: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_bh, pid_b, kk, bb = _head(H, kappa_ptr, beta_ptr)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    q_ptr += pid_bh * N * D
    k_ptr += pid_bh * M * D
    v_ptr += pid_bh * M * DV
    dot_dtype = v_ptr.dtype.element_ty
    q = _load_tile(q_ptr, offs_n, mask_n, D, BLOCK_D)  # [BLOCK_N, BLOCK_D]
    a = tl.load(qn2_ptr + pid_bh * N + offs_n, mask=mask_n, other=0.0)[:, None]  # [BLOCK_N, 1]

    m_i = tl.full((BLOCK_N,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_N,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_N, BLOCK_DV), dtype=tl.float32)
    dacc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    end = tl.minimum(M, (pid_n + 1) * BLOCK_N) if CAUSAL else M
    for m0 in range(0, end, BLOCK_M):
        offs_m = m0 + tl.arange(0, BLOCK_M)
        mask_m = offs_m < M
        kt = _load_tile(k_ptr, offs_m, mask_m, D, BLOCK_D)  # [BLOCK_M, BLOCK_D]
        g = _dot(q, tl.trans(kt), tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32), INTERPRET, dot_dtype)
        b = tl.load(kn2_ptr + pid_bh * M + offs_m, mask=mask_m, other=0.0)[None, :]  # [1, BLOCK_M]
        s, _ = _scores(g, a, b, kk, bb, sm_scale, min_den, artanh_bound, DISTANCE, INTERPRET)
        s = tl.where(
            _allowed(offs_n, offs_m, mask_m, kpm_ptr + pid_b * M, HAS_KPM, CAUSAL), s * _LOG2E, float("-inf")
        )
        p, alpha, m_i, l_i = _online_softmax(s, m_i, l_i)
        vt = _load_tile(v_ptr, offs_m, mask_m, DV, BLOCK_DV)  # [BLOCK_M, BLOCK_DV]
        acc = _dot(p, vt, acc * alpha[:, None], INTERPRET, dot_dtype)
        if MIDPOINT:
            cj = tl.load(c_ptr + pid_bh * M + offs_m, mask=mask_m, other=0.0)
            dacc = dacc * alpha + tl.sum(p * cj[None, :], axis=1)

    empty = l_i == 0.0
    inv_l = 1.0 / tl.where(empty, 1.0, l_i)
    num = acc * inv_l[:, None]  # [BLOCK_N, BLOCK_DV]
    tl.store(
        lse_ptr + pid_bh * N + offs_n,
        tl.where(empty, float("inf"), m_i + tl.log2(tl.where(empty, 1.0, l_i))),
        mask=mask_n,
    )
    _store_tile(num_ptr + pid_bh * N * DV, num, offs_n, mask_n, DV, BLOCK_DV)
    if MIDPOINT:
        den = dacc * inv_l
        tl.store(den_ptr + pid_bh * N + offs_n, den, mask=mask_n)
        res = _midpoint_from_sums(num, den, kk, min_den, artanh_bound)
    else:
        res = num * tan_ratio(kk * tl.sum(num * num, axis=1))[:, None]  # expmap0
    _store_tile(out_ptr + pid_bh * N * DV, res, offs_n, mask_n, DV, BLOCK_DV)


# ---------------------------------------------------------------------------------------------------------
# Backward
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _recompute(
    q, k, a, b, lse, dnum, vt, dden, cj, delta, allowed, kk, bb, sm_scale, min_den, artanh_bound,
    DISTANCE: tl.constexpr, MIDPOINT: tl.constexpr, INTERPRET: tl.constexpr, DOT_DTYPE: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
):  # fmt: skip
    """One tile of the backward: ``(g, p, ds, ds/dbeta)``, all ``[BLOCK_N, BLOCK_M]`` float32."""
    zeros = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    g = _dot(q, tl.trans(k), zeros, INTERPRET, DOT_DTYPE)
    s, s_beta = _scores(g, a, b, kk, bb, sm_scale, min_den, artanh_bound, DISTANCE, INTERPRET)
    p = tl.where(allowed, tl.exp2(s * _LOG2E - lse[:, None]), 0.0)
    dp = _dot(dnum, tl.trans(vt), zeros, INTERPRET, DOT_DTYPE)
    if MIDPOINT:
        dp += dden[:, None] * cj[None, :]
    return g, p, p * (dp - delta[:, None]), s_beta


@triton.jit
def _query_rows(
    q_ptr, qn2_ptr, lse_ptr, dnum_ptr, dden_ptr, delta_ptr, offs_n, mask_n,
    D: tl.constexpr, DV: tl.constexpr, MIDPOINT: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
):  # fmt: skip
    """What the backward reads per query row (pointers already at this (batch, head)): ``q [BLOCK_N,
    BLOCK_D]``, ``a = |q|^2 [BLOCK_N, 1]``, lse, dnum ``[BLOCK_N, BLOCK_DV]``, dden (lse without the
    midpoint: unused) and delta."""
    q = _load_tile(q_ptr, offs_n, mask_n, D, BLOCK_D)
    a = tl.load(qn2_ptr + offs_n, mask=mask_n, other=0.0)[:, None]
    lse = tl.load(lse_ptr + offs_n, mask=mask_n, other=float("inf"))
    dnum = _load_tile(dnum_ptr, offs_n, mask_n, DV, BLOCK_DV)
    dden = tl.load(dden_ptr + offs_n, mask=mask_n, other=0.0) if MIDPOINT else lse
    delta = tl.load(delta_ptr + offs_n, mask=mask_n, other=0.0)
    return q, a, lse, dnum, dden, delta


@triton.jit
def _key_rows(
    k_ptr, v_ptr, kn2_ptr, c_ptr, offs_m, mask_m,
    D: tl.constexpr, DV: tl.constexpr, MIDPOINT: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
):  # fmt: skip
    """What the backward reads per key row (pointers at this (batch, head)): ``k [BLOCK_M, BLOCK_D]``,
    ``v~ [BLOCK_M, BLOCK_DV]``, ``b = |k|^2 [1, BLOCK_M]`` and ``c`` (``b`` without the midpoint: unused)."""
    kt = _load_tile(k_ptr, offs_m, mask_m, D, BLOCK_D)
    vt = _load_tile(v_ptr, offs_m, mask_m, DV, BLOCK_DV)
    b = tl.load(kn2_ptr + offs_m, mask=mask_m, other=0.0)[None, :]
    cj = tl.load(c_ptr + offs_m, mask=mask_m, other=0.0) if MIDPOINT else b
    return kt, vt, b, cj


@triton.jit
def _manifold_attention_bwd_kernel(
    q_ptr, k_ptr, v_ptr, c_ptr, qn2_ptr, kn2_ptr, kappa_ptr, beta_ptr, kpm_ptr,
    lse_ptr,  # [B*H, N] float32 (forward)
    dnum_ptr,  # [B*H, N, DV] float32 dL/dnum
    dden_ptr,  # [B*H, N] float32 dL/dden (midpoint only)
    delta_ptr,  # [B*H, N] float32 dnum . num + dden den
    dk_ptr,  # [B*H, M, D] float32 out
    dv_ptr,  # [B*H, M, DV] float32 out
    dc_ptr,  # [B*H, M] float32 out (midpoint only)
    dq_ptr,  # [B*H, N, D] float32, zero-initialised, atomic: sum_j dL/dG_ij k_j
    da_ptr,  # [B*H, N] float32, zero-initialised, atomic: sum_j dL/d|q_i|^2 (distance only)
    dkappa_ptr,  # [B*H, N] float32, zero-initialised, atomic: sum_j dL/dkappa of the distances of row i
    dbeta_ptr,  # [B*H, N] float32, zero-initialised, atomic: sum_j dL/ds_ij ds_ij/dbeta
    H, N, M, N_BUCKET, M_BUCKET, sm_scale, min_den, artanh_bound,
    D: tl.constexpr, DV: tl.constexpr,
    DISTANCE: tl.constexpr, MIDPOINT: tl.constexpr, CAUSAL: tl.constexpr, HAS_KPM: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
    INTERPRET: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_bh, pid_b, kk, bb = _head(H, kappa_ptr, beta_ptr)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < M
    dot_dtype = v_ptr.dtype.element_ty
    kt, vt, b, cj = _key_rows(
        k_ptr + pid_bh * M * D, v_ptr + pid_bh * M * DV, kn2_ptr + pid_bh * M, c_ptr + pid_bh * M,
        offs_m, mask_m, D, DV, MIDPOINT, BLOCK_D, BLOCK_DV,
    )  # fmt: skip
    dk = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    dv = tl.zeros((BLOCK_M, BLOCK_DV), dtype=tl.float32)
    dc = tl.zeros((BLOCK_M,), dtype=tl.float32)
    db_sum = tl.zeros((BLOCK_M,), dtype=tl.float32)
    q_ptr += pid_bh * N * D
    dnum_ptr += pid_bh * N * DV
    qn2_ptr += pid_bh * N
    lse_ptr += pid_bh * N
    dden_ptr += pid_bh * N
    delta_ptr += pid_bh * N
    dq_ptr += pid_bh * N * D
    da_ptr += pid_bh * N
    dkappa_ptr += pid_bh * N
    dbeta_ptr += pid_bh * N
    offs_d = tl.arange(0, BLOCK_D)
    start = (pid_m * BLOCK_M // BLOCK_N) * BLOCK_N if CAUSAL else 0  # rows i < j see no key j
    for n0 in range(start, N, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mask_n = offs_n < N
        q, a, lse, dnum, dden, delta = _query_rows(
            q_ptr, qn2_ptr, lse_ptr, dnum_ptr, dden_ptr, delta_ptr, offs_n, mask_n,
            D, DV, MIDPOINT, BLOCK_D, BLOCK_DV,
        )  # fmt: skip
        allowed = _allowed(offs_n, offs_m, mask_m, kpm_ptr + pid_b * M, HAS_KPM, CAUSAL) & mask_n[:, None]
        g, p, ds, s_beta = _recompute(
            q, kt, a, b, lse, dnum, vt, dden, cj, delta, allowed, kk, bb, sm_scale, min_den, artanh_bound,
            DISTANCE, MIDPOINT, INTERPRET, dot_dtype, BLOCK_N, BLOCK_M,
        )  # fmt: skip
        dv = _dot(tl.trans(p), dnum, dv, INTERPRET, dot_dtype)
        if MIDPOINT:
            dc += tl.sum(p * dden[:, None], axis=0)
        tl.atomic_add(dbeta_ptr + offs_n, tl.sum(ds * s_beta, axis=1), mask=mask_n)
        if DISTANCE:
            dg, da, db, dkap = _distance_bwd(g, a, b, kk, -bb * ds, min_den, artanh_bound, INTERPRET)
            db_sum += tl.sum(db, axis=0)
            tl.atomic_add(da_ptr + offs_n, tl.sum(da, axis=1), mask=mask_n)
            tl.atomic_add(dkappa_ptr + offs_n, tl.sum(dkap, axis=1), mask=mask_n)
        else:
            dg = ds * (bb * sm_scale)
        dk = _dot(tl.trans(dg), q, dk, INTERPRET, dot_dtype)
        dq = _dot(dg, kt, tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32), INTERPRET, dot_dtype)
        dq_mask = mask_n[:, None] & (offs_d[None, :] < D)
        tl.atomic_add(dq_ptr + offs_n[:, None] * D + offs_d[None, :], dq, mask=dq_mask)
    if DISTANCE:
        dk += 2.0 * kt.to(tl.float32) * db_sum[:, None]
    _store_tile(dk_ptr + pid_bh * M * D, dk, offs_m, mask_m, D, BLOCK_D)
    _store_tile(dv_ptr + pid_bh * M * DV, dv, offs_m, mask_m, DV, BLOCK_DV)
    if MIDPOINT:
        tl.store(dc_ptr + pid_bh * M + offs_m, dc, mask=mask_m)


# ---------------------------------------------------------------------------------------------------------
# One-pass CAT (forward only): three geometries over shared tangent heads, one sweep over K/V
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _cat_branch_step(
    g, offs_m, mask_m, allowed, uv, sq, a, stats_ptr, M, kk, bb, m_i, l_i, acc, dacc, min_den, artanh_bound,
    INTERPRET: tl.constexpr, DOT_DTYPE: tl.constexpr,
):  # fmt: skip
    """One key tile of one branch. The branch's points are per-row rescalings of the shared tangent heads
    (``x^b = s^b x``), so its Gram tile is ``sq_i sk_j G`` and its value sum ``sum_j p_ij (lambda_j s^b_j) v_j``.
    ``stats_ptr`` points at the branch's ``[4, M]`` key statistics ``(sk, |k^b|^2, lambda s^b_v, lambda - 1)``."""
    sk = tl.load(stats_ptr + offs_m, mask=mask_m, other=0.0)
    b = tl.load(stats_ptr + M + offs_m, mask=mask_m, other=0.0)
    w = tl.load(stats_ptr + 2 * M + offs_m, mask=mask_m, other=0.0)
    c = tl.load(stats_ptr + 3 * M + offs_m, mask=mask_m, other=0.0)
    d2, _, _, _, _, _, _ = _distance(
        g * sq[:, None] * sk[None, :], a[:, None], b[None, :], kk, min_den, artanh_bound, INTERPRET
    )
    s = tl.where(allowed, -bb * d2 * _LOG2E, float("-inf"))
    p, alpha, m_i, l_i = _online_softmax(s, m_i, l_i)
    acc = _dot(p * w[None, :], uv, acc * alpha[:, None], INTERPRET, DOT_DTYPE)
    return m_i, l_i, acc, dacc * alpha + tl.sum(p * c[None, :], axis=1)


@triton.jit
def _cat_branch_output(acc, dacc, l_i, kk, min_den, artanh_bound):
    """The branch's midpoint from its sums, mapped back to the tangent space: ``log0(midpoint)``."""
    inv_l = 1.0 / tl.where(l_i == 0.0, 1.0, l_i)
    mid = _midpoint_from_sums(acc * inv_l[:, None], dacc * inv_l, kk, min_den, artanh_bound)
    return mid * artan_ratio(kk * tl.sum(mid * mid, axis=1), artanh_bound)[:, None]


@triton.jit
def _cat_attention_fwd_kernel(
    q_ptr,  # [B*H, N, D] shared tangent query heads, input dtype
    k_ptr,  # [B*H, M, D]
    v_ptr,  # [B*H, M, DV]
    qstats_ptr,  # [B, 3, H, 2, N] float32: per branch (row scale s^b_q, |q^b|^2)
    kstats_ptr,  # [B, 3, H, 4, M] float32: per branch (s^b_k, |k^b|^2, lambda s^b_v, lambda - 1)
    kappa_ptr,  # [3H] float32, branch-major
    beta_ptr,  # [3H] float32
    alpha_ptr,  # [B, N, 3] float32 routing weights
    kpm_ptr,  # [B, M] uint8
    out_ptr,  # [B*H, N, DV] input dtype: sum_b alpha_b log0(midpoint_b)
    H, N, M, N_BUCKET, M_BUCKET, sm_scale, min_den, artanh_bound,
    D: tl.constexpr, DV: tl.constexpr,
    DISTANCE: tl.constexpr, MIDPOINT: tl.constexpr, CAUSAL: tl.constexpr, HAS_KPM: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
    INTERPRET: tl.constexpr,
):  # fmt: skip
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1).to(tl.int64)
    h = pid_bh % H
    pid_b = pid_bh // H
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    dot_dtype = v_ptr.dtype.element_ty
    k_ptr += pid_bh * M * D
    v_ptr += pid_bh * M * DV
    q = _load_tile(q_ptr + pid_bh * N * D, offs_n, mask_n, D, BLOCK_D)
    # branch b of (batch, head): row ((pid_b * 3 + b) * H + h) of the statistics
    qs0 = qstats_ptr + ((pid_b * 3 + 0) * H + h) * 2 * N
    qs1 = qstats_ptr + ((pid_b * 3 + 1) * H + h) * 2 * N
    qs2 = qstats_ptr + ((pid_b * 3 + 2) * H + h) * 2 * N
    ks0 = kstats_ptr + ((pid_b * 3 + 0) * H + h) * 4 * M
    ks1 = kstats_ptr + ((pid_b * 3 + 1) * H + h) * 4 * M
    ks2 = kstats_ptr + ((pid_b * 3 + 2) * H + h) * 4 * M
    sq0 = tl.load(qs0 + offs_n, mask=mask_n, other=0.0)
    a0 = tl.load(qs0 + N + offs_n, mask=mask_n, other=0.0)
    sq1 = tl.load(qs1 + offs_n, mask=mask_n, other=0.0)
    a1 = tl.load(qs1 + N + offs_n, mask=mask_n, other=0.0)
    sq2 = tl.load(qs2 + offs_n, mask=mask_n, other=0.0)
    a2 = tl.load(qs2 + N + offs_n, mask=mask_n, other=0.0)
    k0, b0 = tl.load(kappa_ptr + h), tl.load(beta_ptr + h)
    k1, b1 = tl.load(kappa_ptr + H + h), tl.load(beta_ptr + H + h)
    k2, b2 = tl.load(kappa_ptr + 2 * H + h), tl.load(beta_ptr + 2 * H + h)
    m0 = tl.full((BLOCK_N,), float("-inf"), dtype=tl.float32)
    m1, m2 = m0, m0
    l0 = tl.zeros((BLOCK_N,), dtype=tl.float32)
    l1, l2, d0, d1, d2 = l0, l0, l0, l0, l0
    acc0 = tl.zeros((BLOCK_N, BLOCK_DV), dtype=tl.float32)
    acc1, acc2 = acc0, acc0
    end = tl.minimum(M, (pid_n + 1) * BLOCK_N) if CAUSAL else M
    for start in range(0, end, BLOCK_M):
        offs_m = start + tl.arange(0, BLOCK_M)
        mask_m = offs_m < M
        kt = _load_tile(k_ptr, offs_m, mask_m, D, BLOCK_D)
        g = _dot(q, tl.trans(kt), tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32), INTERPRET, dot_dtype)
        uv = _load_tile(v_ptr, offs_m, mask_m, DV, BLOCK_DV)
        allowed = _allowed(offs_n, offs_m, mask_m, kpm_ptr + pid_b * M, HAS_KPM, CAUSAL)
        m0, l0, acc0, d0 = _cat_branch_step(
            g, offs_m, mask_m, allowed, uv, sq0, a0, ks0, M, k0, b0, m0, l0, acc0, d0, min_den, artanh_bound,
            INTERPRET, dot_dtype,
        )  # fmt: skip
        m1, l1, acc1, d1 = _cat_branch_step(
            g, offs_m, mask_m, allowed, uv, sq1, a1, ks1, M, k1, b1, m1, l1, acc1, d1, min_den, artanh_bound,
            INTERPRET, dot_dtype,
        )  # fmt: skip
        m2, l2, acc2, d2 = _cat_branch_step(
            g, offs_m, mask_m, allowed, uv, sq2, a2, ks2, M, k2, b2, m2, l2, acc2, d2, min_den, artanh_bound,
            INTERPRET, dot_dtype,
        )  # fmt: skip
    alpha_row = alpha_ptr + (pid_b * N + offs_n) * 3
    w0 = tl.load(alpha_row, mask=mask_n, other=0.0)[:, None]
    w1 = tl.load(alpha_row + 1, mask=mask_n, other=0.0)[:, None]
    w2 = tl.load(alpha_row + 2, mask=mask_n, other=0.0)[:, None]
    res = w0 * _cat_branch_output(acc0, d0, l0, k0, min_den, artanh_bound)
    res += w1 * _cat_branch_output(acc1, d1, l1, k1, min_den, artanh_bound)
    res += w2 * _cat_branch_output(acc2, d2, l2, k2, min_den, artanh_bound)
    _store_tile(out_ptr + pid_bh * N * DV, res, offs_n, mask_n, DV, BLOCK_DV)


# ---------------------------------------------------------------------------------------------------------
# Launch configuration
# ---------------------------------------------------------------------------------------------------------

# Under the interpreter one small config (tiles of 16 so that tiny test sizes still span several tiles).
_INTERPRET_BLOCKS: dict[str, Any] = {"BLOCK_N": 16, "BLOCK_M": 16}
# Problems below this many scores use one fixed config: autotuning compiles every config of a large
# epilogue (seconds each), not worth it for small, often varying shapes.
_AUTOTUNE_MIN_SCORES = 1 << 24
# The distance epilogue keeps many [BLOCK_N, BLOCK_M] float32 temporaries live, so tiles are smaller than
# FlashAttention's. Registers per thread from ptxas for sm_90 (bfloat16, D = 64, distance + midpoint; 255
# is the cap, beyond it values spill to the stack): forward 64 x 32 / 4 warps 229, 32 x 64 / 4 warps 244,
# 64 x 64 / 8 warps 255 + 8 bytes spilled, 64 x 64 / 4 warps 128 bytes spilled; backward (BLOCK_N query
# rows x BLOCK_M keys per program) 16 x 64 / 8 warps 229, 16 x 32 / 4 warps 248, 32 x 64 / 8 warps 255 +
# 152 bytes, 16 x 128 / 8 warps 255 + 280 bytes (but half the dQ atomics), 32 x 64 / 4 warps 1 KB.
_FWD_FIXED: dict[str, Any] = {"BLOCK_N": 64, "BLOCK_M": 32, "num_warps": 4, "num_stages": 2}
# The backward is not autotuned: tuning runs would add into its atomic accumulators (older Triton versions
# do not zero `reset_to_zero` buffers after tuning), so it always runs this config (no spills).
_BWD_FIXED: dict[str, Any] = {"BLOCK_N": 16, "BLOCK_M": 64, "num_warps": 8, "num_stages": 2}
_FWD_CONFIGS = [
    triton.Config({"BLOCK_N": 64, "BLOCK_M": 32}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_N": 64, "BLOCK_M": 64}, num_warps=8, num_stages=2),
    triton.Config({"BLOCK_N": 32, "BLOCK_M": 64}, num_warps=4, num_stages=2),
]
# One-pass CAT keeps three accumulators and three online softmaxes. ptxas for sm_90 (bfloat16, D = 64):
# 16 x 64 / 4 warps 234 registers; 32 x 64 / 4 warps and 64 x 64 / 8 warps spill.
_CAT_FIXED: dict[str, Any] = {"BLOCK_N": 16, "BLOCK_M": 64, "num_warps": 4, "num_stages": 2}
_CAT_CONFIGS = [
    triton.Config({"BLOCK_N": 16, "BLOCK_M": 64}, num_warps=4, num_stages=2),
    triton.Config({"BLOCK_N": 64, "BLOCK_M": 32}, num_warps=8, num_stages=2),
    triton.Config({"BLOCK_N": 32, "BLOCK_M": 64}, num_warps=8, num_stages=2),
]
_TUNE_KEY = ["D", "DV", "N_BUCKET", "M_BUCKET", "DISTANCE", "MIDPOINT", "CAUSAL"]


def _autotuned(kernel: Any, configs: list[triton.Config]) -> Any:
    """``kernel`` wrapped in ``triton.autotune`` (``None`` under the interpreter, which never tunes)."""
    return None if triton_interpreting() else triton.autotune(configs=configs, key=_TUNE_KEY)(kernel)


# Every kernel takes N_BUCKET/M_BUCKET (autotune keys only) so that all launches share one signature.
_KERNELS: dict[str, tuple[Any, Any]] = {
    "fwd": (_manifold_attention_fwd_kernel, _autotuned(_manifold_attention_fwd_kernel, _FWD_CONFIGS)),
    "bwd": (_manifold_attention_bwd_kernel, None),
    "cat": (_cat_attention_fwd_kernel, _autotuned(_cat_attention_fwd_kernel, _CAT_CONFIGS)),
}


def _empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Allocation of every buffer a kernel must write in full (the tests poison it with NaN)."""
    return torch.empty(shape, dtype=dtype, device=device)


def _constants() -> tuple[float, float]:
    """(MIN_DENOM, 1 - ARTANH_CLAMP) of float32, the dtype every kernel computes in."""
    return min_denom(torch.float32), 1.0 - artanh_clamp(torch.float32)


def _launch(name: str, rows: int, bh: int, args: tuple[Any, ...], *, scores: int, **constexprs: Any) -> None:
    """Launch kernel ``name`` over ``(cdiv(rows, block), B*H)`` programs with the config for its size."""
    plain, tuned = _KERNELS[name]
    if rows * bh == 0:
        return
    fixed = {"fwd": _FWD_FIXED, "cat": _CAT_FIXED}.get(name, _BWD_FIXED)
    kernel, meta = (
        (plain, _INTERPRET_BLOCKS)
        if triton_interpreting()
        else (plain, fixed)
        if scores < _AUTOTUNE_MIN_SCORES or tuned is None
        else (tuned, {})
    )
    block = "BLOCK_M" if name == "bwd" else "BLOCK_N"

    def grid(meta: dict[str, Any]) -> tuple[int, int]:
        return (triton.cdiv(rows, meta[block]), bh)

    d, dv = constexprs["D"], constexprs["DV"]
    kernel[grid](
        *args,
        BLOCK_D=max(triton.next_power_of_2(d), 16),
        BLOCK_DV=max(triton.next_power_of_2(dv), 16),
        INTERPRET=triton_interpreting(),
        **constexprs,
        **meta,
    )


def _sqnorm(t: torch.Tensor) -> torch.Tensor:
    tf = t.float()
    return (tf * tf).sum(-1)


class _KernelInputs:
    """The tensors every kernel reads (contiguous, with the dummies of absent ones) and the constexpr flags.

    Built once in the forward by :meth:`prepare`; the backward rebuilds it from ``ctx.saved_tensors`` (so
    autograd's saved-tensor checks guard against in-place changes of the inputs)."""

    def __init__(self, *tensors: torch.Tensor, flags: dict[str, Any]) -> None:
        self.q, self.k, self.v, self.c, self.qn2, self.kn2, self.kappa, self.beta, self.kpm = tensors
        self.flags = flags

    @classmethod
    def prepare(
        cls,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        c: torch.Tensor | None,
        kappa: torch.Tensor,
        beta: torch.Tensor,
        kpm: torch.Tensor | None,
        *,
        causal: bool,
        distance: bool,
        midpoint: bool,
    ) -> _KernelInputs:
        dev = q.device
        dummy = torch.zeros(1, dtype=torch.float32, device=dev)
        q, k = q.contiguous(), k.contiguous()
        flags = {
            "DISTANCE": distance,
            "MIDPOINT": midpoint,
            "CAUSAL": causal,
            "HAS_KPM": kpm is not None,
            "D": q.shape[-1],
            "DV": v.shape[-1],
        }
        return cls(
            q, k, v.contiguous(),
            c.contiguous() if c is not None else dummy,
            _sqnorm(q) if distance else dummy,
            _sqnorm(k) if distance else dummy,
            kappa.contiguous(), beta.contiguous(),
            kpm.contiguous() if kpm is not None else torch.zeros(1, dtype=torch.uint8, device=dev),
            flags=flags,
        )  # fmt: skip

    def kernel_inputs(self) -> tuple[torch.Tensor, ...]:
        return (self.q, self.k, self.v, self.c, self.qn2, self.kn2, self.kappa, self.beta, self.kpm)

    def sizes(self) -> tuple[int | float, ...]:
        """``(H, N, M, N_BUCKET, M_BUCKET, sm_scale, min_den, artanh_bound)``: the kernels' scalars."""
        n, m = self.q.shape[2], self.k.shape[2]
        return (
            self.q.shape[1], n, m, triton.next_power_of_2(n), triton.next_power_of_2(m),
            1.0 / math.sqrt(self.q.shape[-1]), *_constants(),
        )  # fmt: skip


def manifold_attention_fwd(saved: _KernelInputs) -> tuple[torch.Tensor, ...]:
    """Launch the forward kernel: ``(out [B,H,N,Dv] input dtype, num [B,H,N,Dv], den [B,H,N] (midpoint;
    else a dummy), lse [B,H,N])``, the last three float32."""
    batch, heads, n, _ = saved.q.shape
    m, dv = saved.k.shape[2], saved.v.shape[-1]
    dev = saved.q.device
    out = _empty((batch, heads, n, dv), saved.q.dtype, dev)
    num = _empty((batch, heads, n, dv), torch.float32, dev)
    den = _empty((batch, heads, n) if saved.flags["MIDPOINT"] else (1,), torch.float32, dev)
    lse = _empty((batch, heads, n), torch.float32, dev)
    _launch(
        "fwd", n, batch * heads, (*saved.kernel_inputs(), out, num, den, lse, *saved.sizes()),
        scores=batch * heads * n * m, **saved.flags,
    )  # fmt: skip
    return out, num, den, lse


def manifold_attention_bwd(
    saved: _KernelInputs, lse: torch.Tensor, dnum: torch.Tensor, dden: torch.Tensor, delta: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """Launch the backward kernel: ``(dq, dk, dv, dc, dkappa_rows [B,H,N], dbeta_rows [B,H,N])``, float32
    (``dc`` a dummy without the midpoint). ``dq`` and the row sums are accumulated with atomics (not bitwise
    deterministic); ``dq`` gets its norm term ``2 q sum_j dL/d|q_i|^2`` here."""
    batch, heads, n, d = saved.q.shape
    m, dv = saved.k.shape[2], saved.v.shape[-1]
    dev, f32 = saved.q.device, torch.float32
    dk = _empty((batch, heads, m, d), f32, dev)
    dvs = _empty((batch, heads, m, dv), f32, dev)
    dc = _empty((batch, heads, m) if saved.flags["MIDPOINT"] else (1,), f32, dev)
    dq, da, dkappa, dbeta = (
        torch.zeros(shape, dtype=f32, device=dev)
        for shape in ((batch, heads, n, d), *[(batch, heads, n)] * 3)
    )
    _launch(
        "bwd", m, batch * heads,
        (*saved.kernel_inputs(), lse, dnum, dden, delta, dk, dvs, dc, dq, da, dkappa, dbeta, *saved.sizes()),
        scores=batch * heads * n * m, **saved.flags,
    )  # fmt: skip
    if saved.flags["DISTANCE"]:
        dq += 2.0 * saved.q.float() * da.unsqueeze(-1)
    return dq, dk, dvs, dc, dkappa, dbeta


def _finish(num: torch.Tensor, den: torch.Tensor | None, kappa: torch.Tensor) -> torch.Tensor:
    """The forward epilogue in torch, for its gradient: the midpoint from its sums, or ``expmap0``."""
    k3 = kappa.view(-1, 1, 1)
    if den is None:
        return expmap0(num, k=k3)
    return midpoint_from_sums(num, den.unsqueeze(-1), k=k3)


class ManifoldAttentionFunction(torch.autograd.Function):
    """Autograd wrapper of the kernels.

    ``apply(q [B,H,N,D], k [B,H,M,D], v [B,H,M,Dv], c [B,H,M] float32 | None, kappa [H] float32,
    beta [H] float32, gamma [H] float32, kpm [B,M] uint8 | None, causal, distance, midpoint)`` ->
    ``[B, H, N, Dv]``. ``v``/``c`` are the midpoint summands :math:`\\lambda v`, :math:`\\lambda - 1` (or
    ``log0 v`` and ``None`` for the tangent mean); ``q``/``k`` are points (or ``log0`` of them for the tangent
    dot). Saves the float32 sums and the log-sum-exp (``O(N Dv)``), nothing of size ``N x M``.
    """

    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        c: torch.Tensor | None,
        kappa: torch.Tensor,
        beta: torch.Tensor,
        gamma: torch.Tensor,
        kpm: torch.Tensor | None,
        causal: bool,
        distance: bool,
        midpoint: bool,
    ) -> torch.Tensor:
        saved = _KernelInputs.prepare(
            q, k, v, c, kappa, beta, kpm, causal=causal, distance=distance, midpoint=midpoint
        )
        out, num, den, lse = manifold_attention_fwd(saved)
        ctx.save_for_backward(*saved.kernel_inputs(), num, den, lse)
        ctx.flags = saved.flags
        ctx.gamma_shape = gamma.shape
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        *tensors, num, den, lse = ctx.saved_tensors
        saved = _KernelInputs(*tensors, flags=ctx.flags)
        midpoint = saved.flags["MIDPOINT"]
        with torch.enable_grad():
            leaves = [num.detach().requires_grad_(), saved.kappa.detach().requires_grad_()]
            if midpoint:
                leaves.append(den.detach().requires_grad_())
            out = _finish(leaves[0], leaves[2] if midpoint else None, leaves[1])
            grads = torch.autograd.grad(out, leaves, grad_out.float())
        # Rows with every key masked have p = 0, so their dnum/dden do not matter; the finishing step's
        # gradient there is ~dout / MIN_DENOM, which would overflow the float16 operands of tl.dot (inf * 0).
        empty = torch.isinf(lse)  # [B, H, N]
        dnum, dkappa_finish = grads[0].masked_fill(empty.unsqueeze(-1), 0.0).contiguous(), grads[1]
        delta = (dnum * num).sum(-1)
        dden = grads[2].masked_fill(empty, 0.0).contiguous() if midpoint else lse
        if midpoint:
            delta = delta + dden * den
        dq, dk, dv, dc, dkappa_rows, dbeta_rows = manifold_attention_bwd(saved, lse, dnum, dden, delta)
        return (
            dq.to(saved.q.dtype),
            dk.to(saved.k.dtype),
            dv.to(saved.v.dtype),
            dc if midpoint else None,
            dkappa_rows.sum((0, 2)) + dkappa_finish,
            dbeta_rows.sum((0, 2)),
            torch.zeros(ctx.gamma_shape, dtype=torch.float32, device=grad_out.device),
            None,
            None,
            None,
            None,
        )


def _per_head(value: torch.Tensor | float, heads: int, like: torch.Tensor) -> torch.Tensor:
    """A float or a ``()``/``[1]``/``[H]`` tensor as a float32 ``[H]`` tensor on ``like``'s device
    (differentiable; float32 also for half-precision inputs, so a learnable curvature is not rounded)."""
    t = value.float() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
    return t.to(like.device).reshape(-1).expand(heads)


def manifold_attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    curvature: torch.Tensor | float,
    beta: torch.Tensor | float,
    gamma: torch.Tensor | float,
    distance: bool,
    midpoint: bool,
    key_padding_mask: torch.Tensor | None,
    causal: bool,
) -> torch.Tensor:
    """Kernel path of :func:`geoattn.kernels.manifold_attention.manifold_attention` on validated inputs
    (float32/float16/bfloat16, no ``attn_mask``, no dropout): ``[B, H, N, Dv]`` in ``q.dtype``.

    The per-key and per-query maps are torch (``O((N + M) D)``, differentiated by autograd): the midpoint
    summands of ``v`` (or ``log0 v``) and, for the tangent dot, ``log0 q``, ``log0 k``; all in float32.
    """
    heads = q.shape[1]
    kappa = _per_head(curvature, heads, q)
    k3 = kappa.view(-1, 1, 1)
    if distance:
        qs, ks = q, k
    else:
        qs = logmap0(q.float(), k=k3).to(q.dtype)
        ks = logmap0(k.float(), k=k3).to(k.dtype)
    c: torch.Tensor | None = None
    if midpoint:
        vs, c1 = midpoint_summands(v.float(), k=k3)
        c = c1.squeeze(-1)
    else:
        vs = logmap0(v.float(), k=k3)
    kpm = key_padding_mask.to(torch.uint8) if key_padding_mask is not None else None
    out: torch.Tensor = ManifoldAttentionFunction.apply(
        qs, ks, vs.to(v.dtype), c, kappa, _per_head(beta, heads, q), _per_head(gamma, heads, q),
        kpm, causal, distance, midpoint,
    )  # fmt: skip
    return out


def _branch_scales(u: torch.Tensor, kappa: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For tangent heads ``u [B, H, n, D]`` and curvatures ``kappa [G, H]``: the factor ``s`` with
    ``proj(expmap0(u)) = s u`` per branch and row, and the squared norm of that point, both ``[B, G, H, n]``
    float32. ``expmap0`` and ``project`` only rescale a vector, so both follow from ``|u|`` alone (``project``
    is applied to the norm as a one-dimensional vector: the same clamp as on the full vector)."""
    norm = _sqnorm(u).sqrt().unsqueeze(1)  # [B, 1, H, n]
    k = kappa.view(1, *kappa.shape, 1)
    projected = project((norm * tan_ratio_torch(k * norm * norm)).unsqueeze(-1), k=k.unsqueeze(-1)).squeeze(
        -1
    )
    return projected / norm.clamp_min(min_norm(torch.float32)), projected * projected


def cat_attention_triton(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    curvature: torch.Tensor | float,
    beta: torch.Tensor | float,
    alpha: torch.Tensor,
    key_padding_mask: torch.Tensor | None,
    causal: bool,
) -> torch.Tensor:
    """One-pass CAT forward (no autograd): :func:`~geoattn.kernels.manifold_attention.reference.
    cat_attention_reference` for three branches with distance scores and midpoints, ``[B, H, N, Dv]`` in
    ``q.dtype``. One ``Q K^T`` tile and one load of ``K``/``V`` serve the three branches; the per-branch
    row/column factors and conformal factors are ``O((N + M) H)`` torch work."""
    batch, heads, n, d = q.shape
    m, dv = k.shape[2], v.shape[-1]
    with torch.no_grad():
        kappa = _per_head(curvature, 3 * heads, q).contiguous()
        beta_h = _per_head(beta, 3 * heads, q).contiguous()
        k3 = kappa.view(3, heads)
        sq, aq = _branch_scales(q, k3)
        sk, bk = _branch_scales(k, k3)
        sv, v2 = _branch_scales(v, k3)
        lam = 2.0 / (1.0 + k3.view(1, 3, heads, 1) * v2)
        qstats = torch.stack([sq, aq], dim=3).contiguous()  # [B, 3, H, 2, N]
        kstats = torch.stack([sk, bk, lam * sv, lam - 1.0], dim=3).contiguous()  # [B, 3, H, 4, M]
        dev = q.device
        kpm = (
            key_padding_mask.to(torch.uint8).contiguous()
            if key_padding_mask is not None
            else torch.zeros(1, dtype=torch.uint8, device=dev)
        )
        out = _empty((batch, heads, n, dv), q.dtype, dev)
        args = (
            q.contiguous(), k.contiguous(), v.contiguous(), qstats, kstats, kappa, beta_h,
            alpha.float().contiguous(), kpm, out,
            heads, n, m, triton.next_power_of_2(n), triton.next_power_of_2(m), 1.0 / math.sqrt(d), *_constants(),
        )  # fmt: skip
        flags = {
            "DISTANCE": True,
            "MIDPOINT": True,
            "CAUSAL": causal,
            "HAS_KPM": key_padding_mask is not None,
        }
        _launch("cat", n, batch * heads, args, scores=batch * heads * n * m, D=d, DV=dv, **flags)
    return out
