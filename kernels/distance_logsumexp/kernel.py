# Triton-jitted functions are untyped by nature (their arguments are blocks, pointers or constexprs).
# mypy: disable-error-code="no-untyped-def, untyped-decorator"
r"""Triton kernels of the distance log-sum-exp: scores against all columns without a ``[B, N]`` tensor.

**Tile.** With row and column squared norms :math:`a_b = \|q_b\|^2`, :math:`c_j = \|t_j\|^2` (float32, O((B + N)d)
in torch) and the Gram tile :math:`G = Q T^\top` (``tl.dot``, float32 accumulation, no TF32), every kernel
forms the scores of its ``[BLOCK_B, BLOCK_N]`` tile in the epilogue:

.. math::
    D = \max(a + c - 2G,\ 0),\qquad
    s = \gamma - D \ (p = 2)\quad\text{or}\quad s = \gamma - \sqrt{D}\ [D > \text{tiny}]\ (p = 1),

with ``tiny = MIN_NORM(float32)**2``; :math:`\partial s/\partial D` is :math:`-[a + c - 2G \ge 0]` (``p = 2``) or
:math:`-\tfrac{1}{2\sqrt D}[D > \text{tiny}]` (``p = 1``; 0 at zero distance, a subgradient of the norm).
``BLOCK_D`` covers the whole feature dimension (``d <= 256``), so each tile is one ``tl.dot``.

**Forward** (``_distance_logsumexp_fwd_kernel``, one program per row block and column split): the row block of
``q`` stays in registers while the split's column tiles stream; an online log-sum-exp (running max ``m`` and sum
``l`` in float32) and the running row sum of the scores. A 1-N batch has few row blocks (1024 rows are 16 blocks
of 64) and many columns, so the columns are cut into ``SPLITS`` ranges (about two programs per SM, as in
flash-decoding); each writes its partial ``lse`` and ``rowsum`` (``[SPLITS, B]``), combined in torch
(``logsumexp`` and ``sum`` over the splits, ``O(SPLITS B)``).

**Backward** (recompute, FlashAttention-2 style, no atomics, deterministic). With the incoming gradients
:math:`\bar l_b` of ``lse`` and :math:`\bar r_b` of ``rowsum``,

.. math::
    P_{bj} = \bar l_b\, e^{s_{bj} - \operatorname{lse}_b} + \bar r_b,\qquad
    W_{bj} = P_{bj}\, \partial s_{bj}/\partial D_{bj},\\
    \bar q_b = 2\Bigl(q_b \sum_j W_{bj} - \sum_j W_{bj} t_j\Bigr),\quad
    \bar t_j = 2\Bigl(t_j \sum_b W_{bj} - \sum_b W_{bj} q_b\Bigr),\quad
    \bar\gamma_j = \sum_b P_{bj}.

``_distance_logsumexp_bwd_dq_kernel`` (one program per row block and column split, looping over the split's
column tiles) accumulates :math:`W T` and :math:`\sum_j W` and writes its split's share of :math:`\bar q`
(float32 ``[SPLITS, B, d]``, summed in torch); ``_distance_logsumexp_bwd_dt_kernel`` (one program per column
block, looping over all row tiles) accumulates :math:`W^\top Q`, :math:`\sum_b W` and :math:`\sum_b P` and
writes :math:`\bar t`, :math:`\bar\gamma` once.

float16/bfloat16 inputs: the Gram ``tl.dot`` takes them as they are (exact products in the float32
accumulator); the gradient products :math:`W T`, :math:`W^\top Q` take float32 operands (no TF32) for every
input dtype: :math:`W` is a probability times the incoming gradient (about :math:`1/(BN)` for a mean over a 1-N
batch), which underflows float16, and rounding it to bfloat16 would cost its gradients two digits. Under Triton's
interpreter every ``tl.dot`` runs in float32.
"""

from __future__ import annotations

from typing import Any

import torch
import triton
import triton.language as tl

