# Triton-jitted functions are untyped by nature (their arguments are blocks, pointers or constexprs).
# mypy: disable-error-code="no-untyped-def, untyped-decorator"
r"""Triton kernel for pointer decoding: a fused step, and the same kernel persistent over all ``n - 1`` steps.

One program owns ``BLOCK_P`` rows (start cities) of one instance, so every key tile it loads serves all of
them: grid ``(B, ceil(P / BLOCK_P))``. ``_pointer_decode_kernel`` runs the positions ``first .. stop - 1``;
for each it does everything of :func:`~geoattn.kernels.pointer_decode.reference.pointer_decode_step_reference`
in registers, with no host round trip:

1. **Query.** :math:`q = \text{fixed} + W_l h_l`: the fixed part is loaded once per launch, :math:`W_l h_l` is a
   gather of row :math:`l` of the precomputed ``last_queries`` (``l`` read back from the tour). The model's
   per-step query update is exactly this gather + add, so it fits in the kernel; the only ``d x d`` matmul of
   a step, the glimpse's output projection :math:`W_o`, is folded into the logit keys once per instance
   (:math:`\tilde k_j = W_o^\top W_k h_j`, :meth:`geoattn.nn.TSPAttentionModel.pointer_keys`).
2. **Glimpse.** Per node tile ``[BLOCK_N]``, all heads at once as batched dots over the head axis:
   :math:`S = Q K` (``[H, BLOCK_P, d_k] @ [H, d_k, BLOCK_N]``), visited cities masked to :math:`-\infty`, an
   online softmax (running max and sum per head and row), :math:`c \mathrel{+}= P V`
   (``[H, BLOCK_P, BLOCK_N] @ [H, BLOCK_N, d_k]``).
3. **Choice.** Per node tile :math:`u = \sum_h c_h \tilde K_h` (``[BLOCK_P, BLOCK_N]``, the heads' dots
   summed). Greedy keeps the running maximum of :math:`u` over unvisited cities and its first index (strict
   ``>`` between tiles, the smallest index inside one). Sampling sweeps the tiles twice more, recomputing
   :math:`u` (nothing of size ``n`` is stored): with :math:`\ell_j = C\tanh(u_j/\sqrt d)` and its maximum
   :math:`\ell_{\max}` from the first sweep, the sum :math:`W` of :math:`w_j = e^{\ell_j - \ell_{\max}}`, then
   :math:`\#\{j: F_j \le U W\}` with the running prefix sum :math:`F` (``tl.cumsum`` per tile plus the
   carry), capped at the last unvisited city.
4. **Update.** The city goes to ``tours[..., position]`` and ``visited``; a barrier makes both visible to the
   program's other threads before the next position reads them (those loads bypass L1, ``.cg``).

Launches: the **fused step** is one launch per position (``first = t, stop = t + 1``, ``n - 1`` launches);
the **persistent** kernel is one launch for all positions (``first = 1, stop = n``). Triton cannot pin a
tensor in shared memory across loop iterations, so the persistent kernel re-reads the instance's keys every
step; they are ``3 n d`` elements per instance (77 KB for TSP100 in bfloat16), read by the ``ceil(P/BLOCK_P)``
programs of the instance at about the same time, and stay L2-resident.

Numerics: every load is upcast to float32 and every dot is IEEE float32 (no TF32), so the kernel computes the
reference's float32 values up to the order of summation: greedy tours agree unless two cities' compatibilities
are within a few float32 ulps. ``tanh`` is :math:`\operatorname{sign}(x)(1 - e^{-2|x|})/(1 + e^{-2|x|})`
(absolute error ~1e-7; it enters sampling only). Heads and head widths are padded to powers of two (head
width at least 16, the smallest ``tl.dot``) with zeros, which add nothing to any dot. Rows with fewer than
``BLOCK_P`` starts leave lanes idle (greedy decoding with one start per instance uses 1/16 of them).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..backend import triton_interpreting
from .reference import PointerKeys, initial_state

__all__ = ["pointer_decode_triton"]

#: Rows (start cities of one instance) per program; the smallest M of ``tl.dot``.
BLOCK_P = 16


@triton.jit
def _node_tile(base, key_off, key_ok, seen, row_ok, n, n0, BLOCK_N: tl.constexpr):
    """The node tile from city ``n0``: ``(cols [BLOCK_N], unvisited [BLOCK_P, BLOCK_N], keys)``, the keys of
    the ``[H, dk, n]`` (or ``[d, n]``) tensor at ``base`` as float32 ``[H_PAD, DK_PAD, BLOCK_N]``, zero-padded.
    The visited flags bypass L1: the same program rewrites them between steps."""
    cols = n0 + tl.arange(0, BLOCK_N)
    in_tile = (cols < n)[None, :]
    flags = tl.load(
        seen[:, None] + cols[None, :], mask=row_ok[:, None] & in_tile, other=1, cache_modifier=".cg"
    )
    keys = tl.load(base + key_off + n0, mask=key_ok & in_tile[None], other=0.0)
    return cols, flags == 0, keys.to(tl.float32)


@triton.jit
def _glimpse(
    q,
    gk,
    gv,
    seen,
    row_ok,
    n,
    dk,
    key_off,
    key_ok,
    val_off,
    val_ok,
    BLOCK_P: tl.constexpr,
    BLOCK_N: tl.constexpr,
    H_PAD: tl.constexpr,
    DK_PAD: tl.constexpr,
):
    """The glimpse ``c`` ``[H_PAD, BLOCK_P, DK_PAD]`` of the queries ``q`` (same shape, float32): attention
    over the unvisited cities, an online softmax over node tiles."""
    m = tl.full((H_PAD, BLOCK_P), float("-inf"), tl.float32)  # running max per head and row
    total = tl.zeros((H_PAD, BLOCK_P), tl.float32)  # running sum per head and row
    acc = tl.zeros((H_PAD, BLOCK_P, DK_PAD), tl.float32)
    for n0 in range(0, n, BLOCK_N):
        cols, open_, k = _node_tile(gk, key_off, key_ok, seen, row_ok, n, n0, BLOCK_N)
        s = tl.dot(q, k, input_precision="ieee")  # [H_PAD, BLOCK_P, BLOCK_N]
        s = tl.where(open_[None, :, :], s, float("-inf"))
        m_new = tl.maximum(m, tl.max(s, axis=2))
        shift = tl.where(m_new == float("-inf"), 0.0, m_new)  # a row with no open city yet: exp(-inf) = 0
        alpha = tl.exp(m - shift)
        p = tl.exp(s - shift[:, :, None])
        total = total * alpha + tl.sum(p, axis=2)
        v = tl.load(
            gv + val_off + n0 * dk, mask=val_ok & (cols < n)[None, :, None], other=0.0
        )  # [H_PAD, BLOCK_N, DK_PAD]
        acc = tl.dot(p, v.to(tl.float32), acc * alpha[:, :, None], input_precision="ieee")
        m = m_new
    return acc / tl.where(total > 0, total, 1.0)[:, :, None]  # idle rows (no open city) get 0


@triton.jit
def _choose(
    c,
    lk,
    seen,
    row_ok,
    uniform,
    clip,
    inv_sqrt_d,
    n,
    key_off,
    key_ok,
    SAMPLE: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """The next city ``[BLOCK_P]`` int32 of each row from the glimpses ``c``: greedy, or sampled with the
    uniforms ``uniform``. Sweep 0 finds the largest :math:`u` (and clipped logit) and its first city, sweeps 1
    and 2 (sampling) the sum of the weights and the number of prefix sums at most ``uniform`` times it."""
    best = tl.full((BLOCK_P,), float("-inf"), tl.float32)  # largest u of an unvisited city
    best_at = tl.zeros((BLOCK_P,), tl.int32)  # its first city
    last_open = tl.full((BLOCK_P,), -1, tl.int32)  # the last unvisited city
    top = tl.full((BLOCK_P,), float("-inf"), tl.float32)  # largest clipped logit
    total = tl.zeros((BLOCK_P,), tl.float32)  # sum of the weights
    below = tl.zeros((BLOCK_P,), tl.int32)  # prefix sums <= uniform * total
    for sweep in tl.static_range(3 if SAMPLE else 1):
        threshold = uniform * total
        carry = tl.zeros((BLOCK_P,), tl.float32)  # the prefix sum before this tile
        for n0 in range(0, n, BLOCK_N):
            cols, open_, keys = _node_tile(lk, key_off, key_ok, seen, row_ok, n, n0, BLOCK_N)
            u = tl.sum(tl.dot(c, keys, input_precision="ieee"), axis=0)  # [BLOCK_P, BLOCK_N]
            if sweep == 0:
                u_open = tl.where(open_, u, float("-inf"))
                tile_max = tl.max(u_open, axis=1)
                tile_at = tl.min(tl.where(open_ & (u_open == tile_max[:, None]), cols[None, :], n), axis=1)
                take = tile_max > best  # an earlier tile keeps its tie
                best = tl.where(take, tile_max, best)
                best_at = tl.where(take, tile_at, best_at)
                last_open = tl.maximum(last_open, tl.max(tl.where(open_, cols[None, :], -1), axis=1))
            if SAMPLE:
                x = u * inv_sqrt_d
                t = tl.exp(-2.0 * tl.abs(x))  # tanh(x) = sign(x) (1 - t) / (1 + t), no overflow
                logit = clip * tl.where(x < 0, t - 1.0, 1.0 - t) / (1.0 + t)
                if sweep == 0:
                    top = tl.maximum(top, tl.max(tl.where(open_, logit, float("-inf")), axis=1))
                else:
                    w = tl.where(open_, tl.exp(logit - top[:, None]), 0.0)
                    if sweep == 1:
                        total += tl.sum(w, axis=1)
                    else:
                        cdf = carry[:, None] + tl.cumsum(w, axis=1)  # [BLOCK_P, BLOCK_N]
                        below += tl.sum(
                            ((cdf <= threshold[:, None]) & (cols < n)[None, :]).to(tl.int32), axis=1
                        )
                        carry = tl.max(cdf, axis=1)  # the prefix sum never decreases
    if SAMPLE:
        best_at = tl.minimum(below, last_open)
    return best_at


@triton.jit(do_not_specialize=["first", "stop"])  # one compilation for every position range
def _pointer_decode_kernel(
    gk_ptr,
    gv_ptr,
    lk_ptr,
    lq_ptr,
    fq_ptr,
    tour_ptr,
    visited_ptr,
    noise_ptr,
    n,
    rows_per_instance,
    heads,
    dk,
    first,
    stop,
    clip,
    inv_sqrt_d,
    SAMPLE: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_N: tl.constexpr,
    H_PAD: tl.constexpr,
    DK_PAD: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    rows = tl.program_id(1) * BLOCK_P + tl.arange(0, BLOCK_P)  # [BLOCK_P] start-city rows of instance b
    row_ok = rows < rows_per_instance
    d = heads * dk
    gk = gk_ptr + b * d * n  # this instance's [H, dk, n] glimpse keys
    gv = gv_ptr + b * d * n  # [H, n, dk] glimpse values
    lk = lk_ptr + b * d * n  # [d, n] logit keys
    lq = lq_ptr + b * n * d  # [n, d] last-city queries
    row = b * rows_per_instance + rows  # [BLOCK_P] global row index (int64)
    tour = tour_ptr + row * n  # [BLOCK_P] pointers to the rows' tours
    seen = visited_ptr + row * n  # [BLOCK_P] pointers to the rows' visited flags
    hh = tl.arange(0, H_PAD)[:, None, None]
    k_mid = tl.arange(0, DK_PAD)[None, :, None]
    k_last = tl.arange(0, DK_PAD)[None, None, :]
    j_mid = tl.arange(0, BLOCK_N)[None, :, None]
    j_last = tl.arange(0, BLOCK_N)[None, None, :]
    # Offsets of the first node tile: [H, dk, n] keys and [d, n] logit keys (feature h * dk + k) as
    # [H_PAD, DK_PAD, BLOCK_N], [H, n, dk] values as [H_PAD, BLOCK_N, DK_PAD]; padded heads and widths masked.
    key_off = (hh * dk + k_mid) * n + j_last
    key_ok = (hh < heads) & (k_mid < dk)
    val_off = (hh * n + j_mid) * dk + k_last
    val_ok = (hh < heads) & (k_last < dk)
    features = hh * dk + k_last  # [H_PAD, 1, DK_PAD]
    q_mask = val_ok & row_ok[None, :, None]  # [H_PAD, BLOCK_P, DK_PAD]
    fixed = tl.load(fq_ptr + row[None, :, None] * d + features, mask=q_mask, other=0.0).to(tl.float32)
    for position in range(first, stop):
        last = tl.load(tour + position - 1, mask=row_ok, other=0, cache_modifier=".cg")  # [BLOCK_P]
        q = fixed + tl.load(lq + last[None, :, None] * d + features, mask=q_mask, other=0.0).to(tl.float32)
        c = _glimpse(
            q, gk, gv, seen, row_ok, n, dk, key_off, key_ok, val_off, val_ok, BLOCK_P, BLOCK_N, H_PAD, DK_PAD
        )
        uniform = 0.0
        if SAMPLE:
            uniform = tl.load(noise_ptr + row * (n - 1) + (position - 1), mask=row_ok, other=0.0).to(
                tl.float32
            )
        city = _choose(
            c, lk, seen, row_ok, uniform, clip, inv_sqrt_d, n, key_off, key_ok, SAMPLE, BLOCK_P, BLOCK_N
        )
        tl.store(tour + position, city.to(tl.int64), mask=row_ok)
        tl.store(seen + city, tl.full((BLOCK_P,), 1, tl.uint8), mask=row_ok)
        tl.debug_barrier()  # the next position reads this one's tour entry and visited flags


def _block_n(n: int) -> int:
    """Cities per node tile: ``n`` rounded up to a power of two, at least 16 (the smallest ``tl.dot``), at most
    32 on a GPU (the ``[H, BLOCK_P, BLOCK_N]`` scores stay in registers) or 128 under the interpreter (where an
    op costs about the same whatever its size)."""
    return min(max(16, triton.next_power_of_2(n)), 128 if triton_interpreting() else 32)


def pointer_decode_triton(
    keys: PointerKeys,
    fixed_queries: torch.Tensor,
    starts: torch.Tensor,
    clip: float,
    noise: torch.Tensor | None,
    persistent: bool,
) -> torch.Tensor:
    """Kernel path of :func:`geoattn.kernels.pointer_decode.pointer_decode` on validated inputs (float16,
    bfloat16 or float32 tensors of one dtype and device; shapes in :class:`PointerKeys`); returns the
    ``[B, P, n]`` long tours. ``persistent``: one launch for all positions; else one launch per position."""
    batch, heads, dk, n = keys.glimpse_keys.shape
    rows = starts.shape[1]
    tours, visited = initial_state(starts, n)
    if n < 2 or batch * rows == 0:
        return tours
    gk, gv, lk, lq = (t.contiguous() for t in keys)
    fixed = fixed_queries.contiguous()
    uniform = tours if noise is None else noise.contiguous()  # any pointer when greedy: never read
    flags = visited.view(torch.uint8)
    constants = {
        "SAMPLE": noise is not None,
        "BLOCK_P": BLOCK_P,
        "BLOCK_N": _block_n(n),
        "H_PAD": triton.next_power_of_2(heads),
        "DK_PAD": max(16, triton.next_power_of_2(dk)),
        "num_warps": 4,
    }
    grid = (batch, triton.cdiv(rows, BLOCK_P))
    ranges = [(1, n)] if persistent else [(t, t + 1) for t in range(1, n)]
    for first, stop in ranges:
        _pointer_decode_kernel[grid](
            gk,
            gv,
            lk,
            lq,
            fixed,
            tours,
            flags,
            uniform,
            n,
            rows,
            heads,
            dk,
            first,
            stop,
            float(clip),
            1.0 / float(heads * dk) ** 0.5,
            **constants,
        )
    return tours
