# Triton-jitted functions are untyped by nature (their arguments are blocks, pointers or constexprs).
# mypy: disable-error-code="no-untyped-def, untyped-decorator"
r"""Fused manifold attention in Triton: flash-style forward and FlashAttention-2-style backward.

**Distance epilogue.** With :math:`a_i = \|q_i\|^2`, :math:`b_j = \|k_j\|^2`, the Gram tile
:math:`G = Q K^\top` (``tl.dot``, float32) and the conformal factors :math:`r = 1/(1 + \kappa\|x\|^2)`
(:math:`\lambda_x = 2r`), computed once per row and column outside the tile loop, the κ-stereographic
distance is a function of one number per score,

.. math::
    t_{ij} = \max(a_i + b_j - 2G_{ij},\ 0) = \|q_i - k_j\|^2,\qquad
    z_{ij} = 2|\kappa|\, r_i\, r_j\, t_{ij},\qquad
    \cos_\kappa\bigl(\sqrt{|\kappa|}\,d_{ij}\bigr) = 1 + \operatorname{sgn}(-\kappa)\, z_{ij}

(:math:`\cosh(\sqrt{-\kappa}\,d) = 1 + \tfrac{-\kappa}{2}\lambda_q\lambda_k\|q - k\|^2` for
:math:`\kappa < 0`, :math:`\cos` for :math:`\kappa > 0`): no division per score. With
:math:`\theta = \sqrt{|\kappa|}\, d`,

* :math:`\kappa < 0`: :math:`\theta = \operatorname{arcosh}(1 + z) = \ln\bigl(1 + z + \sqrt{z(z+2)}\bigr)`,
  one ``sqrt`` and one ``log2`` (the hardware ``lg2.approx`` in compiled kernels);
* :math:`\kappa > 0`: :math:`\theta = \arccos(1 - z)`, Cephes' ``asinf`` polynomial on a reduced argument
  (one ``sqrt``; relatively accurate down to :math:`z \to 0`);
* :math:`\kappa = 0`: :math:`d^2 = 4t`;

and :math:`d^2 = \theta^2 / |\kappa|`. The score in log2 units is one product :math:`c_h Q` with a per-head
constant (:math:`Q = \log_2^2(\cdot)`, :math:`\theta^2` or :math:`t`; :math:`\log_2 e` folded in), so the
online softmax needs only ``exp2``: three MUFU operations per score for :math:`\kappa < 0` (``sqrt``, ``lg2``,
``ex2``), the least an exact distance softmax needs. ``log`` has an absolute error, so :math:`\theta^2` loses
relative accuracy for small :math:`z`: harmless in absolute terms unless :math:`|\kappa|` is small, and the
programs of heads with :math:`-\texttt{K\_EXACT} < \kappa < 0` take the Taylor series of
:math:`\operatorname{arcosh}^2(1 + z)` for :math:`z < \texttt{Z\_SERIES}`. The curvature is uniform per
program, so each kernel branches **once**, outside its tile loops, into a copy of the loops specialised for
the sign (``SIGN``, ``SERIES`` constexprs); loops over tiles that need no mask (complete, not causal-diagonal,
no key padding) run without one.

**Forward** (``_manifold_attention_fwd_kernel``): query tile resident, key/value tiles streamed; scores
:math:`s = -\beta d^2` (or :math:`\beta G/\sqrt{D}` for the tangent dot, where :math:`Q, K` are
:math:`\log_0 q, \log_0 k`; the bias :math:`\gamma` cancels in the softmax and never enters the kernel);
masked scores :math:`-\infty`; an online softmax (base 2) accumulates

.. math::
    \text{num}_i = \sum_j p_{ij}\,\tilde v_j,\qquad \text{den}_i = \sum_j p_{ij}\,c_j

in the same pass, where for the gyro-midpoint (``MIDPOINT``) :math:`\tilde v_j = \lambda_j v_j`,
:math:`c_j = \lambda_j - 1` (:func:`geoattn.manifolds.midpoint_summands`), and for the tangent mean
:math:`\tilde v_j = \log_0 v_j` (no ``den``). The epilogue divides by :math:`l_i` and finishes in registers:
:func:`geoattn.manifolds.midpoint_from_sums` (``1/2 ⊗ (num/den)``, denominator held at ``±MIN_DENOM``,
antipode for :math:`\kappa > 0` and ``den < 0``) or :math:`\exp_0(\text{num})`. A row with every key masked
has :math:`l_i = 0`, sums 0 and output 0 (the origin), as the reference. The kernel writes the output, the
normalised sums (float32) and the per-row log-sum-exp (base 2; :math:`+\infty` for an empty row, so that
recomputed probabilities are 0).

**Backward** (recompute, FlashAttention-2's scheme, no atomics, deterministic): :class:`ManifoldAttentionFunction`
differentiates the finishing step in torch (``O(N D)``) for :math:`\bar{\text{num}}_i`,
:math:`\bar{\text{den}}_i` and its share of :math:`\bar\kappa`, and forms
:math:`\Delta_i = \bar{\text{num}}_i\cdot\text{num}_i + \bar{\text{den}}_i\,\text{den}_i`. Two kernels then
recompute :math:`G, p` tile by tile, :math:`\bar p_{ij} = \bar{\text{num}}_i\cdot\tilde v_j +
\bar{\text{den}}_i c_j` and :math:`\bar s_{ij} = p_{ij}(\bar p_{ij} - \Delta_i)`:
``_manifold_attention_bwd_dkdv_kernel`` (one program per key block, looping over query blocks) keeps
:math:`\bar{\tilde V} = P^\top\bar{\text{num}}`, :math:`\bar c = P^\top\bar{\text{den}}` and :math:`\bar K`
in registers; ``_manifold_attention_bwd_dq_kernel`` (one program per query block, looping over key blocks)
keeps :math:`\bar Q` and writes per-row partial sums of :math:`\bar\kappa` and :math:`\bar\beta`, reduced per
head in torch. With :math:`\Phi = \theta/\sin_\kappa\theta` (:math:`\sinh`/:math:`\sin`, from the ``rsqrt``
that also gives the ``sqrt`` of the recompute), :math:`e = \bar s\,\Phi`,
:math:`\rho^2 = r_i r_j t` and :math:`w = \kappa\rho^2`:

.. math::
    \frac{\partial L}{\partial G_{ij}} = 8\beta\, r_i r_j e_{ij},\quad
    \frac{\partial L}{\partial a_i} = -4\beta r_i \sum_j e_{ij}(r_j - w_{ij}),\quad
    \frac{\partial L}{\partial\kappa} = \sum_{ij} -\beta\,\bar s_{ij}\,
    \frac{\partial d^2_{ij}}{\partial\kappa}\Big|_{\rho} + 4\beta\, e_{ij}\,\rho^2_{ij}(a_i r_i + b_j r_j),

with :math:`\partial d^2/\partial\kappa|_\rho = \operatorname{sgn}(\kappa)(2z\Phi - \theta^2)/\kappa^2`,
:math:`\bar\beta = -\sum \bar s\, d^2`; :math:`\Phi` and :math:`(2z\Phi - \theta^2)/z^2` take their Taylor
series for :math:`z < \texttt{Z\_SERIES}` (the exact forms cancel there), so values and gradients stay
accurate at coincident points and continuous through :math:`\kappa = 0`. :math:`\bar Q = \bar G K +
2Q\operatorname{diag}(\bar a)` (and :math:`\bar K` alike) is finished in the kernels. :math:`\bar\gamma = 0`.
The key-padding mask enters the key-block kernel only at its end (padding keys get zero gradients; their
scores reach no other key's sums).

Computation is float32 throughout (float32 ``tl.dot`` without TF32; float16/bfloat16 operands of ``tl.dot``
are rounded to the input dtype as in FlashAttention) with the guards of **float32**
(:mod:`geoattn.manifolds.numerics`), also for float16/bfloat16 inputs.

One-pass CAT (``_cat_attention_fwd_kernel``, forward only): with shared projections the three branches'
points are per-row rescalings of the same tangent heads, :math:`x^b = s^b(x)\,x` (``expmap0`` and
``project`` only rescale), so one Gram tile :math:`G = U_Q U_K^\top` serves all three
(:math:`G^b_{ij} = s^b_{q,i} s^b_{k,j} G_{ij}`, :math:`a^b = (s^b_q)^2\|u_q\|^2`), and one load of
:math:`U_V` serves the three value sums (:math:`\tilde v^b_j = \lambda^b_j s^b_{v,j} u_{v,j}`). Three
online softmaxes run side by side, each with the distance epilogue above; the epilogue maps each midpoint back
with :math:`\log_0^{\kappa_b}` and mixes with the routing weights. The per-row factors are ``O((N + M) H)``
torch work.
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
from ..triton_math import artan_ratio, tan_ratio

__all__ = [
    "ManifoldAttentionFunction",
    "cat_attention_triton",
    "manifold_attention_bwd",
    "manifold_attention_fwd",
    "manifold_attention_triton",
]

_LOG2E: tl.constexpr = tl.constexpr(1.4426950408889634)
_LN2: tl.constexpr = tl.constexpr(math.log(2.0))
_PI: tl.constexpr = tl.constexpr(math.pi)
# Below this z, Phi, (2 z Phi - theta^2)/z^2 and (for small |k|) arcosh(1 + z)^2 use their Taylor series
# (6-7 terms, relative truncation error < 1e-7 at the threshold); above it the exact forms lose at most
# ~1e-5 relatively to the absolute error of lg2.approx.
_Z_SERIES: tl.constexpr = tl.constexpr(0.2)
# For k < -K_EXACT the forward's theta^2 = log(...)^2 needs no series: its absolute error (~2e-7 / |k| at
# most, over z < Z_SERIES) is below float32 rounding of d^2. Heads closer to k = 0 take the series.
_K_EXACT: tl.constexpr = tl.constexpr(0.5)
_TINY: tl.constexpr = tl.constexpr(1e-30)  # rsqrt guard at z = 0 (those lanes take the series)
# Floor of 1 + k|x|^2 (k < 0: the distance of x to the ball's boundary). Points this close to the boundary
# are not representable in float32 anyway; the floor keeps z and z^2 finite (< 1e26).
_MIN_CONFORMAL = 1e-6
_MIN_CONFORMAL_TL: tl.constexpr = tl.constexpr(_MIN_CONFORMAL)

# ---------------------------------------------------------------------------------------------------------
# Shared pieces of the kernels
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _dot(a, b, acc, INTERPRET: tl.constexpr, DOT_DTYPE: tl.constexpr):
    """``acc + a @ b`` in float32: operands rounded to the input dtype (``DOT_DTYPE``), or upcast to
    float32 under the interpreter (``INTERPRET``, whose ``dot`` multiplies the raw storage of bfloat16)."""
    if INTERPRET:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    return tl.dot(a.to(DOT_DTYPE), b.to(DOT_DTYPE), acc, input_precision="ieee")


@triton.jit
def _load_tile(ptr, offs_r, mask_r, n_cols, BLOCK_C: tl.constexpr, ROWS_MASKED: tl.constexpr = True):
    """Rows ``offs_r`` of a contiguous ``[rows, n_cols]`` matrix: ``[len(offs_r), BLOCK_C]``, zero-padded;
    ``ROWS_MASKED=False``: every row exists, ``mask_r`` is ignored (no per-row compare in complete tiles)."""
    offs_c = tl.arange(0, BLOCK_C)
    mask = offs_c[None, :] < n_cols
    if ROWS_MASKED:
        mask = mask_r[:, None] & mask
    return tl.load(ptr + offs_r[:, None] * n_cols + offs_c[None, :], mask=mask, other=0.0)


@triton.jit
def _store_tile(ptr, value, offs_r, mask_r, n_cols, BLOCK_C: tl.constexpr):
    offs_c = tl.arange(0, BLOCK_C)
    tl.store(
        ptr + offs_r[:, None] * n_cols + offs_c[None, :],
        value.to(ptr.dtype.element_ty),
        mask=mask_r[:, None] & (offs_c[None, :] < n_cols),
    )


@triton.jit
def _mask_scores(s, offs_n, offs_m, mask_m, kpm_ptr, COLS: tl.constexpr, HAS_KPM: tl.constexpr,
                 CAUSAL: tl.constexpr):  # fmt: skip
    """Scores ``s [BLOCK_N, BLOCK_M]`` with ``-inf`` where key ``j`` is missing or padding (``COLS``: one
    add of a per-key bias) or, ``CAUSAL``, where ``j > i``."""
    if COLS:
        ok = mask_m
        if HAS_KPM:
            ok = ok & (tl.load(kpm_ptr + offs_m, mask=mask_m, other=1) == 0)
        s = s + tl.where(ok, 0.0, float("-inf"))[None, :]
    if CAUSAL:
        s = tl.where(offs_m[None, :] <= offs_n[:, None], s, float("-inf"))
    return s


@triton.jit
def _log2(x, FAST: tl.constexpr):
    """``log2`` of ``x >= 1``; ``FAST``: the hardware ``lg2.approx.ftz.f32`` (one MUFU op, absolute error
    < 2^-22) instead of the ~20-instruction accurate ``log2``. ``ftz`` drops the subnormal-input fix-up
    (a compare and two predicated instructions per score) that arguments >= 1 never need. Compiled kernels
    only: the interpreter runs no inline PTX."""
    if FAST:
        return tl.inline_asm_elementwise(
            "lg2.approx.ftz.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True, pack=1
        )
    return tl.log2(x)


@triton.jit
def _acos_1m(z):
    """``arccos(1 - z)`` for ``z`` in [0, 2], Cephes ``acosf``: ``2 asin(sqrt(z/2))`` (z < 1/2),
    ``pi - 2 asin(sqrt(1 - z/2))`` (z > 3/2), ``pi/2 - asin(1 - z)`` between, ``asin`` by a degree-11 odd
    minimax polynomial on [0, 1/2] (relative error < 3e-7, also as z -> 0). One ``sqrt``, no division."""
    y = 1.0 - z
    low = z < 0.5
    high = z > 1.5
    x2 = tl.where(low, 0.5 * z, tl.where(high, 1.0 - 0.5 * z, y * y))
    x = tl.where(low | high, tl.sqrt(x2), y)
    p = 4.2163199048e-2 * x2 + 2.4181311049e-2
    p = p * x2 + 4.5470025998e-2
    p = p * x2 + 7.4953002686e-2
    p = p * x2 + 1.6666752422e-1
    asin = x + x * x2 * p
    # tensors on the left of constexprs in arithmetic (constexpr op tensor would stay a constexpr)
    return tl.where(low, 2.0 * asin, tl.where(high, asin * -2.0 + _PI, -asin + 0.5 * _PI))


@triton.jit
def _arcosh_sq_series(z):
    """``(arcosh(1 + z) / ln 2)^2`` for small ``z``: ``2z - z^2/3 + 4z^3/45 - z^4/35 + 16z^5/1575 - 8z^6/2079``
    (over ln(2)^2; relative truncation error < 2e-8 at z = Z_SERIES)."""
    p = -8.0 / 2079.0 * z + 16.0 / 1575.0
    p = p * z - 1.0 / 35.0
    p = p * z + 4.0 / 45.0
    p = p * z - 1.0 / 3.0
    p = p * z + 2.0
    return p * z * (1.0 / (_LN2 * _LN2))


@triton.jit
def _phi_series(x):
    """``Phi = theta / sin_k(theta)`` as a series in ``x = z`` (k > 0: ``arccos(1 - z) / sqrt(z (2 - z))``)
    or ``x = -z`` (k < 0: ``arcosh(1 + z) / sqrt(z (z + 2))``): ``1 + x/3 + 2x^2/15 + 2x^3/35 + 8x^4/315 +
    8x^5/693 + 16x^6/3003``."""
    p = 16.0 / 3003.0 * x + 8.0 / 693.0
    p = p * x + 8.0 / 315.0
    p = p * x + 2.0 / 35.0
    p = p * x + 2.0 / 15.0
    p = p * x + 1.0 / 3.0
    return p * x + 1.0


@triton.jit
def _psi_series(x):
    """``sgn(k) (2 z Phi - theta^2) / z^2`` as a series in ``x`` (as :func:`_phi_series`): ``1/3 + 8x/45 +
    3x^2/35 + 64x^3/1575 + 40x^4/2079 + 64x^5/7007 + 28x^6/6435``."""
    p = 28.0 / 6435.0 * x + 64.0 / 7007.0
    p = p * x + 40.0 / 2079.0
    p = p * x + 64.0 / 1575.0
    p = p * x + 3.0 / 35.0
    p = p * x + 8.0 / 45.0
    return p * x + 1.0 / 3.0


@triton.jit
def _head_consts(kk, bb, sm_scale, SIGN: tl.constexpr, DISTANCE: tl.constexpr):
    """Per-head scalars of the epilogue: ``(cst, rk, wk, hk, dk)`` with scores ``s * log2(e) = cst * Q``,
    ``rho^2 = rk z``, ``w = k rho^2 = wk z``, ``dd^2/dk|rho = hk * hz`` and ``d^2 = dk * Q`` (tangent dot:
    ``ds/dbeta = dk * G``)."""
    zero = kk * 0.0
    if not DISTANCE:
        return bb * sm_scale * _LOG2E, zero, zero, zero, zero + sm_scale
    if SIGN == 0:  # Q = z = t = |q - k|^2, d^2 = 4t
        return bb * (-4.0 * _LOG2E), zero + 1.0, zero, zero + 4.0 / 3.0, zero + 4.0
    rk = 0.5 / tl.abs(kk)
    hk = 1.0 / (kk * kk)
    if SIGN > 0:  # Q = theta^2, d^2 = theta^2 / k
        return -bb / kk * _LOG2E, rk, zero + 0.5, hk, 1.0 / kk
    return bb / kk * _LN2, rk, zero - 0.5, hk, -1.0 / kk * (_LN2 * _LN2)  # Q = log2(cosh arg)^2


@triton.jit
def _dist_q(t, fa, rb, SIGN: tl.constexpr, SERIES: tl.constexpr, FAST: tl.constexpr):
    """``Q [BLOCK_N, BLOCK_M]`` of the forward (scores ``cst * Q``) from ``t = |q - k|^2 >= 0``, the row
    factor ``fa = 2|k| r_i [BLOCK_N, 1]`` and the column factor ``rb = r_j [1, BLOCK_M]``."""
    if SIGN == 0:
        return t
    z = t * fa * rb
    if SIGN > 0:
        theta = _acos_1m(tl.minimum(z, 2.0))
        return theta * theta
    lg = _log2(1.0 + z + tl.sqrt(z * (z + 2.0)), FAST)
    if SERIES:
        return tl.where(z < _Z_SERIES, _arcosh_sq_series(z), lg * lg)
    return lg * lg


@triton.jit
def _dist_bwd(t_raw, fa, rb, SIGN: tl.constexpr, SERIES: tl.constexpr, FAST: tl.constexpr):
    """What the backward needs per score: ``(Q, z, Phi, hz, keep)`` with ``Q`` as :func:`_dist_q`,
    ``Phi = theta / sin_k(theta)`` (``dd^2/drho^2 = 4 Phi``), ``hz`` with ``dd^2/dk|rho = hk * hz`` and
    ``keep`` where a gradient passes (the reference clamps ``|q - k|^2`` at 0 and, k > 0, the antipode)."""
    keep = t_raw >= 0.0
    t = tl.maximum(t_raw, 0.0)
    if SIGN == 0:
        return t, t, tl.full(t.shape, 1.0, tl.float32), t * t, keep
    z = t * fa * rb
    small = z < _Z_SERIES
    if SIGN > 0:
        keep = keep & (z < 2.0)
        z = tl.minimum(z, 2.0)
        theta = _acos_1m(z)
        q = theta * theta
        phi = tl.where(small, _phi_series(z), theta * tl.rsqrt(tl.maximum(z * (2.0 - z), _TINY)))
        hz = tl.where(small, z * z * _psi_series(z), 2.0 * z * phi - q)
        return q, z, phi, hz, keep
    z2 = z * (z + 2.0)
    rsq = tl.rsqrt(tl.maximum(z2, _TINY))  # 1 / sinh(theta), and sinh(theta) = z2 * rsq
    lg = _log2(1.0 + z + z2 * rsq, FAST)
    theta = lg * _LN2
    q = lg * lg
    if SERIES:
        q = tl.where(small, _arcosh_sq_series(z), q)
    phi = tl.where(small, _phi_series(-z), theta * rsq)
    hz = tl.where(small, z * z * _psi_series(-z), theta * theta - 2.0 * z * phi)
    return q, z, phi, hz, keep


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


@triton.jit
def _row_stats(n2_ptr, r_ptr, offs, mask, DISTANCE: tl.constexpr, ROWS_MASKED: tl.constexpr = True):
    """``(|x|^2, r = 1/(1 + k|x|^2))`` of rows ``offs`` (zeros and ones without ``DISTANCE``);
    ``ROWS_MASKED=False``: every row exists, ``mask`` is ignored."""
    if DISTANCE:
        if not ROWS_MASKED:
            return tl.load(n2_ptr + offs), tl.load(r_ptr + offs)
        return tl.load(n2_ptr + offs, mask=mask, other=0.0), tl.load(r_ptr + offs, mask=mask, other=1.0)
    return tl.zeros(offs.shape, tl.float32), tl.full(offs.shape, 1.0, tl.float32)


# ---------------------------------------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _fwd_tiles(
    acc, dacc, m_i, l_i, lo, hi, q, a, fa, cst, offs_n,
    k_ptr, v_ptr, c_ptr, kn2_ptr, kr_ptr, kpm_ptr, M,
    SIGN: tl.constexpr, SERIES: tl.constexpr, DISTANCE: tl.constexpr, MIDPOINT: tl.constexpr,
    CAUSAL: tl.constexpr, HAS_KPM: tl.constexpr, MASKED: tl.constexpr,
    D: tl.constexpr, DV: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, INTERPRET: tl.constexpr,
):  # fmt: skip
    """Key tiles ``[lo, hi)`` of the forward's online softmax; ``MASKED``: apply the key and causal masks
    (tiles with missing, padding or future keys), else none."""
    dot_dtype = v_ptr.dtype.element_ty
    for m0 in range(lo, hi, BLOCK_M):
        offs_m = m0 + tl.arange(0, BLOCK_M)
        mask_m = offs_m < M  # only read in MASKED tiles: the others are complete, loaded without compares
        kt = _load_tile(k_ptr, offs_m, mask_m, D, BLOCK_D, MASKED)  # [BLOCK_M, BLOCK_D]
        g = _dot(q, tl.trans(kt), tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32), INTERPRET, dot_dtype)
        if DISTANCE:
            b, rb = _row_stats(kn2_ptr, kr_ptr, offs_m, mask_m, DISTANCE, MASKED)
            t = tl.maximum(a + b[None, :] - 2.0 * g, 0.0)
            s = cst * _dist_q(t, fa, rb[None, :], SIGN, SERIES, not INTERPRET)
        else:
            s = cst * g
        if MASKED:
            s = _mask_scores(s, offs_n, offs_m, mask_m, kpm_ptr, True, HAS_KPM, CAUSAL)
        p, alpha, m_i, l_i = _online_softmax(s, m_i, l_i)
        vt = _load_tile(v_ptr, offs_m, mask_m, DV, BLOCK_DV, MASKED)  # [BLOCK_M, BLOCK_DV]
        acc = _dot(p, vt, acc * alpha[:, None], INTERPRET, dot_dtype)
        if MIDPOINT:
            cj = tl.load(c_ptr + offs_m, mask=mask_m, other=0.0) if MASKED else tl.load(c_ptr + offs_m)
            dacc = dacc * alpha + tl.sum(p * cj[None, :], axis=1)
    return acc, dacc, m_i, l_i


@triton.jit
def _fwd_sweep(
    q, a, ra, kk, bb, sm_scale, offs_n, n0,
    k_ptr, v_ptr, c_ptr, kn2_ptr, kr_ptr, kpm_ptr, M,
    SIGN: tl.constexpr, SERIES: tl.constexpr, DISTANCE: tl.constexpr, MIDPOINT: tl.constexpr,
    CAUSAL: tl.constexpr, HAS_KPM: tl.constexpr,
    D: tl.constexpr, DV: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, INTERPRET: tl.constexpr,
):  # fmt: skip
    """The whole key sweep of one query block for one sign of the curvature: unmasked tiles first (complete,
    no padding, entirely at or before the block's first query when causal), then the masked rest."""
    cst, _, _, _, _ = _head_consts(kk, bb, sm_scale, SIGN, DISTANCE)
    fa = (2.0 * tl.abs(kk)) * ra  # [BLOCK_N, 1]
    m_i = tl.full((BLOCK_N,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_N,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_N, BLOCK_DV), dtype=tl.float32)
    dacc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    if CAUSAL:
        hi = tl.minimum(M, n0 + BLOCK_N)
        full = tl.minimum(M, n0 + 1) // BLOCK_M * BLOCK_M
    else:
        hi = M
        full = M // BLOCK_M * BLOCK_M
    lo = 0
    if not HAS_KPM:  # with key padding every tile is masked
        acc, dacc, m_i, l_i = _fwd_tiles(
            acc, dacc, m_i, l_i, 0, full, q, a, fa, cst, offs_n, k_ptr, v_ptr, c_ptr, kn2_ptr, kr_ptr, kpm_ptr,
            M, SIGN, SERIES, DISTANCE, MIDPOINT, CAUSAL, HAS_KPM, False, D, DV, BLOCK_N, BLOCK_M, BLOCK_D,
            BLOCK_DV, INTERPRET,
        )  # fmt: skip
        lo = full
    return _fwd_tiles(
        acc, dacc, m_i, l_i, lo, hi, q, a, fa, cst, offs_n, k_ptr, v_ptr, c_ptr, kn2_ptr, kr_ptr, kpm_ptr, M,
        SIGN, SERIES, DISTANCE, MIDPOINT, CAUSAL, HAS_KPM, True, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV,
        INTERPRET,
    )  # fmt: skip


@triton.jit
def _manifold_attention_fwd_kernel(
    q_ptr,  # [B*H, N, D] input dtype (points, or log0 q for the tangent dot)
    k_ptr,  # [B*H, M, D]
    v_ptr,  # [B*H, M, DV] input dtype: lambda v (midpoint) or log0 v (tangent mean)
    c_ptr,  # [B*H, M] float32: lambda - 1 (midpoint only)
    qn2_ptr,  # [B*H, N] float32 |q|^2 (distance only)
    qr_ptr,  # [B*H, N] float32 1 / (1 + k |q|^2) (distance only)
    kn2_ptr,  # [B*H, M] float32 |k|^2 (distance only)
    kr_ptr,  # [B*H, M] float32 1 / (1 + k |k|^2) (distance only)
    kappa_ptr,  # [H] float32
    beta_ptr,  # [H] float32
    kpm_ptr,  # [B, M] uint8, 1 = padding (HAS_KPM only)
    out_ptr,  # [B*H, N, DV] input dtype
    num_ptr,  # [B*H, N, DV] float32 normalised sum of p v~
    den_ptr,  # [B*H, N] float32 normalised sum of p c (midpoint only)
    lse_ptr,  # [B*H, N] float32 base-2 log-sum-exp of the scores in log2 units (+inf: empty row)
    H, N, M,
    N_BUCKET, M_BUCKET,  # autotune keys only
    sm_scale, min_den, artanh_bound,
    D: tl.constexpr, DV: tl.constexpr,
    DISTANCE: tl.constexpr, MIDPOINT: tl.constexpr, CAUSAL: tl.constexpr, HAS_KPM: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
    INTERPRET: tl.constexpr,
):  # fmt: skip
    pid_n = tl.program_id(0)
    pid_bh, pid_b, kk, bb = _head(H, kappa_ptr, beta_ptr)
    n0 = pid_n * BLOCK_N
    offs_n = n0 + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    q = _load_tile(q_ptr + pid_bh * N * D, offs_n, mask_n, D, BLOCK_D)  # [BLOCK_N, BLOCK_D]
    a, ra = _row_stats(qn2_ptr + pid_bh * N, qr_ptr + pid_bh * N, offs_n, mask_n, DISTANCE)
    a, ra = a[:, None], ra[:, None]  # [BLOCK_N, 1]
    k_ptr += pid_bh * M * D
    v_ptr += pid_bh * M * DV
    c_ptr += pid_bh * M
    kn2_ptr += pid_bh * M
    kr_ptr += pid_bh * M
    kpm_ptr += pid_b * M
    # One branch on the head's curvature, outside the tile loops (each arm is a specialised copy of them).
    if DISTANCE:
        if kk < -_K_EXACT:
            acc, dacc, m_i, l_i = _fwd_sweep(
                q, a, ra, kk, bb, sm_scale, offs_n, n0, k_ptr, v_ptr, c_ptr, kn2_ptr, kr_ptr, kpm_ptr, M,
                -1, False, DISTANCE, MIDPOINT, CAUSAL, HAS_KPM, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV,
                INTERPRET,
            )  # fmt: skip
        elif kk < 0:
            acc, dacc, m_i, l_i = _fwd_sweep(
                q, a, ra, kk, bb, sm_scale, offs_n, n0, k_ptr, v_ptr, c_ptr, kn2_ptr, kr_ptr, kpm_ptr, M,
                -1, True, DISTANCE, MIDPOINT, CAUSAL, HAS_KPM, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV,
                INTERPRET,
            )  # fmt: skip
        elif kk > 0:
            acc, dacc, m_i, l_i = _fwd_sweep(
                q, a, ra, kk, bb, sm_scale, offs_n, n0, k_ptr, v_ptr, c_ptr, kn2_ptr, kr_ptr, kpm_ptr, M,
                1, False, DISTANCE, MIDPOINT, CAUSAL, HAS_KPM, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV,
                INTERPRET,
            )  # fmt: skip
        else:
            acc, dacc, m_i, l_i = _fwd_sweep(
                q, a, ra, kk, bb, sm_scale, offs_n, n0, k_ptr, v_ptr, c_ptr, kn2_ptr, kr_ptr, kpm_ptr, M,
                0, False, DISTANCE, MIDPOINT, CAUSAL, HAS_KPM, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV,
                INTERPRET,
            )  # fmt: skip
    else:  # the tangent dot: scores free of the curvature's sign
        acc, dacc, m_i, l_i = _fwd_sweep(
            q, a, ra, kk, bb, sm_scale, offs_n, n0, k_ptr, v_ptr, c_ptr, kn2_ptr, kr_ptr, kpm_ptr, M,
            0, False, DISTANCE, MIDPOINT, CAUSAL, HAS_KPM, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV, INTERPRET,
        )  # fmt: skip

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
# Backward: dK/dV over key blocks, dQ (and the per-row curvature/temperature sums) over query blocks
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _bwd_tile(
    q, kt, vt, a, fa, b, rb, cj, lse, dnum, dden, delta, cst, offs_n, offs_m, mask_m, kpm_ptr,
    SIGN: tl.constexpr, SERIES: tl.constexpr, DISTANCE: tl.constexpr, MIDPOINT: tl.constexpr,
    HAS_KPM: tl.constexpr, MASK_COLS: tl.constexpr, MASK_CAUSAL: tl.constexpr,
    INTERPRET: tl.constexpr, DOT_DTYPE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
):  # fmt: skip
    """One recomputed tile of either backward kernel, all ``[BLOCK_N, BLOCK_M]`` float32: ``(p, ds, e, Q, z,
    hz)`` with ``ds = dL/ds`` and ``e = ds * Phi`` (0 where no gradient passes; ``ds`` for the tangent dot).
    ``a, fa [BLOCK_N, 1]``, ``b, rb [1, BLOCK_M]``, ``lse, dden, delta [BLOCK_N]``, ``cj [BLOCK_M]``."""
    zeros = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    g = _dot(q, tl.trans(kt), zeros, INTERPRET, DOT_DTYPE)
    if DISTANCE:
        qq, z, phi, hz, keep = _dist_bwd(a + b - 2.0 * g, fa, rb, SIGN, SERIES, not INTERPRET)
    else:
        qq, z, phi, hz, keep = g, g, g, g, g == g
    s = _mask_scores(cst * qq, offs_n, offs_m, mask_m, kpm_ptr, MASK_COLS, HAS_KPM, MASK_CAUSAL)
    p = tl.exp2(s - lse[:, None])
    dp = _dot(dnum, tl.trans(vt), zeros, INTERPRET, DOT_DTYPE)
    if MIDPOINT:
        dp += dden[:, None] * cj[None, :]
    ds = p * (dp - delta[:, None])
    e = ds
    if DISTANCE:
        e = tl.where(keep, ds * phi, 0.0)
    return p, ds, e, qq, z, hz


@triton.jit
def _query_rows(q_ptr, qn2_ptr, qr_ptr, lse_ptr, dnum_ptr, dden_ptr, delta_ptr, offs_n, mask_n,
                D: tl.constexpr, DV: tl.constexpr, DISTANCE: tl.constexpr, MIDPOINT: tl.constexpr,
                BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):  # fmt: skip
    """What the backward reads per query row (pointers at this (batch, head)): ``q [BLOCK_N, BLOCK_D]``,
    ``|q|^2``, ``r``, lse (``+inf`` past ``N``: p = 0), ``dnum [BLOCK_N, BLOCK_DV]``, dden (lse without the
    midpoint: unused) and delta."""
    q = _load_tile(q_ptr, offs_n, mask_n, D, BLOCK_D)
    a, ra = _row_stats(qn2_ptr, qr_ptr, offs_n, mask_n, DISTANCE)
    lse = tl.load(lse_ptr + offs_n, mask=mask_n, other=float("inf"))
    dnum = _load_tile(dnum_ptr, offs_n, mask_n, DV, BLOCK_DV)
    dden = lse
    if MIDPOINT:
        dden = tl.load(dden_ptr + offs_n, mask=mask_n, other=0.0)
    delta = tl.load(delta_ptr + offs_n, mask=mask_n, other=0.0)
    return q, a, ra, lse, dnum, dden, delta


@triton.jit
def _dkdv_tiles(
    dk, dv, dc, c1, c2, lo, hi, kt, vt, b, rb, cj, offs_m, mask_m, two_k, cst,
    q_ptr, qn2_ptr, qr_ptr, lse_ptr, dnum_ptr, dden_ptr, delta_ptr, N,
    SIGN: tl.constexpr, SERIES: tl.constexpr, DISTANCE: tl.constexpr, MIDPOINT: tl.constexpr,
    MASKED: tl.constexpr, D: tl.constexpr, DV: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, INTERPRET: tl.constexpr,
):  # fmt: skip
    """Query tiles ``[lo, hi)`` for one key block: ``dk`` (before its row/column factors), ``dv``, ``dc`` and
    the column sums ``c1 = sum_i e r_i``, ``c2 = sum_i e z``. ``MASKED``: the causal mask (the only one this
    kernel needs: missing and padding keys touch only their own, unstored or zeroed, columns)."""
    dot_dtype = q_ptr.dtype.element_ty
    for n0 in range(lo, hi, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        q, a, ra, lse, dnum, dden, delta = _query_rows(
            q_ptr, qn2_ptr, qr_ptr, lse_ptr, dnum_ptr, dden_ptr, delta_ptr, offs_n, offs_n < N,
            D, DV, DISTANCE, MIDPOINT, BLOCK_D, BLOCK_DV,
        )  # fmt: skip
        p, ds, e, _, z, _ = _bwd_tile(
            q, kt, vt, a[:, None], (two_k * ra)[:, None], b[None, :], rb[None, :], cj, lse, dnum, dden, delta,
            cst, offs_n, offs_m, mask_m, q_ptr, SIGN, SERIES, DISTANCE, MIDPOINT, False, False, MASKED,
            INTERPRET, dot_dtype, BLOCK_N, BLOCK_M,
        )  # fmt: skip
        dv = _dot(tl.trans(p), dnum, dv, INTERPRET, dot_dtype)
        if MIDPOINT:
            dc += tl.sum(p * dden[:, None], axis=0)
        if DISTANCE:
            er = e * ra[:, None]
            dk = _dot(tl.trans(er), q, dk, INTERPRET, dot_dtype)
            c1 += tl.sum(er, axis=0)
            c2 += tl.sum(e * z, axis=0)
        else:
            dk = _dot(tl.trans(ds), q, dk, INTERPRET, dot_dtype)
    return dk, dv, dc, c1, c2


@triton.jit
def _dkdv_sweep(
    kt, vt, b, rb, cj, offs_m, mask_m, m0, kk, bb, sm_scale,
    q_ptr, qn2_ptr, qr_ptr, lse_ptr, dnum_ptr, dden_ptr, delta_ptr, N,
    SIGN: tl.constexpr, SERIES: tl.constexpr, DISTANCE: tl.constexpr, MIDPOINT: tl.constexpr,
    CAUSAL: tl.constexpr, D: tl.constexpr, DV: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, INTERPRET: tl.constexpr,
):  # fmt: skip
    """All query tiles of one key block for one sign of the curvature: ``(dk, dv, dc)``. Causal: the tiles
    that cross the diagonal are masked, those below it are not, those above it are skipped."""
    cst, _, wk, _, _ = _head_consts(kk, bb, sm_scale, SIGN, DISTANCE)
    two_k = 2.0 * tl.abs(kk)
    dk = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
    dv = tl.zeros((BLOCK_M, BLOCK_DV), dtype=tl.float32)
    dc = tl.zeros((BLOCK_M,), dtype=tl.float32)
    c1 = tl.zeros((BLOCK_M,), dtype=tl.float32)
    c2 = tl.zeros((BLOCK_M,), dtype=tl.float32)
    lo = 0
    if CAUSAL:  # rows i < j see no key j; rows from `mid` on see every key of the block
        lo = m0 // BLOCK_N * BLOCK_N
        mid = tl.minimum(tl.cdiv(m0 + BLOCK_M - 1, BLOCK_N) * BLOCK_N, N)
        dk, dv, dc, c1, c2 = _dkdv_tiles(
            dk, dv, dc, c1, c2, lo, mid, kt, vt, b, rb, cj, offs_m, mask_m, two_k, cst,
            q_ptr, qn2_ptr, qr_ptr, lse_ptr, dnum_ptr, dden_ptr, delta_ptr, N,
            SIGN, SERIES, DISTANCE, MIDPOINT, True, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV, INTERPRET,
        )  # fmt: skip
        lo = mid
    dk, dv, dc, c1, c2 = _dkdv_tiles(
        dk, dv, dc, c1, c2, lo, N, kt, vt, b, rb, cj, offs_m, mask_m, two_k, cst,
        q_ptr, qn2_ptr, qr_ptr, lse_ptr, dnum_ptr, dden_ptr, delta_ptr, N,
        SIGN, SERIES, DISTANCE, MIDPOINT, False, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV, INTERPRET,
    )  # fmt: skip
    if DISTANCE:  # dL/dG_ij = 8 beta r_i r_j e_ij; dL/db_j = -4 beta r_j sum_i e_ij (r_i - w_ij)
        db = (-4.0 * bb) * rb * (c1 - wk * c2)
        dk = (8.0 * bb) * rb[:, None] * dk + 2.0 * kt.to(tl.float32) * db[:, None]
    else:
        dk = (bb * sm_scale) * dk
    return dk, dv, dc


@triton.jit
def _manifold_attention_bwd_dkdv_kernel(
    q_ptr, k_ptr, v_ptr, c_ptr, qn2_ptr, qr_ptr, kn2_ptr, kr_ptr, kappa_ptr, beta_ptr, kpm_ptr,
    lse_ptr,  # [B*H, N] float32 (forward)
    dnum_ptr,  # [B*H, N, DV] float32 dL/dnum
    dden_ptr,  # [B*H, N] float32 dL/dden (midpoint only)
    delta_ptr,  # [B*H, N] float32 dnum . num + dden den
    dk_ptr,  # [B*H, M, D] float32 out
    dv_ptr,  # [B*H, M, DV] float32 out
    dc_ptr,  # [B*H, M] float32 out (midpoint only)
    H, N, M, N_BUCKET, M_BUCKET, sm_scale, min_den, artanh_bound,
    D: tl.constexpr, DV: tl.constexpr,
    DISTANCE: tl.constexpr, MIDPOINT: tl.constexpr, CAUSAL: tl.constexpr, HAS_KPM: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
    INTERPRET: tl.constexpr,
):  # fmt: skip
    pid_m = tl.program_id(0)
    pid_bh, pid_b, kk, bb = _head(H, kappa_ptr, beta_ptr)
    m0 = pid_m * BLOCK_M
    offs_m = m0 + tl.arange(0, BLOCK_M)
    mask_m = offs_m < M
    kt = _load_tile(k_ptr + pid_bh * M * D, offs_m, mask_m, D, BLOCK_D)  # [BLOCK_M, BLOCK_D]
    vt = _load_tile(v_ptr + pid_bh * M * DV, offs_m, mask_m, DV, BLOCK_DV)  # [BLOCK_M, BLOCK_DV]
    b, rb = _row_stats(kn2_ptr + pid_bh * M, kr_ptr + pid_bh * M, offs_m, mask_m, DISTANCE)
    cj = b
    if MIDPOINT:
        cj = tl.load(c_ptr + pid_bh * M + offs_m, mask=mask_m, other=0.0)
    q_ptr += pid_bh * N * D
    dnum_ptr += pid_bh * N * DV
    qn2_ptr += pid_bh * N
    qr_ptr += pid_bh * N
    lse_ptr += pid_bh * N
    dden_ptr += pid_bh * N
    delta_ptr += pid_bh * N
    if DISTANCE:  # one branch on the curvature, outside the tile loops, as in the forward
        if kk < -_K_EXACT:
            dk, dv, dc = _dkdv_sweep(
                kt, vt, b, rb, cj, offs_m, mask_m, m0, kk, bb, sm_scale,
                q_ptr, qn2_ptr, qr_ptr, lse_ptr, dnum_ptr, dden_ptr, delta_ptr, N,
                -1, False, DISTANCE, MIDPOINT, CAUSAL, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV, INTERPRET,
            )  # fmt: skip
        elif kk < 0:
            dk, dv, dc = _dkdv_sweep(
                kt, vt, b, rb, cj, offs_m, mask_m, m0, kk, bb, sm_scale,
                q_ptr, qn2_ptr, qr_ptr, lse_ptr, dnum_ptr, dden_ptr, delta_ptr, N,
                -1, True, DISTANCE, MIDPOINT, CAUSAL, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV, INTERPRET,
            )  # fmt: skip
        elif kk > 0:
            dk, dv, dc = _dkdv_sweep(
                kt, vt, b, rb, cj, offs_m, mask_m, m0, kk, bb, sm_scale,
                q_ptr, qn2_ptr, qr_ptr, lse_ptr, dnum_ptr, dden_ptr, delta_ptr, N,
                1, False, DISTANCE, MIDPOINT, CAUSAL, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV, INTERPRET,
            )  # fmt: skip
        else:
            dk, dv, dc = _dkdv_sweep(
                kt, vt, b, rb, cj, offs_m, mask_m, m0, kk, bb, sm_scale,
                q_ptr, qn2_ptr, qr_ptr, lse_ptr, dnum_ptr, dden_ptr, delta_ptr, N,
                0, False, DISTANCE, MIDPOINT, CAUSAL, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV, INTERPRET,
            )  # fmt: skip
    else:
        dk, dv, dc = _dkdv_sweep(
            kt, vt, b, rb, cj, offs_m, mask_m, m0, kk, bb, sm_scale,
            q_ptr, qn2_ptr, qr_ptr, lse_ptr, dnum_ptr, dden_ptr, delta_ptr, N,
            0, False, DISTANCE, MIDPOINT, CAUSAL, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV, INTERPRET,
        )  # fmt: skip
    if HAS_KPM:  # padding keys: no attention, no gradient (their recomputed p were never masked)
        pad = tl.load(kpm_ptr + pid_b * M + offs_m, mask=mask_m, other=1) != 0
        dk = tl.where(pad[:, None], 0.0, dk)
        dv = tl.where(pad[:, None], 0.0, dv)
        dc = tl.where(pad, 0.0, dc)
    _store_tile(dk_ptr + pid_bh * M * D, dk, offs_m, mask_m, D, BLOCK_D)
    _store_tile(dv_ptr + pid_bh * M * DV, dv, offs_m, mask_m, DV, BLOCK_DV)
    if MIDPOINT:
        tl.store(dc_ptr + pid_bh * M + offs_m, dc, mask=mask_m)


@triton.jit
def _dq_tiles(
    dq, r1, r2, r3, r4, r5, lo, hi, q, a, fa, lse, dnum, dden, delta, cst, offs_n,
    k_ptr, v_ptr, c_ptr, kn2_ptr, kr_ptr, kpm_ptr, M,
    SIGN: tl.constexpr, SERIES: tl.constexpr, DISTANCE: tl.constexpr, MIDPOINT: tl.constexpr,
    CAUSAL: tl.constexpr, HAS_KPM: tl.constexpr, KAPPA_GRAD: tl.constexpr, MASKED: tl.constexpr,
    D: tl.constexpr, DV: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, INTERPRET: tl.constexpr,
):  # fmt: skip
    """Key tiles ``[lo, hi)`` for one query block: ``dq`` (before its row factors) and the row sums
    ``r1 = sum_j e r_j``, ``r2 = sum_j e z``, ``r3 = sum_j e z b_j r_j``, ``r4 = sum_j ds Q`` (tangent dot:
    ``ds G``), ``r5 = sum_j ds hz`` (``r3``, ``r5`` only with ``KAPPA_GRAD``)."""
    dot_dtype = v_ptr.dtype.element_ty
    for m0 in range(lo, hi, BLOCK_M):
        offs_m = m0 + tl.arange(0, BLOCK_M)
        mask_m = offs_m < M
        kt = _load_tile(k_ptr, offs_m, mask_m, D, BLOCK_D)
        vt = _load_tile(v_ptr, offs_m, mask_m, DV, BLOCK_DV)
        b, rb = _row_stats(kn2_ptr, kr_ptr, offs_m, mask_m, DISTANCE)
        cj = b
        if MIDPOINT:
            cj = tl.load(c_ptr + offs_m, mask=mask_m, other=0.0)
        _, ds, e, qq, z, hz = _bwd_tile(
            q, kt, vt, a, fa, b[None, :], rb[None, :], cj, lse, dnum, dden, delta, cst, offs_n, offs_m, mask_m,
            kpm_ptr, SIGN, SERIES, DISTANCE, MIDPOINT, HAS_KPM, MASKED, MASKED & CAUSAL, INTERPRET, dot_dtype,
            BLOCK_N, BLOCK_M,
        )  # fmt: skip
        r4 += tl.sum(ds * qq, axis=1)
        if DISTANCE:
            er = e * rb[None, :]
            dq = _dot(er, kt, dq, INTERPRET, dot_dtype)
            r1 += tl.sum(er, axis=1)
            ez = e * z
            r2 += tl.sum(ez, axis=1)
            if KAPPA_GRAD:
                r3 += tl.sum(ez * (b * rb)[None, :], axis=1)
                r5 += tl.sum(ds * hz, axis=1)
        else:
            dq = _dot(ds, kt, dq, INTERPRET, dot_dtype)
    return dq, r1, r2, r3, r4, r5


@triton.jit
def _dq_sweep(
    q, a, ra, lse, dnum, dden, delta, kk, bb, sm_scale, offs_n, n0,
    k_ptr, v_ptr, c_ptr, kn2_ptr, kr_ptr, kpm_ptr, M,
    SIGN: tl.constexpr, SERIES: tl.constexpr, DISTANCE: tl.constexpr, MIDPOINT: tl.constexpr,
    CAUSAL: tl.constexpr, HAS_KPM: tl.constexpr, KAPPA_GRAD: tl.constexpr,
    D: tl.constexpr, DV: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr, INTERPRET: tl.constexpr,
):  # fmt: skip
    """All key tiles of one query block for one sign of the curvature (unmasked tiles first, as the
    forward): ``(dq [BLOCK_N, BLOCK_D], dL/dkappa and dL/dbeta of each row [BLOCK_N])``."""
    cst, rk, wk, hk, dk_c = _head_consts(kk, bb, sm_scale, SIGN, DISTANCE)
    fa = ((2.0 * tl.abs(kk)) * ra)[:, None]
    dq = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
    r1 = tl.zeros((BLOCK_N,), dtype=tl.float32)
    r2, r3, r4, r5 = r1, r1, r1, r1
    if CAUSAL:
        hi = tl.minimum(M, n0 + BLOCK_N)
        full = tl.minimum(M, n0 + 1) // BLOCK_M * BLOCK_M
    else:
        hi = M
        full = M // BLOCK_M * BLOCK_M
    lo = 0
    if not HAS_KPM:
        dq, r1, r2, r3, r4, r5 = _dq_tiles(
            dq, r1, r2, r3, r4, r5, 0, full, q, a[:, None], fa, lse, dnum, dden, delta, cst, offs_n,
            k_ptr, v_ptr, c_ptr, kn2_ptr, kr_ptr, kpm_ptr, M, SIGN, SERIES, DISTANCE, MIDPOINT, CAUSAL, HAS_KPM,
            KAPPA_GRAD, False, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV, INTERPRET,
        )  # fmt: skip
        lo = full
    dq, r1, r2, r3, r4, r5 = _dq_tiles(
        dq, r1, r2, r3, r4, r5, lo, hi, q, a[:, None], fa, lse, dnum, dden, delta, cst, offs_n,
        k_ptr, v_ptr, c_ptr, kn2_ptr, kr_ptr, kpm_ptr, M, SIGN, SERIES, DISTANCE, MIDPOINT, CAUSAL, HAS_KPM,
        KAPPA_GRAD, True, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV, INTERPRET,
    )  # fmt: skip
    if DISTANCE:
        # dL/da_i = -4 beta r_i sum_j e (r_j - w); dL/dkappa = sum_j -beta ds hk hz + 4 beta e rho^2 (a r_i + b r_j)
        da = (-4.0 * bb) * ra * (r1 - wk * r2)
        dq = (8.0 * bb) * ra[:, None] * dq + 2.0 * q.to(tl.float32) * da[:, None]
        dkappa = (-bb * hk) * r5 + (4.0 * bb * rk) * (a * ra * r2 + r3)
        return dq, dkappa, -dk_c * r4
    return (bb * sm_scale) * dq, r5, dk_c * r4


@triton.jit
def _manifold_attention_bwd_dq_kernel(
    q_ptr, k_ptr, v_ptr, c_ptr, qn2_ptr, qr_ptr, kn2_ptr, kr_ptr, kappa_ptr, beta_ptr, kpm_ptr,
    lse_ptr, dnum_ptr, dden_ptr, delta_ptr,  # as the key-block kernel
    dq_ptr,  # [B*H, N, D] float32 out
    dkappa_ptr,  # [B*H, N] float32 out: each row's share of dL/dkappa (distance with KAPPA_GRAD only)
    dbeta_ptr,  # [B*H, N] float32 out: each row's share of dL/dbeta
    H, N, M, N_BUCKET, M_BUCKET, sm_scale, min_den, artanh_bound,
    D: tl.constexpr, DV: tl.constexpr,
    DISTANCE: tl.constexpr, MIDPOINT: tl.constexpr, CAUSAL: tl.constexpr, HAS_KPM: tl.constexpr,
    KAPPA_GRAD: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr,
    INTERPRET: tl.constexpr,
):  # fmt: skip
    pid_n = tl.program_id(0)
    pid_bh, pid_b, kk, bb = _head(H, kappa_ptr, beta_ptr)
    n0 = pid_n * BLOCK_N
    offs_n = n0 + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    q, a, ra, lse, dnum, dden, delta = _query_rows(
        q_ptr + pid_bh * N * D, qn2_ptr + pid_bh * N, qr_ptr + pid_bh * N, lse_ptr + pid_bh * N,
        dnum_ptr + pid_bh * N * DV, dden_ptr + pid_bh * N, delta_ptr + pid_bh * N, offs_n, mask_n,
        D, DV, DISTANCE, MIDPOINT, BLOCK_D, BLOCK_DV,
    )  # fmt: skip
    k_ptr += pid_bh * M * D
    v_ptr += pid_bh * M * DV
    c_ptr += pid_bh * M
    kn2_ptr += pid_bh * M
    kr_ptr += pid_bh * M
    kpm_ptr += pid_b * M
    if DISTANCE:  # one branch on the curvature, outside the tile loops, as in the forward
        if kk < -_K_EXACT:
            dq, dkappa, dbeta = _dq_sweep(
                q, a, ra, lse, dnum, dden, delta, kk, bb, sm_scale, offs_n, n0,
                k_ptr, v_ptr, c_ptr, kn2_ptr, kr_ptr, kpm_ptr, M, -1, False, DISTANCE, MIDPOINT, CAUSAL, HAS_KPM,
                KAPPA_GRAD, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV, INTERPRET,
            )  # fmt: skip
        elif kk < 0:
            dq, dkappa, dbeta = _dq_sweep(
                q, a, ra, lse, dnum, dden, delta, kk, bb, sm_scale, offs_n, n0,
                k_ptr, v_ptr, c_ptr, kn2_ptr, kr_ptr, kpm_ptr, M, -1, True, DISTANCE, MIDPOINT, CAUSAL, HAS_KPM,
                KAPPA_GRAD, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV, INTERPRET,
            )  # fmt: skip
        elif kk > 0:
            dq, dkappa, dbeta = _dq_sweep(
                q, a, ra, lse, dnum, dden, delta, kk, bb, sm_scale, offs_n, n0,
                k_ptr, v_ptr, c_ptr, kn2_ptr, kr_ptr, kpm_ptr, M, 1, False, DISTANCE, MIDPOINT, CAUSAL, HAS_KPM,
                KAPPA_GRAD, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV, INTERPRET,
            )  # fmt: skip
        else:
            dq, dkappa, dbeta = _dq_sweep(
                q, a, ra, lse, dnum, dden, delta, kk, bb, sm_scale, offs_n, n0,
                k_ptr, v_ptr, c_ptr, kn2_ptr, kr_ptr, kpm_ptr, M, 0, False, DISTANCE, MIDPOINT, CAUSAL, HAS_KPM,
                KAPPA_GRAD, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV, INTERPRET,
            )  # fmt: skip
        if KAPPA_GRAD:
            tl.store(dkappa_ptr + pid_bh * N + offs_n, dkappa, mask=mask_n)
    else:
        dq, _, dbeta = _dq_sweep(
            q, a, ra, lse, dnum, dden, delta, kk, bb, sm_scale, offs_n, n0,
            k_ptr, v_ptr, c_ptr, kn2_ptr, kr_ptr, kpm_ptr, M, 0, False, DISTANCE, MIDPOINT, CAUSAL, HAS_KPM,
            KAPPA_GRAD, D, DV, BLOCK_N, BLOCK_M, BLOCK_D, BLOCK_DV, INTERPRET,
        )  # fmt: skip
    _store_tile(dq_ptr + pid_bh * N * D, dq, offs_n, mask_n, D, BLOCK_D)
    tl.store(dbeta_ptr + pid_bh * N + offs_n, dbeta, mask=mask_n)


# ---------------------------------------------------------------------------------------------------------
# One-pass CAT (forward only): three geometries over shared tangent heads, one sweep over K/V
# ---------------------------------------------------------------------------------------------------------


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
def _cat_scores(t, fa, rb, kk, bb, FAST: tl.constexpr):
    """Distance scores in log2 units, ``-beta d^2 log2(e)``, of one branch: the epilogue of the per-head
    kernels with a (uniform) branch on the branch's curvature per tile."""
    if kk < -_K_EXACT:
        cst, _, _, _, _ = _head_consts(kk, bb, 1.0, -1, True)
        s = cst * _dist_q(t, fa, rb, -1, False, FAST)
    elif kk < 0:
        cst, _, _, _, _ = _head_consts(kk, bb, 1.0, -1, True)
        s = cst * _dist_q(t, fa, rb, -1, True, FAST)
    elif kk > 0:
        cst, _, _, _, _ = _head_consts(kk, bb, 1.0, 1, True)
        s = cst * _dist_q(t, fa, rb, 1, False, FAST)
    else:
        cst, _, _, _, _ = _head_consts(kk, bb, 1.0, 0, True)
        s = cst * _dist_q(t, fa, rb, 0, False, FAST)
    return s


@triton.jit
def _cat_branch_step(
    g, offs_m, mask_m, allowed, uv, sq, a, fa, stats_ptr, M, kk, bb, m_i, l_i, acc, dacc,
    INTERPRET: tl.constexpr, DOT_DTYPE: tl.constexpr,
):  # fmt: skip
    """One key tile of one branch. The branch's points are per-row rescalings of the shared tangent heads
    (``x^b = s^b x``), so its Gram tile is ``sq_i sk_j G`` and its value sum ``sum_j p_ij (lambda_j s^b_j) v_j``.
    ``stats_ptr`` points at the branch's ``[4, M]`` key statistics ``(sk, |k^b|^2, lambda s^b_v, lambda - 1)``;
    ``a = |q^b|^2``, ``fa = 2|k| / (1 + k a)`` per row."""
    sk = tl.load(stats_ptr + offs_m, mask=mask_m, other=0.0)
    b = tl.load(stats_ptr + M + offs_m, mask=mask_m, other=0.0)
    w = tl.load(stats_ptr + 2 * M + offs_m, mask=mask_m, other=0.0)
    c = tl.load(stats_ptr + 3 * M + offs_m, mask=mask_m, other=0.0)
    rb = 1.0 / tl.maximum(1.0 + kk * b, _MIN_CONFORMAL_TL)
    t = tl.maximum(a[:, None] + b[None, :] - 2.0 * (g * sq[:, None] * sk[None, :]), 0.0)
    s = tl.where(allowed, _cat_scores(t, fa[:, None], rb[None, :], kk, bb, not INTERPRET), float("-inf"))
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
def _cat_row_factor(a, kk):
    """``fa = 2|k| / (1 + k a)`` of a row with squared norm ``a`` (the row factor of ``z``)."""
    return (2.0 * tl.abs(kk)) / tl.maximum(1.0 + kk * a, _MIN_CONFORMAL_TL)


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
    f0, f1, f2 = _cat_row_factor(a0, k0), _cat_row_factor(a1, k1), _cat_row_factor(a2, k2)
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
            g, offs_m, mask_m, allowed, uv, sq0, a0, f0, ks0, M, k0, b0, m0, l0, acc0, d0,
            INTERPRET, dot_dtype,
        )  # fmt: skip
        m1, l1, acc1, d1 = _cat_branch_step(
            g, offs_m, mask_m, allowed, uv, sq1, a1, f1, ks1, M, k1, b1, m1, l1, acc1, d1,
            INTERPRET, dot_dtype,
        )  # fmt: skip
        m2, l2, acc2, d2 = _cat_branch_step(
            g, offs_m, mask_m, allowed, uv, sq2, a2, f2, ks2, M, k2, b2, m2, l2, acc2, d2,
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
# Problems below this many scores use one fixed config: autotuning compiles every config (each kernel has
# one copy of its tile loops per curvature sign), not worth it for small, often varying shapes.
_AUTOTUNE_MIN_SCORES = 1 << 24
# BLOCK_N is the query tile, BLOCK_M the key tile. Registers per thread from ptxas for sm_90a (bfloat16,
# D = 64, distance + midpoint; 255 is the cap, beyond it values spill): forward 128 x 64 / 8 warps 219,
# 64 x 32 / 4 warps 213, 64 x 64 / 4 warps 255; key-block backward (BLOCK_N queries per step, BLOCK_M keys per
# program) 32 x 64 / 8 warps 253, 16 x 64 / 4 warps 255 + 8 bytes spilled, 32 x 128 / 8 warps 28 bytes,
# 32 x 64 / 4 warps 268 bytes; query-block backward 32 x 32 / 4 warps 249, 64 x 16 / 4 warps 247,
# 64 x 32 / 8 warps 8 bytes spilled, 64 x 32 / 4 warps 80 bytes.
_FIXED: dict[str, dict[str, Any]] = {
    "fwd": {"BLOCK_N": 128, "BLOCK_M": 64, "num_warps": 8, "num_stages": 2},
    "dkdv": {"BLOCK_N": 32, "BLOCK_M": 64, "num_warps": 8, "num_stages": 2},
    "dq": {"BLOCK_N": 32, "BLOCK_M": 32, "num_warps": 4, "num_stages": 2},
    # One-pass CAT keeps three accumulators and three online softmaxes: 16 x 64 / 4 warps, 255 registers,
    # 8 bytes spilled.
    "cat": {"BLOCK_N": 16, "BLOCK_M": 64, "num_warps": 4, "num_stages": 2},
}
_CONFIGS: dict[str, list[triton.Config]] = {
    "fwd": [
        triton.Config({"BLOCK_N": 128, "BLOCK_M": 64}, num_warps=8, num_stages=2),
        triton.Config({"BLOCK_N": 128, "BLOCK_M": 64}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_N": 128, "BLOCK_M": 32}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_N": 64, "BLOCK_M": 64}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_N": 64, "BLOCK_M": 32}, num_warps=4, num_stages=3),
    ],
    "dkdv": [  # BLOCK_M keys per program, BLOCK_N queries per step
        triton.Config({"BLOCK_N": 32, "BLOCK_M": 64}, num_warps=8, num_stages=2),
        triton.Config({"BLOCK_N": 32, "BLOCK_M": 64}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_N": 32, "BLOCK_M": 128}, num_warps=8, num_stages=2),
        triton.Config({"BLOCK_N": 16, "BLOCK_M": 64}, num_warps=4, num_stages=3),
    ],
    "dq": [  # BLOCK_N queries per program, BLOCK_M keys per step
        triton.Config({"BLOCK_N": 32, "BLOCK_M": 32}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_N": 32, "BLOCK_M": 32}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_N": 64, "BLOCK_M": 16}, num_warps=4, num_stages=3),
        # not 64x32 with 8 warps: its layout replicates the tile, two threads compute every score
        # (benchmarks/kernel_sass.py: 136 instructions per score against 76-92 here)
    ],
    "cat": [
        triton.Config({"BLOCK_N": 16, "BLOCK_M": 64}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_N": 64, "BLOCK_M": 32}, num_warps=8, num_stages=2),
        triton.Config({"BLOCK_N": 32, "BLOCK_M": 64}, num_warps=8, num_stages=2),
    ],
}
_TUNE_KEY = ["D", "DV", "N_BUCKET", "M_BUCKET", "DISTANCE", "MIDPOINT", "CAUSAL"]


def _autotuned(kernel: Any, configs: list[triton.Config]) -> Any:
    """``kernel`` wrapped in ``triton.autotune`` (``None`` under the interpreter, which never tunes). Every
    kernel writes its outputs in full and accumulates nothing, so tuning runs need no buffer resets."""
    return None if triton_interpreting() else triton.autotune(configs=configs, key=_TUNE_KEY)(kernel)


# name -> (kernel, its autotuned twin, the block size along the grid's first axis). Every kernel takes
# N_BUCKET/M_BUCKET (autotune keys only) so that all launches share one signature.
_KERNELS: dict[str, tuple[Any, Any, str]] = {
    name: (kernel, _autotuned(kernel, _CONFIGS[name]), block)
    for name, kernel, block in (
        ("fwd", _manifold_attention_fwd_kernel, "BLOCK_N"),
        ("dkdv", _manifold_attention_bwd_dkdv_kernel, "BLOCK_M"),
        ("dq", _manifold_attention_bwd_dq_kernel, "BLOCK_N"),
        ("cat", _cat_attention_fwd_kernel, "BLOCK_N"),
    )
}


def _empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Allocation of every buffer a kernel must write in full (the tests poison it with NaN)."""
    return torch.empty(shape, dtype=dtype, device=device)


def _constants() -> tuple[float, float]:
    """(MIN_DENOM, 1 - ARTANH_CLAMP) of float32, the dtype every kernel computes in."""
    return min_denom(torch.float32), 1.0 - artanh_clamp(torch.float32)


def _launch(name: str, rows: int, bh: int, args: tuple[Any, ...], *, scores: int, **constexprs: Any) -> None:
    """Launch kernel ``name`` over ``(cdiv(rows, block), B*H)`` programs with the config for its size."""
    plain, tuned, block = _KERNELS[name]
    if rows * bh == 0:
        return
    kernel, meta = (
        (plain, _INTERPRET_BLOCKS)
        if triton_interpreting()
        else (plain, _FIXED[name])
        if scores < _AUTOTUNE_MIN_SCORES or tuned is None
        else (tuned, {})
    )

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


def _conformal(n2: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    """``r = 1 / (1 + k |x|^2)`` (half the conformal factor) of rows with squared norms ``n2 [B, H, n]`` and
    per-head curvatures ``kappa [H]``, float32; ``1 + k|x|^2`` is held at ``_MIN_CONFORMAL``."""
    return 1.0 / (1.0 + kappa.view(-1, 1) * n2).clamp_min(_MIN_CONFORMAL)


class _KernelInputs:
    """The tensors every kernel reads (contiguous, with the dummies of absent ones) and the constexpr flags.

    Built once in the forward by :meth:`prepare`; the backward rebuilds it from ``ctx.saved_tensors`` (so
    autograd's saved-tensor checks guard against in-place changes of the inputs)."""

    def __init__(self, *tensors: torch.Tensor, flags: dict[str, Any]) -> None:
        (self.q, self.k, self.v, self.c, self.qn2, self.qr, self.kn2, self.kr,
         self.kappa, self.beta, self.kpm) = tensors  # fmt: skip
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
        q, k, kappa = q.contiguous(), k.contiguous(), kappa.contiguous()
        flags = {
            "DISTANCE": distance,
            "MIDPOINT": midpoint,
            "CAUSAL": causal,
            "HAS_KPM": kpm is not None,
            "D": q.shape[-1],
            "DV": v.shape[-1],
        }
        qn2, kn2 = (_sqnorm(q), _sqnorm(k)) if distance else (dummy, dummy)
        qr, kr = (_conformal(qn2, kappa), _conformal(kn2, kappa)) if distance else (dummy, dummy)
        return cls(
            q, k, v.contiguous(), c.contiguous() if c is not None else dummy, qn2, qr, kn2, kr, kappa,
            beta.contiguous(),
            kpm.contiguous() if kpm is not None else torch.zeros(1, dtype=torch.uint8, device=dev),
            flags=flags,
        )  # fmt: skip

    def kernel_inputs(self) -> tuple[torch.Tensor, ...]:
        return (
            self.q, self.k, self.v, self.c, self.qn2, self.qr, self.kn2, self.kr, self.kappa, self.beta,
            self.kpm,
        )  # fmt: skip

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
    saved: _KernelInputs,
    lse: torch.Tensor,
    dnum: torch.Tensor,
    dden: torch.Tensor,
    delta: torch.Tensor,
    *,
    kappa_grad: bool,
) -> tuple[torch.Tensor, ...]:
    """Launch the two backward kernels: ``(dq, dk, dv, dc, dkappa_rows [B,H,N], dbeta_rows [B,H,N])``,
    float32, written in full without atomics (deterministic). ``dc`` is a dummy without the midpoint,
    ``dkappa_rows`` without distance scores or ``kappa_grad``."""
    batch, heads, n, d = saved.q.shape
    m, dv = saved.k.shape[2], saved.v.shape[-1]
    dev, f32 = saved.q.device, torch.float32
    flags = saved.flags
    dk = _empty((batch, heads, m, d), f32, dev)
    dvs = _empty((batch, heads, m, dv), f32, dev)
    dc = _empty((batch, heads, m) if flags["MIDPOINT"] else (1,), f32, dev)
    dq = _empty((batch, heads, n, d), f32, dev)
    kappa_grad = kappa_grad and flags["DISTANCE"]
    dkappa = _empty((batch, heads, n) if kappa_grad else (1,), f32, dev)
    dbeta = _empty((batch, heads, n), f32, dev)
    inputs = (*saved.kernel_inputs(), lse, dnum, dden, delta)
    scores = batch * heads * n * m
    _launch("dkdv", m, batch * heads, (*inputs, dk, dvs, dc, *saved.sizes()), scores=scores, **flags)
    _launch(
        "dq", n, batch * heads, (*inputs, dq, dkappa, dbeta, *saved.sizes()), scores=scores,
        KAPPA_GRAD=kappa_grad, **flags,
    )  # fmt: skip
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
    dot). Saves the float32 sums, the log-sum-exp and the row norms/conformal factors (``O(N Dv)``),
    nothing of size ``N x M``.
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
        dnum, dkappa = grads[0].masked_fill(empty.unsqueeze(-1), 0.0).contiguous(), grads[1]
        delta = (dnum * num).sum(-1)
        dden = grads[2].masked_fill(empty, 0.0).contiguous() if midpoint else lse
        if midpoint:
            delta = delta + dden * den
        kappa_grad = ctx.needs_input_grad[4] and saved.flags["DISTANCE"]
        dq, dk, dv, dc, dkappa_rows, dbeta_rows = manifold_attention_bwd(
            saved, lse, dnum, dden, delta, kappa_grad=kappa_grad
        )
        if kappa_grad:
            dkappa = dkappa + dkappa_rows.sum((0, 2))
        return (
            dq.to(saved.q.dtype),
            dk.to(saved.k.dtype),
            dv.to(saved.v.dtype),
            dc if midpoint else None,
            dkappa,
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