from ...manifolds.numerics import min_norm
from ..backend import triton_interpreting
from ..manifold_attention.kernel import _dot, _load_tile, _sqnorm, _store_tile

__all__ = [
    "DistanceLogsumexpFunction",
    "distance_logsumexp_bwd",
    "distance_logsumexp_fwd",
    "distance_logsumexp_triton",
]

# ---------------------------------------------------------------------------------------------------------
# Shared pieces of the kernels
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _row_tile(q_ptr, qn2_ptr, b0, B, D, BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr):
    """Rows ``b0 .. b0 + BLOCK_B - 1``: int64 offsets and in-bounds mask ``[BLOCK_B]``, the tile
    ``q [BLOCK_B, BLOCK_D]`` (input dtype) and ``a = |q_b|^2 [BLOCK_B]`` (float32)."""
    offs_b = b0 + tl.arange(0, BLOCK_B).to(tl.int64)
    mask_b = offs_b < B
    qt = _load_tile(q_ptr, offs_b, mask_b, D, BLOCK_D)
    a = tl.load(qn2_ptr + offs_b, mask=mask_b, other=0.0)
    return offs_b, mask_b, qt, a


@triton.jit
def _column_tile(t_ptr, tn2_ptr, gamma_ptr, n0, end, D, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                 HAS_GAMMA: tl.constexpr):  # fmt: skip
    """Columns ``n0 .. n0 + BLOCK_N - 1`` (those below ``end``): offsets and mask ``[BLOCK_N]``, the tile
    ``t [BLOCK_N, BLOCK_D]``, ``c = |t_j|^2 [BLOCK_N]`` and ``gamma [BLOCK_N]`` (0 if absent)."""
    offs_n = n0 + tl.arange(0, BLOCK_N).to(tl.int64)
    mask_n = offs_n < end
    tt = _load_tile(t_ptr, offs_n, mask_n, D, BLOCK_D)
    c = tl.load(tn2_ptr + offs_n, mask=mask_n, other=0.0)
    if HAS_GAMMA:
        gam = tl.load(gamma_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)
    else:
        gam = tl.zeros_like(c)
    return offs_n, mask_n, tt, c, gam


@triton.jit
def _scores(qt, tt, a, c, gam, tiny, SQUARED: tl.constexpr, INTERPRET: tl.constexpr, BLOCK_B: tl.constexpr,
            BLOCK_N: tl.constexpr):  # fmt: skip
    """Scores ``s [BLOCK_B, BLOCK_N]`` (float32) and ``ds/dD`` of a tile (see the module docstring)."""
    zeros = tl.zeros((BLOCK_B, BLOCK_N), dtype=tl.float32)
    g = _dot(qt, tl.trans(tt), zeros, INTERPRET, qt.dtype)  # [BLOCK_B, BLOCK_N]
    raw = a[:, None] + c[None, :] - 2.0 * g
    d2 = tl.maximum(raw, 0.0)
    if SQUARED:
        dist = d2
        dsd = tl.where(raw >= 0.0, -1.0, 0.0)
    else:
        pos = d2 > tiny
        root = tl.sqrt(tl.where(pos, d2, 1.0))
        dist = tl.where(pos, root, 0.0)
        dsd = tl.where(pos, -0.5 / root, 0.0)
    return gam[None, :] - dist, dsd


@triton.jit
def _weights(s, dsd, lse, glse, grs, mask_b, mask_n):
    """``P`` and ``W = P ds/dD`` of a tile (``[BLOCK_B, BLOCK_N]`` float32), 0 outside the matrix (where the
    exponential of a padding row may overflow: ``tl.where`` keeps that out)."""
    p = glse[:, None] * tl.exp(s - lse[:, None]) + grs[:, None]
    p = tl.where(mask_b[:, None] & mask_n[None, :], p, 0.0)
    return p, p * dsd


