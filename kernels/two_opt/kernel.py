# Triton-jitted functions are untyped by nature (their arguments are blocks, pointers or constexprs).
# mypy: disable-error-code="no-untyped-def, untyped-decorator"
r"""Triton kernel for batched best-improvement 2-opt: one persistent program per instance.

Program ``b`` owns tour ``b`` (a copy of the input, rewritten in place) and runs the whole search of
:mod:`geoattn.kernels.two_opt.reference` in one launch, with no host synchronisation between moves:

1. **Scan.** Over the upper triangle of move tiles ``[BLOCK_I, BLOCK_J]`` (rows :math:`i \le n-3`, columns
   :math:`j \ge i_0 + 2`) it gathers :math:`t_i, t_{i+1}, t_j, t_{j+1}` from the tour and
   :math:`D_{t_i t_j}, D_{t_{i+1} t_{j+1}}, e_i, e_j` from the instance's ``[n, n]`` distances and forms
   :math:`\Delta_{ij} = ((D_{t_i t_j} + D_{t_{i+1} t_{j+1}}) - e_i) - e_j` in the reference's order of
   operations (bitwise the same values). Each lane keeps its smallest :math:`\Delta` and the row-major index
   :math:`i n + j` where it first occurred (strict ``<``; a lane meets its candidates in increasing index
   order), so after the scan ``min`` over the lanes, then the smallest index among the lanes holding that
   minimum, is exactly ``torch.min``'s choice: the smallest :math:`\Delta`, first in row-major order.
2. **Apply.** If :math:`\Delta < -\text{tol}_b` the program reverses :math:`t_{i+1} \dots t_j` in place by
   swapping pairs :math:`(i+1+k,\ j-k)`, ``BLOCK_R`` pairs at a time (all loads of a chunk before its
   stores, each pair owned by one lane, barriers between phases); otherwise the search of this instance
   ends, as it does after ``max_iterations`` moves.

Tour loads bypass L1 (``.cg``) since the same program rewrites the tour between scans. Values are computed
in the dtype of ``D`` (float32 or float64); the move index is int32, so :math:`n \le 46340`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["two_opt_search_triton"]

#: Largest n whose move indices i * n + j (and the sentinel n * n) fit in int32.
MAX_N = 46340
#: ``max_iterations=None``: a cap no search reaches (every move strictly shortens the tour).
_NO_LIMIT = 2**31 - 1


@triton.jit(do_not_specialize=["max_iterations"])  # one compilation for every cap (1 would be a constexpr)
def _two_opt_kernel(
    d_ptr,
    tour_ptr,
    tol_ptr,
    n,
    max_iterations,
    stride_db,
    stride_di,
    stride_tb,
    BLOCK_I: tl.constexpr,
    BLOCK_J: tl.constexpr,
    BLOCK_R: tl.constexpr,
):
    pid = tl.program_id(0).to(tl.int64)
    d_base = d_ptr + pid * stride_db  # this instance's [n, n] distances (unit column stride)
    t_base = tour_ptr + pid * stride_tb  # this instance's tour [n], rewritten in place
    tol = tl.load(tol_ptr + pid)
    offs_i = tl.arange(0, BLOCK_I)
    offs_j = tl.arange(0, BLOCK_J)
    offs_r = tl.arange(0, BLOCK_R)
    iteration = tl.full((), 0, tl.int32)
    go = iteration < max_iterations
    while go:
        best = tl.full((BLOCK_I, BLOCK_J), float("inf"), d_ptr.dtype.element_ty)  # [BLOCK_I, BLOCK_J]
        best_at = tl.zeros((BLOCK_I, BLOCK_J), tl.int32)  # [BLOCK_I, BLOCK_J]
        for i0 in range(0, n - 2, BLOCK_I):
            ii = i0 + offs_i  # [BLOCK_I]
            mask_i = ii < n
            ti = tl.load(t_base + ii, mask=mask_i, other=0, cache_modifier=".cg")
            ti1 = tl.load(t_base + (ii + 1) % n, mask=mask_i, other=0, cache_modifier=".cg")
            e_i = tl.load(d_base + ti * stride_di + ti1, mask=mask_i, other=0.0)  # [BLOCK_I]
            for j0 in range(i0 + 2, n, BLOCK_J):
                jj = j0 + offs_j  # [BLOCK_J]
                mask_j = jj < n
                tj = tl.load(t_base + jj, mask=mask_j, other=0, cache_modifier=".cg")
                tj1 = tl.load(t_base + (jj + 1) % n, mask=mask_j, other=0, cache_modifier=".cg")
                e_j = tl.load(d_base + tj * stride_di + tj1, mask=mask_j, other=0.0)  # [BLOCK_J]
                row = ii[:, None]
                col = jj[None, :]
                valid = (col >= row + 2) & (col < n) & ~((row == 0) & (col == n - 1))  # [BLOCK_I, BLOCK_J]
                p_ij = tl.load(d_base + ti[:, None] * stride_di + tj[None, :], mask=valid, other=0.0)
                p_next = tl.load(d_base + ti1[:, None] * stride_di + tj1[None, :], mask=valid, other=0.0)
                delta = ((p_ij + p_next) - e_i[:, None]) - e_j[None, :]  # [BLOCK_I, BLOCK_J]
                take = valid & (delta < best)
                best = tl.where(take, delta, best)
                best_at = tl.where(take, row * n + col, best_at)
        lowest = tl.min(tl.min(best, axis=1), axis=0)
        first = tl.min(tl.min(tl.where(best == lowest, best_at, n * n), axis=1), axis=0)
        improved = lowest < -tol
        if improved:
            i = first // n
            j = first - i * n
            half = (j - i) // 2  # pairs to swap in t_{i+1} .. t_j
            tl.debug_barrier()  # every lane has finished reading the tour
            for k0 in range(0, half, BLOCK_R):
                k = k0 + offs_r  # [BLOCK_R]
                mask_k = k < half
                left = t_base + (i + 1 + k)
                right = t_base + (j - k)
                a = tl.load(left, mask=mask_k, cache_modifier=".cg")
                c = tl.load(right, mask=mask_k, cache_modifier=".cg")
                tl.debug_barrier()  # replicated lanes have all loaded before any stores
                tl.store(left, c, mask=mask_k)
                tl.store(right, a, mask=mask_k)
            tl.debug_barrier()  # the next scan sees the new tour
        iteration += 1
        go = improved & (iteration < max_iterations)


def _launch_config(n: int) -> tuple[int, int, int]:
    """``(BLOCK_I, BLOCK_J, num_warps)`` for tours of ``n`` cities: small tiles for small ``n`` (less of
    the tile outside the triangle of moves), more warps for large ``n``."""
    block_j = 64 if n > 64 else (32 if n > 16 else 16)
    block_i = 32 if n > 128 else 16
    return block_i, block_j, (8 if n > 256 else 4)


def two_opt_search_triton(
    distances: torch.Tensor, tours: torch.Tensor, tol: torch.Tensor, max_iterations: int | None
) -> torch.Tensor:
    """Kernel path of :func:`geoattn.kernels.two_opt.two_opt_search` on validated float32/float64 inputs
    (shapes ``[B, n, n]``, ``[B, n]``, ``[B]``); returns new ``[B, n]`` long tours."""
    batch, n = tours.shape
    out = tours.clone(memory_format=torch.contiguous_format)
    if n < 4 or batch == 0 or max_iterations == 0:  # fewer than 4 cities: no move exists
        return out
    if n > MAX_N:
        raise ValueError(
            f"two_opt_search: the Triton kernel takes n <= {MAX_N} (int32 move indices), got n = {n}; "
            "use backend='torch'"
        )
    d = distances.contiguous()
    limit = _NO_LIMIT if max_iterations is None else min(max_iterations, _NO_LIMIT)
    block_i, block_j, num_warps = _launch_config(n)
    _two_opt_kernel[(batch,)](
        d,
        out,
        tol.to(d.dtype).contiguous(),
        n,
        limit,
        d.stride(0),
        d.stride(1),
        out.stride(0),
        BLOCK_I=block_i,
        BLOCK_J=block_j,
        BLOCK_R=32 * num_warps,
        num_warps=num_warps,
    )
    return out
