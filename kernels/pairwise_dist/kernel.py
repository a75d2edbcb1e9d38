# Triton-jitted functions are untyped by nature (their arguments are blocks, pointers or constexprs).
# mypy: disable-error-code="no-untyped-def, untyped-decorator"
r"""Triton kernels for pairwise κ-stereographic distances: one tiled matmul plus a distance epilogue.

Forward (``_pairwise_dist_fwd_kernel``): each program owns one ``[BLOCK_N, BLOCK_M]`` tile of one batch
element, accumulates the Gram tile :math:`G = x y^\top` over ``BLOCK_D`` chunks of the feature dimension with
``tl.dot`` in float32, and turns it into distances with the squared norms (precomputed in torch, O(ND)) and
the per-row curvature :math:`k_i`:

.. math::
    u = \frac{\max(a + b - 2G,\ 0)}{\max(1 + 2kG + k^2ab,\ \text{MIN\_DENOM})},\qquad
    F = d^2 = 4\,u\,A(w)^2,\quad w = k u,

with :math:`a = \|x_i\|^2`, :math:`b = \|y_j\|^2`. With ``y_tangent`` the rows of ``y`` are tangent vectors
:math:`v_j` mapped onto row ``i``'s manifold: :math:`t = T(k\|v_j\|^2)`, :math:`G = \langle x_i, v_j\rangle t`,
:math:`b = \|v_j\|^2 t^2`.

Backward (``_pairwise_dist_bwd_kernel``) recomputes the Gram tile and the epilogue, and with the incoming
gradient :math:`\bar d` forms, elementwise (masks: ``num_ok = a + b - 2G >= 0`` and
``den_ok = 1 + 2kG + k^2ab >= MIN_DENOM``, the pass-through sets of the reference's clamps):

.. math::
    \bar F &= \bar d / (2d) \text{ (0 where } d^2 \le \text{MIN\_NORM}^2\text{)},\ \text{or } \bar d \text{ when squared}\\
    A'(w) &= \frac{R - A}{2w},\quad R = \frac{1}{1+w} \text{ (0 where the artanh argument is clamped)};
        \text{ series of } A' \text{ for } |w| < 0.2 \text{ (less cancellation than } R - A\text{)}\\
    \partial F/\partial u &= 4A\,(A + 2wA'),\qquad \partial F/\partial k|_u = 8u^2 A A'\\
    g_n &= \text{num\_ok}/\text{den},\qquad g_d = -\text{den\_ok}\,u/\text{den}\\
    \bar u &= \bar F\,\partial F/\partial u\\
    \bar G &= \bar u\,(-2g_n + 2k\,g_d),\quad \bar a = \bar u\,(g_n + k^2 b\,g_d),\quad
        \bar b = \bar u\,(g_n + k^2 a\,g_d)\\
    \bar k &= \bar u\,(2G + 2kab)\,g_d + \bar F\,\partial F/\partial k|_u.

For ``y_tangent`` (with :math:`H = \langle x, v\rangle`, :math:`c = \|v\|^2`, :math:`w_t = kc`,
:math:`T'(w) = (1 + wT^2 - T)/(2w)`, series near 0):

.. math::
    \bar t = \bar G H + 2\bar b\,c\,t,\quad \bar H = \bar G\,t,\quad
    \bar c = \bar b\,t^2 + \bar t\,T'(w_t)\,k,\quad \bar k \mathrel{+}= \bar t\,T'(w_t)\,c.

The kernel writes :math:`P = \bar G` (or :math:`\bar H`) as a float32 ``[B, N, M]`` buffer and reduces the
row sums of :math:`\bar a` and :math:`\bar k` and the column sums of :math:`\bar b` (or :math:`\bar c`) per
tile with ``tl.sum`` + ``tl.atomic_add`` (so float32 gradients are not bitwise deterministic on GPU). Then, in
torch: :math:`\bar x = P y + 2x\,\textstyle\sum_j \bar a`, :math:`\bar y = P^\top x + 2y\,\sum_i \bar b`.

Triton's interpreter has no libdevice and core Triton has no ``atan``/``atanh``/``tan``: :math:`A`, :math:`T` and
their derivatives come from :mod:`geoattn.kernels.triton_math` (core ops and Cephes polynomials).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import triton
import triton.language as tl

from ...manifolds.numerics import artanh_clamp, min_denom, min_norm
from ..backend import triton_interpreting
from ..triton_math import artan_ratio, artan_ratio_grad, tan_ratio, tan_ratio_grad

__all__ = [
    "PairwiseDistFunction",
    "pairwise_dist_bwd",
    "pairwise_dist_fwd",
    "pairwise_dist_triton",
]

# ---------------------------------------------------------------------------------------------------------
# Shared pieces of the two kernels
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _tile(N, M, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr):
    """This program's tile over a 1-D grid (no 65535 limit on the batch): the batch index and the int64 row
    and column offsets ``offs_n [BLOCK_N]``, ``offs_m [BLOCK_M]`` with their in-bounds masks."""
    pid = tl.program_id(0)
    tiles_n = tl.cdiv(N, BLOCK_N)
    tiles_m = tl.cdiv(M, BLOCK_M)
    per_batch = tiles_n * tiles_m
    pid_b = pid // per_batch
    rest = pid - pid_b * per_batch
    pid_n = rest // tiles_m
    pid_m = rest - pid_n * tiles_m
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_n = offs_n < N
    mask_m = offs_m < M
    return pid_b.to(tl.int64), offs_n.to(tl.int64), offs_m.to(tl.int64), mask_n, mask_m


@triton.jit
def _gram_tile(
    x_ptr,
    y_ptr,
    offs_n,
    offs_m,
    mask_n,
    mask_m,
    D,
    stride_xn,
    stride_xd,
    stride_ym,
    stride_yd,
    BLOCK_N: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    """G = x[offs_n] @ y[offs_m]^T accumulated in float32 over BLOCK_D chunks (masked for any D).

    DOT_F32 upcasts the tiles before ``tl.dot``: needed under the interpreter, whose ``dot`` multiplies the
    raw uint16 storage of bfloat16; numerically the same (half-precision products are exact in float32)."""
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)  # [BLOCK_N, BLOCK_M]
    offs_d = tl.arange(0, BLOCK_D)
    for d0 in range(0, D, BLOCK_D):
        dd = d0 + offs_d
        mask_d = dd < D
        xt = tl.load(
            x_ptr + offs_n[:, None] * stride_xn + dd[None, :] * stride_xd,
            mask=mask_n[:, None] & mask_d[None, :],
            other=0.0,
        )  # [BLOCK_N, BLOCK_D]
        yt = tl.load(
            y_ptr + dd[:, None] * stride_yd + offs_m[None, :] * stride_ym,
            mask=mask_d[:, None] & mask_m[None, :],
            other=0.0,
        )  # [BLOCK_D, BLOCK_M]
        if DOT_F32:
            xt = xt.to(tl.float32)
            yt = yt.to(tl.float32)
        # "ieee": no TF32 for float32 inputs (a + b - 2G cancels; TF32 would lose the distance of near
        # points). Ignored for float16/bfloat16, whose products are exact in the float32 accumulator.
        acc = tl.dot(xt, yt, acc, input_precision="ieee")
    return acc


@triton.jit
def _load_rows(x2_ptr, y2_ptr, k_ptr, offs_n, offs_m, mask_n, mask_m, stride_x2n, stride_y2m, stride_kn):
    a = tl.load(x2_ptr + offs_n * stride_x2n, mask=mask_n, other=0.0).to(tl.float32)  # [BLOCK_N]
    b = tl.load(y2_ptr + offs_m * stride_y2m, mask=mask_m, other=0.0).to(tl.float32)  # [BLOCK_M]
    kk = tl.load(k_ptr + offs_n * stride_kn, mask=mask_n, other=0.0).to(tl.float32)  # [BLOCK_N]
    return a[:, None], b[None, :], kk[:, None]


@triton.jit
def _tile_inputs(
    x_ptr, y_ptr, x2_ptr, y2_ptr, k_ptr, N, M, D,
    stride_xb, stride_xn, stride_xd, stride_yb, stride_ym, stride_yd,
    stride_x2b, stride_x2n, stride_y2b, stride_y2m, stride_kb, stride_kn,
    BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, DOT_F32: tl.constexpr,
):  # fmt: skip
    """What both kernels read for their tile (arguments as the kernels'): the tile (see ``_tile``), the
    float32 Gram tile ``[BLOCK_N, BLOCK_M]`` of x and y, and ``a = |x_i|^2 [BLOCK_N, 1]``,
    ``b = |y_j|^2 [1, BLOCK_M]``, ``k_i [BLOCK_N, 1]`` in float32."""
    pid_b, offs_n, offs_m, mask_n, mask_m = _tile(N, M, BLOCK_N, BLOCK_M)
    g = _gram_tile(
        x_ptr + pid_b * stride_xb,
        y_ptr + pid_b * stride_yb,
        offs_n,
        offs_m,
        mask_n,
        mask_m,
        D,
        stride_xn,
        stride_xd,
        stride_ym,
        stride_yd,
        BLOCK_N,
        BLOCK_M,
        BLOCK_D,
        DOT_F32,
    )
    a, b, kk = _load_rows(
        x2_ptr + pid_b * stride_x2b,
        y2_ptr + pid_b * stride_y2b,
        k_ptr + pid_b * stride_kb,
        offs_n,
        offs_m,
        mask_n,
        mask_m,
        stride_x2n,
        stride_y2m,
        stride_kn,
    )
    return pid_b, offs_n, offs_m, mask_n, mask_m, g, a, b, kk


# ---------------------------------------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _pairwise_dist_fwd_kernel(
    x_ptr,  # [B|1, N, D] input dtype
    y_ptr,  # [B|1, M, D] input dtype
    x2_ptr,  # [B|1, N] float32 squared norms of x
    y2_ptr,  # [B|1, M] float32 squared norms of y
    k_ptr,  # [B, N] float32 per-row curvature
    out_ptr,  # [B, N, M] output dtype
    N,
    M,
    D,
    N_BUCKET,  # autotune key only
    M_BUCKET,  # autotune key only
    stride_xb,
    stride_xn,
    stride_xd,
    stride_yb,
    stride_ym,
    stride_yd,
    stride_x2b,
    stride_x2n,
    stride_y2b,
    stride_y2m,
    stride_kb,
    stride_kn,
    stride_ob,
    stride_on,
    stride_om,
    min_denom,
    artanh_bound,
    tiny,  # MIN_NORM**2: distances with d^2 <= tiny are 0
    TANGENT: tl.constexpr,
    SQRT: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    # g [BLOCK_N, BLOCK_M]; a [BLOCK_N, 1], b [1, BLOCK_M], kk [BLOCK_N, 1]
    pid_b, offs_n, offs_m, mask_n, mask_m, g, a, b, kk = _tile_inputs(
        x_ptr, y_ptr, x2_ptr, y2_ptr, k_ptr, N, M, D,
        stride_xb, stride_xn, stride_xd, stride_yb, stride_ym, stride_yd,
        stride_x2b, stride_x2n, stride_y2b, stride_y2m, stride_kb, stride_kn,
        BLOCK_N, BLOCK_M, BLOCK_D, DOT_F32,
    )  # fmt: skip
    if TANGENT:
        t = tan_ratio(kk * b)  # [BLOCK_N, BLOCK_M]
        g = g * t
        b = b * t * t
    num = tl.maximum(a + b - 2.0 * g, 0.0)
    den = tl.maximum(1.0 + 2.0 * kk * g + kk * kk * a * b, min_denom)
    u = num / den
    aw = artan_ratio(kk * u, artanh_bound)
    res = 4.0 * u * aw * aw  # d^2
    if SQRT:
        pos = res > tiny
        res = tl.where(pos, tl.sqrt(tl.where(pos, res, 1.0)), 0.0)
    out_ptrs = out_ptr + pid_b * stride_ob + offs_n[:, None] * stride_on + offs_m[None, :] * stride_om
    tl.store(out_ptrs, res.to(out_ptr.dtype.element_ty), mask=mask_n[:, None] & mask_m[None, :])


# ---------------------------------------------------------------------------------------------------------
# Backward
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _pairwise_dist_bwd_kernel(
    x_ptr,  # [B|1, N, D]
    y_ptr,  # [B|1, M, D]
    x2_ptr,  # [B|1, N] float32
    y2_ptr,  # [B|1, M] float32
    k_ptr,  # [B, N] float32
    gout_ptr,  # [B, N, M] incoming gradient
    p_ptr,  # [B, N, M] float32 out: dL/dG (dL/d<x, v> with TANGENT)
    rowx_ptr,  # [B, N] float32 out (atomic): sum_j dL/d|x_i|^2
    colb_ptr,  # [B, M] float32 out (atomic): sum_i dL/d|y_j|^2 (dL/d|v_j|^2 with TANGENT)
    rowk_ptr,  # [B, N] float32 out (atomic): sum_j dL/dk_i (always reduced: O(N + M) per tile, cheap)
    N,
    M,
    D,
    stride_xb,
    stride_xn,
    stride_xd,
    stride_yb,
    stride_ym,
    stride_yd,
    stride_x2b,
    stride_x2n,
    stride_y2b,
    stride_y2m,
    stride_kb,
    stride_kn,
    stride_gb,
    stride_gn,
    stride_gm,
    min_denom,
    artanh_bound,
    tiny,
    TANGENT: tl.constexpr,
    SQRT: tl.constexpr,
    WRITE_P: tl.constexpr,  # False when only k needs a gradient
    BLOCK_N: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_D: tl.constexpr,
    DOT_F32: tl.constexpr,
):
    # h [BLOCK_N, BLOCK_M]: <x, y> (<x, v> with TANGENT); a, c, kk as the forward's a, b, kk
    pid_b, offs_n, offs_m, mask_n, mask_m, h, a, c, kk = _tile_inputs(
        x_ptr, y_ptr, x2_ptr, y2_ptr, k_ptr, N, M, D,
        stride_xb, stride_xn, stride_xd, stride_yb, stride_ym, stride_yd,
        stride_x2b, stride_x2n, stride_y2b, stride_y2m, stride_kb, stride_kn,
        BLOCK_N, BLOCK_M, BLOCK_D, DOT_F32,
    )  # fmt: skip
    mask = mask_n[:, None] & mask_m[None, :]
    if TANGENT:
        wt = kk * c
        t = tan_ratio(wt)  # [BLOCK_N, BLOCK_M]
        g = h * t
        b = c * t * t
    else:
        g = h
        b = c
    num_raw = a + b - 2.0 * g
    den_raw = 1.0 + 2.0 * kk * g + kk * kk * a * b
    den = tl.maximum(den_raw, min_denom)
    u = tl.maximum(num_raw, 0.0) / den
    w = kk * u
    aw = artan_ratio(w, artanh_bound)
    ap = artan_ratio_grad(w, aw, artanh_bound)
    d2 = 4.0 * u * aw * aw

    go = tl.load(
        gout_ptr + pid_b * stride_gb + offs_n[:, None] * stride_gn + offs_m[None, :] * stride_gm,
        mask=mask,
        other=0.0,
    ).to(tl.float32)
    if SQRT:
        pos = d2 > tiny
        gf = tl.where(pos, 0.5 * go / tl.sqrt(tl.where(pos, d2, 1.0)), 0.0)  # dL/d(d^2)
    else:
        gf = go
    gf = tl.where(mask, gf, 0.0)
    gu = gf * (4.0 * aw * (aw + 2.0 * w * ap))  # dL/du
    gn = tl.where(num_raw >= 0.0, 1.0 / den, 0.0)  # du/dnum
    gd = tl.where(den_raw >= min_denom, -u / den, 0.0)  # du/dden
    dg = gu * (2.0 * kk * gd - 2.0 * gn)  # dL/dG
    da = gu * (gn + kk * kk * b * gd)  # dL/d|x|^2
    db = gu * (gn + kk * kk * a * gd)  # dL/d|y|^2
    dk = gu * (2.0 * g + 2.0 * kk * a * b) * gd + gf * (8.0 * u * u * aw * ap)  # dL/dk
    if TANGENT:
        tp = tan_ratio_grad(wt, t)
        dt = dg * h + 2.0 * db * c * t  # dL/dt
        db = db * t * t + dt * tp * kk  # dL/d|v|^2
        dk += dt * tp * c
        dg = dg * t  # dL/d<x, v>
    if WRITE_P:
        # Rows and columns outside the matrix are never stored; their lanes are 0 since gf is 0 there.
        p_ptrs = p_ptr + pid_b * N * M + offs_n[:, None] * M + offs_m[None, :]
        tl.store(p_ptrs, dg, mask=mask)
    tl.atomic_add(rowx_ptr + pid_b * N + offs_n, tl.sum(da, axis=1), mask=mask_n)
    tl.atomic_add(colb_ptr + pid_b * M + offs_m, tl.sum(db, axis=0), mask=mask_m)
    tl.atomic_add(rowk_ptr + pid_b * N + offs_n, tl.sum(dk, axis=1), mask=mask_n)


# ---------------------------------------------------------------------------------------------------------
# Launch configuration
# ---------------------------------------------------------------------------------------------------------

# Under the interpreter one small config (tiles of 16 so that tiny test sizes still span several tiles).
_INTERPRET_BLOCKS: dict[str, Any] = {"BLOCK_N": 16, "BLOCK_M": 16}
# Outputs below this many elements use one fixed config instead of autotuning: each config is a separate
# compilation of a large epilogue (seconds each), not worth it for small, often varying shapes.
_AUTOTUNE_MIN_OUTPUTS = 1 << 22
_FIXED_BLOCKS: dict[str, Any] = {"BLOCK_N": 64, "BLOCK_M": 64, "num_warps": 4, "num_stages": 3}
# The epilogues keep many [BLOCK_N, BLOCK_M] temporaries live (the backward ~30), so tiles are small per
# thread: beyond ~16 elements per thread registers spill. Measured on an H200 (triton 3.6) at
# 4096 x 40943 x 32: the backward kernel takes 4.2 ms (float32) with 32 x 32 tiles and 4 warps, 13 ms with
# 64 x 64 and 4 warps, 21 ms with 128 x 128 and 8 warps. Not autotuned: its atomics would accumulate
# over the tuning runs.
_BWD_BLOCKS: dict[str, Any] = {"BLOCK_N": 32, "BLOCK_M": 32, "num_warps": 4, "num_stages": 2}
_FWD_CONFIGS = [
    triton.Config({"BLOCK_N": 64, "BLOCK_M": 64}, num_warps=4, num_stages=3),
    triton.Config({"BLOCK_N": 64, "BLOCK_M": 64}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_N": 64, "BLOCK_M": 128}, num_warps=8, num_stages=3),
    triton.Config({"BLOCK_N": 128, "BLOCK_M": 64}, num_warps=8, num_stages=3),
]

# Autotuning wraps the jitted kernel (kept separate: the interpreter and small problems launch it directly).
_fwd_autotuned: Any = (
    None
    if triton_interpreting()
    else triton.autotune(configs=_FWD_CONFIGS, key=["N_BUCKET", "M_BUCKET", "D", "TANGENT", "SQRT"])(
        _pairwise_dist_fwd_kernel
    )
)


def _block_d(d: int) -> int:
    return 16 if triton_interpreting() else min(max(triton.next_power_of_2(d), 16), 64)


def _grid(batch: int, n: int, m: int) -> Callable[[dict[str, Any]], tuple[int]]:
    def grid(meta: dict[str, Any]) -> tuple[int]:
        return (batch * triton.cdiv(n, meta["BLOCK_N"]) * triton.cdiv(m, meta["BLOCK_M"]),)

    return grid


def _constants(dtype: torch.dtype) -> tuple[float, float, float]:
    """(MIN_DENOM, 1 - ARTANH_CLAMP, MIN_NORM**2) of the *input* dtype: the reference's guards for it."""
    return min_denom(dtype), 1.0 - artanh_clamp(dtype), min_norm(dtype) ** 2


def _empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Allocation of every buffer a kernel must write in full (the tests poison it with NaN)."""
    return torch.empty(shape, dtype=dtype, device=device)


def _bs(t: torch.Tensor) -> int:
    """Batch stride of a ``[B|1, ...]`` operand: 0 for one shared by the whole batch."""
    return 0 if t.shape[0] == 1 else t.stride(0)


def _input_strides(
    x: torch.Tensor, y: torch.Tensor, x2: torch.Tensor, y2: torch.Tensor, krow: torch.Tensor
) -> tuple[int, ...]:
    """The strides of the five inputs, in the order both kernels take them (``stride_xb`` .. ``stride_kn``)."""
    return (
        _bs(x), x.stride(1), x.stride(2),
        _bs(y), y.stride(1), y.stride(2),
        _bs(x2), x2.stride(1),
        _bs(y2), y2.stride(1),
        krow.stride(0), krow.stride(1),
    )  # fmt: skip


def _sqnorm(t: torch.Tensor) -> torch.Tensor:
    tf = t.float()
    return (tf * tf).sum(-1)


def pairwise_dist_fwd(
    x: torch.Tensor,
    y: torch.Tensor,
    x2: torch.Tensor,
    y2: torch.Tensor,
    krow: torch.Tensor,
    *,
    squared: bool,
    y_tangent: bool,
) -> torch.Tensor:
    """Launch the forward kernel. Shapes: ``x [Bx, N, D]``, ``y [By, M, D]`` with ``Bx, By`` in ``{1, B}``,
    ``x2 [Bx, N]``, ``y2 [By, M]`` float32, ``krow [B, N]`` float32; returns ``[B, N, M]`` in ``x.dtype``."""
    batch, n = krow.shape
    m, d = y.shape[1], y.shape[2]
    out = _empty((batch, n, m), x.dtype, x.device)
    if out.numel() == 0:
        return out
    md, bound, tiny = _constants(x.dtype)
    launcher: Any = _pairwise_dist_fwd_kernel
    if triton_interpreting():
        meta = _INTERPRET_BLOCKS
    elif out.numel() < _AUTOTUNE_MIN_OUTPUTS:
        meta = _FIXED_BLOCKS
    else:
        launcher, meta = _fwd_autotuned, {}
    launcher[_grid(batch, n, m)](
        x, y, x2, y2, krow, out,
        n, m, d, triton.next_power_of_2(n), triton.next_power_of_2(m),
        *_input_strides(x, y, x2, y2, krow),
        out.stride(0), out.stride(1), out.stride(2),
        md, bound, tiny,
        TANGENT=y_tangent, SQRT=not squared, BLOCK_D=_block_d(d), DOT_F32=triton_interpreting(), **meta,
    )  # fmt: skip
    return out


def pairwise_dist_bwd(
    grad_out: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    x2: torch.Tensor,
    y2: torch.Tensor,
    krow: torch.Tensor,
    *,
    squared: bool,
    y_tangent: bool,
    needs: tuple[bool, bool, bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Gradients ``(dx [Bx, N, D], dy [By, M, D], dk [B, N] float32)`` (``None`` where not needed)."""
    need_x, need_y, need_k = needs
    batch, n = krow.shape
    m, d = y.shape[1], y.shape[2]
    dev = x.device
    f32 = torch.float32
    need_p = need_x or need_y
    p = _empty((batch, n, m) if need_p else (1, 1, 1), f32, dev)
    rowx = torch.zeros((batch, n), dtype=f32, device=dev)
    colb = torch.zeros((batch, m), dtype=f32, device=dev)
    rowk = torch.zeros((batch, n), dtype=f32, device=dev)
    if batch * n * m > 0:
        md, bound, tiny = _constants(x.dtype)
        meta = _INTERPRET_BLOCKS if triton_interpreting() else _BWD_BLOCKS
        _pairwise_dist_bwd_kernel[_grid(batch, n, m)](
            x, y, x2, y2, krow, grad_out, p, rowx, colb, rowk,
            n, m, d,
            *_input_strides(x, y, x2, y2, krow),
            grad_out.stride(0), grad_out.stride(1), grad_out.stride(2),
            md, bound, tiny,
            TANGENT=y_tangent, SQRT=not squared, WRITE_P=need_p,
            BLOCK_D=_block_d(d), DOT_F32=triton_interpreting(), **meta,
        )  # fmt: skip
    dx = dy = dk = None
    if need_x:
        yf = y.float()
        if x.shape[0] == 1 and batch > 1:  # x shared over the batch: sum its gradient over the batch
            dx = torch.einsum("bnm,bmd->nd", p, yf.expand(batch, m, d)).unsqueeze(0)
            dx = dx + 2.0 * x.float() * rowx.sum(0, keepdim=True).unsqueeze(-1)
        else:
            dx = torch.matmul(p, yf) + 2.0 * x.float() * rowx.unsqueeze(-1)
        dx = dx.to(x.dtype)
    if need_y:
        xf = x.float()
        if y.shape[0] == 1 and batch > 1:  # y shared over the batch (x then has the batch): one matmul
            p_flat = p.reshape(batch * n, m)  # [B*N, M]
            dy = (p_flat.transpose(0, 1) @ xf.expand(batch, n, d).reshape(batch * n, d)).unsqueeze(0)
            dy = dy + 2.0 * y.float() * colb.sum(0, keepdim=True).unsqueeze(-1)
        else:
            dy = torch.matmul(p.transpose(1, 2), xf) + 2.0 * y.float() * colb.unsqueeze(-1)
        dy = dy.to(y.dtype)
    if need_k:
        dk = rowk
    return dx, dy, dk


class PairwiseDistFunction(torch.autograd.Function):
    """Autograd wrapper of the kernels: ``apply(x [Bx,N,D], y [By,M,D], krow [B,N] float32, squared,
    y_tangent)`` -> ``[B, N, M]``. ``Bx``/``By`` are 1 (shared over the batch) or ``B``; the backward
    recomputes the Gram tiles instead of saving anything of size ``N x M``."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, y: torch.Tensor, krow: torch.Tensor, squared: bool, y_tangent: bool
    ) -> torch.Tensor:
        x2 = _sqnorm(x)
        y2 = _sqnorm(y)
        ctx.save_for_backward(x, y, x2, y2, krow)
        ctx.squared = squared
        ctx.y_tangent = y_tangent
        return pairwise_dist_fwd(x, y, x2, y2, krow, squared=squared, y_tangent=y_tangent)

    @staticmethod
    def backward(
        ctx: Any, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, None, None]:
        x, y, x2, y2, krow = ctx.saved_tensors
        needs = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2])
        if not any(needs):
            return None, None, None, None, None
        dx, dy, dk = pairwise_dist_bwd(
            grad_out, x, y, x2, y2, krow, squared=ctx.squared, y_tangent=ctx.y_tangent, needs=needs
        )
        return dx, dy, dk, None, None


def _flatten_batch(t: torch.Tensor, batch: tuple[int, ...], flat: int) -> torch.Tensor:
    """``[..., n, D]`` -> ``[1, n, D]`` when ``t`` has no batch elements to itself, else ``[flat, n, D]``
    (a view when ``t`` already has the full batch shape, a copy when it is broadcast along some dims)."""
    n, d = t.shape[-2], t.shape[-1]
    if math.prod(t.shape[:-2]) == 1:
        return t.reshape(1, n, d)
    return t.expand(*batch, n, d).reshape(flat, n, d)


def pairwise_dist_triton(
    x: torch.Tensor, y: torch.Tensor, k: torch.Tensor, *, squared: bool, y_tangent: bool
) -> torch.Tensor:
    """Kernel path of :func:`geoattn.kernels.pairwise_dist.pairwise_dist` on validated inputs.

    ``x [..., N, D]``, ``y [..., M, D]`` (float32/float16/bfloat16, batch dims broadcast), ``k`` a tensor
    broadcastable to ``[..., N, 1]``. Returns ``[..., N, M]`` in ``x.dtype``; differentiable in x, y, k.
    """
    batch = tuple(torch.broadcast_shapes(x.shape[:-2], y.shape[:-2]))
    flat = math.prod(batch)
    n = x.shape[-2]
    x3 = _flatten_batch(x, batch, flat)
    y3 = _flatten_batch(y, batch, flat)
    krow = k.expand(*batch, n, 1).reshape(flat, n).to(torch.float32)
    out = PairwiseDistFunction.apply(x3, y3, krow, squared, y_tangent)
    return out.reshape(*batch, n, y.shape[-2])