@triton.jit
def _row_grads(lse_ptr, glse_ptr, grs_ptr, offs_b, mask_b):
    """``lse``, its incoming gradient and the row sum's incoming gradient of rows ``offs_b`` (float32)."""
    lse = tl.load(lse_ptr + offs_b, mask=mask_b, other=0.0)
    glse = tl.load(glse_ptr + offs_b, mask=mask_b, other=0.0)
    grs = tl.load(grs_ptr + offs_b, mask=mask_b, other=0.0)
    return lse, glse, grs


@triton.jit
def _split_range(N, SPLITS, BLOCK_N: tl.constexpr):
    """The columns ``[start, end)`` of this program's split (``program_id(1)`` of ``SPLITS``): whole
    ``BLOCK_N`` tiles, possibly none for the last splits of a narrow problem."""
    per_split = tl.cdiv(tl.cdiv(N, SPLITS), BLOCK_N) * BLOCK_N
    start = tl.program_id(1) * per_split
    return start, tl.minimum(start + per_split, N)


# ---------------------------------------------------------------------------------------------------------
# Forward
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _distance_logsumexp_fwd_kernel(
    q_ptr,  # [B, D] input dtype, contiguous
    t_ptr,  # [N, D] input dtype, contiguous
    qn2_ptr,  # [B] float32 |q_b|^2
    tn2_ptr,  # [N] float32 |t_j|^2
    gamma_ptr,  # [N] input dtype (a dummy without HAS_GAMMA)
    lse_ptr,  # [SPLITS, B] float32 out: log-sum-exp over each split's columns (-inf for an empty split)
    rowsum_ptr,  # [SPLITS, B] float32 out: row sums over each split's columns
    B,
    N,
    D,
    B_BUCKET,  # autotune key only
    N_BUCKET,  # autotune key only
    SPLITS,  # column splits along the grid's second axis (1 for the column-block kernel)
    tiny,
    SQUARED: tl.constexpr,
    HAS_GAMMA: tl.constexpr,
    INTERPRET: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    b0 = tl.program_id(0).to(tl.int64) * BLOCK_B
    offs_b, mask_b, qt, a = _row_tile(q_ptr, qn2_ptr, b0, B, D, BLOCK_B, BLOCK_D)
    m_i = tl.full((BLOCK_B,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_B,), dtype=tl.float32)
    rs = tl.zeros((BLOCK_B,), dtype=tl.float32)
    start, end = _split_range(N, SPLITS, BLOCK_N)
    for n0 in range(start, end, BLOCK_N):
        _, mask_n, tt, c, gam = _column_tile(
            t_ptr, tn2_ptr, gamma_ptr, n0, end, D, BLOCK_N, BLOCK_D, HAS_GAMMA
        )
        s, _ = _scores(qt, tt, a, c, gam, tiny, SQUARED, INTERPRET, BLOCK_B, BLOCK_N)  # [BLOCK_B, BLOCK_N]
        rs += tl.sum(tl.where(mask_n[None, :], s, 0.0), axis=1)
        s = tl.where(mask_n[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))  # finite: every tile has a column in range
        l_i = l_i * tl.exp(m_i - m_new) + tl.sum(tl.exp(s - m_new[:, None]), axis=1)
        m_i = m_new
    # an empty split leaves m = -inf, l = 0: its partial log-sum-exp is -inf
    lse = tl.where(l_i > 0.0, m_i + tl.log(tl.where(l_i > 0.0, l_i, 1.0)), float("-inf"))
    out = tl.program_id(1).to(tl.int64) * B + offs_b
    tl.store(lse_ptr + out, lse, mask=mask_b)
    tl.store(rowsum_ptr + out, rs, mask=mask_b)


# ---------------------------------------------------------------------------------------------------------
# Backward: dq over row blocks, dt and dgamma over column blocks
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _distance_logsumexp_bwd_dq_kernel(
    q_ptr,  # [B, D]
    t_ptr,  # [N, D]
    qn2_ptr,  # [B] float32
    tn2_ptr,  # [N] float32
    gamma_ptr,  # [N]
    lse_ptr,  # [B] float32 (the forward's)
    glse_ptr,  # [B] float32 incoming gradient of lse
    grs_ptr,  # [B] float32 incoming gradient of rowsum
    dq_ptr,  # [SPLITS, B, D] float32 out: each split's share of dq
    B,
    N,
    D,
    B_BUCKET,
    N_BUCKET,
    SPLITS,
    tiny,
    SQUARED: tl.constexpr,
    HAS_GAMMA: tl.constexpr,
    INTERPRET: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    b0 = tl.program_id(0).to(tl.int64) * BLOCK_B
    offs_b, mask_b, qt, a = _row_tile(q_ptr, qn2_ptr, b0, B, D, BLOCK_B, BLOCK_D)
    lse, glse, grs = _row_grads(lse_ptr, glse_ptr, grs_ptr, offs_b, mask_b)
    acc = tl.zeros((BLOCK_B, BLOCK_D), dtype=tl.float32)  # sum_j W_bj t_j
    wsum = tl.zeros((BLOCK_B,), dtype=tl.float32)  # sum_j W_bj
    start, end = _split_range(N, SPLITS, BLOCK_N)
    for n0 in range(start, end, BLOCK_N):
        _, mask_n, tt, c, gam = _column_tile(
            t_ptr, tn2_ptr, gamma_ptr, n0, end, D, BLOCK_N, BLOCK_D, HAS_GAMMA
        )
        s, dsd = _scores(qt, tt, a, c, gam, tiny, SQUARED, INTERPRET, BLOCK_B, BLOCK_N)
        _, w = _weights(s, dsd, lse, glse, grs, mask_b, mask_n)  # [BLOCK_B, BLOCK_N]
        wsum += tl.sum(w, axis=1)
        acc = _dot(w, tt, acc, INTERPRET, tl.float32)
    dq = 2.0 * (qt.to(tl.float32) * wsum[:, None] - acc)
    _store_tile(dq_ptr + tl.program_id(1).to(tl.int64) * B * D, dq, offs_b, mask_b, D, BLOCK_D)


@triton.jit
def _distance_logsumexp_bwd_dt_kernel(
    q_ptr,  # [B, D]
    t_ptr,  # [N, D]
    qn2_ptr,  # [B] float32
    tn2_ptr,  # [N] float32
    gamma_ptr,  # [N]
    lse_ptr,  # [B] float32
    glse_ptr,  # [B] float32
    grs_ptr,  # [B] float32
    dt_ptr,  # [N, D] out, t's dtype (a dummy without WRITE_DT)
    dgamma_ptr,  # [N] out, gamma's dtype (a dummy without HAS_GAMMA)
    B,
    N,
    D,
    B_BUCKET,
    N_BUCKET,
    SPLITS,
    tiny,
    SQUARED: tl.constexpr,
    HAS_GAMMA: tl.constexpr,
    WRITE_DT: tl.constexpr,
    INTERPRET: tl.constexpr,
    BLOCK_B: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    n0 = tl.program_id(0).to(tl.int64) * BLOCK_N
    offs_n, mask_n, tt, c, gam = _column_tile(
        t_ptr, tn2_ptr, gamma_ptr, n0, N, D, BLOCK_N, BLOCK_D, HAS_GAMMA
    )
    acc = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)  # sum_b W_bj q_b
    wsum = tl.zeros((BLOCK_N,), dtype=tl.float32)  # sum_b W_bj
    psum = tl.zeros((BLOCK_N,), dtype=tl.float32)  # sum_b P_bj
    for b0 in range(0, B, BLOCK_B):
        offs_b, mask_b, qt, a = _row_tile(q_ptr, qn2_ptr, b0, B, D, BLOCK_B, BLOCK_D)
        lse, glse, grs = _row_grads(lse_ptr, glse_ptr, grs_ptr, offs_b, mask_b)
        s, dsd = _scores(qt, tt, a, c, gam, tiny, SQUARED, INTERPRET, BLOCK_B, BLOCK_N)
        p, w = _weights(s, dsd, lse, glse, grs, mask_b, mask_n)
        psum += tl.sum(p, axis=0)
        if WRITE_DT:
            wsum += tl.sum(w, axis=0)
            acc = _dot(tl.trans(w), qt, acc, INTERPRET, tl.float32)
    if WRITE_DT:
        dt = 2.0 * (tt.to(tl.float32) * wsum[:, None] - acc)
        _store_tile(dt_ptr, dt, offs_n, mask_n, D, BLOCK_D)
    if HAS_GAMMA:
        tl.store(dgamma_ptr + offs_n, psum.to(dgamma_ptr.dtype.element_ty), mask=mask_n)


# ---------------------------------------------------------------------------------------------------------
# Launch configuration
# ---------------------------------------------------------------------------------------------------------

# Under the interpreter one small config (tiles of 16 so that tiny test sizes still span several tiles).
_INTERPRET_BLOCKS: dict[str, Any] = {"BLOCK_B": 16, "BLOCK_N": 16}
# Problems below this many scores use one fixed config instead of autotuning (every config is a compilation).
_AUTOTUNE_MIN_SCORES = 1 << 22
# Not tuned on a GPU (first guesses, from the pairwise and attention kernels' register budgets; 1-N KG batches
# are above _AUTOTUNE_MIN_SCORES and autotune): the tiles keep a handful of [BLOCK_B, BLOCK_N] float32
# temporaries and a [BLOCK, BLOCK_D] block of rows. "fwd" and "dq" programs own BLOCK_B rows, "dt" programs
# BLOCK_N columns.
_FIXED: dict[str, dict[str, Any]] = {
    "fwd": {"BLOCK_B": 64, "BLOCK_N": 64, "num_warps": 4, "num_stages": 3},
    "dq": {"BLOCK_B": 64, "BLOCK_N": 32, "num_warps": 4, "num_stages": 2},
    "dt": {"BLOCK_B": 32, "BLOCK_N": 64, "num_warps": 4, "num_stages": 2},
}
# Above this feature width the row/column blocks and accumulators of 64-wide tiles would spill: 32 x 32 tiles.
_WIDE_D = 64
_WIDE: dict[str, Any] = {"BLOCK_B": 32, "BLOCK_N": 32, "num_warps": 4, "num_stages": 2}
# The narrowest column split of the row-block kernels (forward, dq): a split's partial results cost O(B d).
_MIN_SPLIT_COLS = 512
_CONFIGS: dict[str, list[triton.Config]] = {
    "fwd": [
        triton.Config({"BLOCK_B": 64, "BLOCK_N": 64}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_B": 128, "BLOCK_N": 64}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_B": 64, "BLOCK_N": 128}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_B": 128, "BLOCK_N": 128}, num_warps=8, num_stages=2),
    ],
    "dq": [
        triton.Config({"BLOCK_B": 64, "BLOCK_N": 32}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_B": 64, "BLOCK_N": 64}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_B": 128, "BLOCK_N": 64}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_B": 32, "BLOCK_N": 64}, num_warps=4, num_stages=3),
    ],
    "dt": [
        triton.Config({"BLOCK_B": 32, "BLOCK_N": 64}, num_warps=4, num_stages=2),
        triton.Config({"BLOCK_B": 64, "BLOCK_N": 64}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_B": 64, "BLOCK_N": 128}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_B": 32, "BLOCK_N": 128}, num_warps=4, num_stages=3),
    ],
}
_TUNE_KEY = ["D", "B_BUCKET", "N_BUCKET", "SQUARED", "HAS_GAMMA"]


# name -> (kernel, its autotuned twin (None under the interpreter), the block along the grid's axis, the size
# along it: "B" or "N"). Every kernel writes its outputs in full and accumulates nothing across launches, so
# tuning runs need no buffer resets.
_KERNELS: dict[str, tuple[Any, Any, str, str]] = {
    name: (
        kernel,
        None if triton_interpreting() else triton.autotune(configs=_CONFIGS[name], key=_TUNE_KEY)(kernel),
        block,
        axis,
    )
    for name, kernel, block, axis in (
        ("fwd", _distance_logsumexp_fwd_kernel, "BLOCK_B", "B"),
        ("dq", _distance_logsumexp_bwd_dq_kernel, "BLOCK_B", "B"),
        ("dt", _distance_logsumexp_bwd_dt_kernel, "BLOCK_N", "N"),
    )
}


def _empty(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Allocation of every buffer a kernel must write in full (the tests poison it with NaN)."""
    return torch.empty(shape, dtype=dtype, device=device)


def _splits(rows: int, cols: int, device: torch.device) -> int:
    """How many column splits the row-block kernels take: enough programs for about two per SM (a batch of
    1024 rows is only 16 row blocks of 64), each split at least ``_MIN_SPLIT_COLS`` columns wide. Under the
    interpreter up to 3, so that tiny test sizes have several (and empty) splits."""
    if triton_interpreting():
        return min(3, triton.cdiv(cols, _INTERPRET_BLOCKS["BLOCK_N"]) + 1)
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    wanted = triton.cdiv(2 * sms, triton.cdiv(rows, 64))
    return max(1, min(wanted, triton.cdiv(cols, _MIN_SPLIT_COLS)))


def _launch(
    name: str, args: tuple[Any, ...], *, rows: int, cols: int, dim: int, splits: int = 1, **constexprs: Any
) -> None:
    """Launch kernel ``name`` over the blocks of its axis (times ``splits`` column splits) with the config for
    the problem's size."""
    plain, tuned, block, axis = _KERNELS[name]
    block_d = max(triton.next_power_of_2(dim), 16)
    if triton_interpreting():
        kernel, meta = plain, _INTERPRET_BLOCKS
    elif block_d > _WIDE_D:
        kernel, meta = plain, _WIDE
    elif rows * cols < _AUTOTUNE_MIN_SCORES or tuned is None:
        kernel, meta = plain, _FIXED[name]
    else:
        kernel, meta = tuned, {}
    size = rows if axis == "B" else cols

    def grid(meta: dict[str, Any]) -> tuple[int, int]:
        return (triton.cdiv(size, meta[block]), splits)

    kernel[grid](
        *args,
        rows,
        cols,
        dim,
        triton.next_power_of_2(rows),
        triton.next_power_of_2(cols),
        splits,
        min_norm(torch.float32) ** 2,
        **constexprs,
        INTERPRET=triton_interpreting(),
        BLOCK_D=block_d,
        **meta,
    )


def distance_logsumexp_fwd(
    q: torch.Tensor,
    t: torch.Tensor,
    qn2: torch.Tensor,
    tn2: torch.Tensor,
    gamma: torch.Tensor | None,
    *,
    squared: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the forward kernel on contiguous ``q [B, d]``, ``t [N, d]``, float32 norms ``qn2 [B]``,
    ``tn2 [N]``, ``gamma [N]`` or ``None``. Returns float32 ``(lse [B], rowsum [B])``."""
    rows, cols, dim = q.shape[0], t.shape[0], q.shape[1]
    if cols == 0 or rows == 0:  # an empty sum: lse = -inf, rowsum = 0
        lse = torch.full((rows,), float("-inf"), dtype=torch.float32, device=q.device)
        return lse, torch.zeros_like(lse)
    splits = _splits(rows, cols, q.device)
    lse = _empty((splits, rows), torch.float32, q.device)
    rowsum = _empty((splits, rows), torch.float32, q.device)
    _launch(
        "fwd",
        (q, t, qn2, tn2, gamma if gamma is not None else tn2, lse, rowsum),
        rows=rows,
        cols=cols,
        dim=dim,
        splits=splits,
        SQUARED=squared,
        HAS_GAMMA=gamma is not None,
    )
    if splits == 1:
        return lse[0], rowsum[0]
    return torch.logsumexp(lse, dim=0), rowsum.sum(0)


def distance_logsumexp_bwd(
    grad_lse: torch.Tensor,
    grad_rowsum: torch.Tensor,
    q: torch.Tensor,
    t: torch.Tensor,
    qn2: torch.Tensor,
    tn2: torch.Tensor,
    gamma: torch.Tensor | None,
    lse: torch.Tensor,
    *,
    squared: bool,
    needs: tuple[bool, bool, bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Gradients ``(dq [B, d], dt [N, d], dgamma [N])`` in the inputs' dtypes (``None`` where not needed);
    ``grad_lse``, ``grad_rowsum`` and ``lse`` are float32 ``[B]``."""
    need_q, need_t, need_gamma = needs
    rows, cols, dim = q.shape[0], t.shape[0], q.shape[1]
    dev = q.device
    common = (q, t, qn2, tn2, gamma if gamma is not None else tn2, lse, grad_lse, grad_rowsum)
    flags = {"SQUARED": squared, "HAS_GAMMA": gamma is not None}
    dq = dt = dgamma = None
    if need_q:
        if cols == 0 or rows == 0:
            dq = torch.zeros_like(q)
        else:
            splits = _splits(rows, cols, dev)
            parts = _empty((splits, rows, dim), torch.float32, dev)
            _launch("dq", (*common, parts), rows=rows, cols=cols, dim=dim, splits=splits, **flags)
            dq = (parts[0] if splits == 1 else parts.sum(0)).to(q.dtype)
    if need_t or need_gamma:
        dt = _empty((cols, dim) if need_t else (1, 1), t.dtype, dev)
        dgamma = _empty((cols,), gamma.dtype, dev) if gamma is not None else None
        if rows == 0:
            dt.zero_()
            if dgamma is not None:
                dgamma.zero_()
        elif cols:
            _launch(
                "dt",
                (*common, dt, dgamma if dgamma is not None else dt),
                rows=rows,
                cols=cols,
                dim=dim,
                WRITE_DT=need_t,
                **flags,
            )
        dt = dt if need_t else None
        dgamma = dgamma if need_gamma else None
    return dq, dt, dgamma


class DistanceLogsumexpFunction(torch.autograd.Function):
    """Autograd wrapper of the kernels: ``apply(q [B, d], t [N, d], gamma [N] or None, squared)`` ->
    float32 ``(lse [B], rowsum [B])``. Saves the inputs, their norms and ``lse`` (``O((B + N) d)``); the
    backward recomputes the score tiles."""

    @staticmethod
    def forward(
        ctx: Any, q: torch.Tensor, t: torch.Tensor, gamma: torch.Tensor | None, squared: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        q, t = q.contiguous(), t.contiguous()
        gamma = gamma.contiguous() if gamma is not None else None
        qn2, tn2 = _sqnorm(q), _sqnorm(t)
        lse, rowsum = distance_logsumexp_fwd(q, t, qn2, tn2, gamma, squared=squared)
        ctx.save_for_backward(q, t, qn2, tn2, gamma, lse)
        ctx.squared = squared
        return lse, rowsum

    @staticmethod
    def backward(
        ctx: Any, grad_lse: torch.Tensor, grad_rowsum: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, None]:
        q, t, qn2, tn2, gamma, lse = ctx.saved_tensors
        needs = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.needs_input_grad[2])
        if not any(needs):
            return None, None, None, None
        dq, dt, dgamma = distance_logsumexp_bwd(
            grad_lse.float().contiguous(),
            grad_rowsum.float().contiguous(),
            q,
            t,
            qn2,
            tn2,
            gamma,
            lse,
            squared=ctx.squared,
            needs=needs,
        )
        return dq, dt, dgamma, None


def distance_logsumexp_triton(
    q: torch.Tensor, t: torch.Tensor, gamma: torch.Tensor | None, *, squared: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel path of :func:`geoattn.kernels.distance_logsumexp.distance_logsumexp` on validated inputs
    (float32/float16/bfloat16 ``q [B, d]``, ``t [N, d]``, ``gamma [N]`` or ``None``): float32 outputs."""
    lse, rowsum = DistanceLogsumexpFunction.apply(q, t, gamma, squared)
    return lse, rowsum
