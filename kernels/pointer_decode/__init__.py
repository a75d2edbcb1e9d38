r"""Pointer decoding of the TSP attention policy: a fused Triton step, a persistent Triton kernel over all steps,
and their torch reference.

For ``B`` instances of ``n`` cities and ``P`` rows per instance (POMO start cities, or samples), each step
attends from every row's context query over its unvisited cities (``H``-head glimpse), scores every city with
the clipped pointer logits :math:`C \tanh(u_j/\sqrt d)`, picks one (greedy, or sampled from supplied uniform
noise), and appends it to the row's tour; ``n - 1`` steps give whole tours (the math is in
:mod:`geoattn.kernels.pointer_decode.reference`). The per-instance tensors (:class:`PointerKeys`, from
:meth:`geoattn.nn.TSPAttentionModel.pointer_keys`) are shared by the ``P`` rows of an instance. The decoder of
:func:`geoattn.solvers.decode_tours` (its ``backend`` argument lands here).

Backends: ``"torch"`` runs :func:`pointer_decode_reference` step by step; ``"triton"`` runs
``_pointer_decode_kernel`` (:mod:`geoattn.kernels.pointer_decode.kernel`) in one launch per step
(``persistent=False``) or one launch for the whole decoding (``persistent=True``). Both compute in float32 and
give the same tours up to float32 near-ties of the compatibilities (the order of summation differs).
"""

from __future__ import annotations

import math

import torch

from ..backend import Backend, resolve_backend, triton_implemented
from .reference import PointerKeys, pointer_decode_reference, pointer_decode_step_reference

__all__ = [
    "TRITON_IMPLEMENTED",
    "PointerKeys",
    "auto_prefers_torch",
    "pointer_decode",
    "pointer_decode_reference",
    "pointer_decode_step_reference",
]

_OP = "pointer_decode"
# Whether this folder has a Triton kernel (a kernel.py); `geoattn info` reports the same per kernel.
TRITON_IMPLEMENTED: bool = triton_implemented(_OP)
# Dtypes the Triton kernel reads (it computes in float32); float64 uses the torch reference.
_KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def _check(
    keys: PointerKeys, fixed_queries: torch.Tensor, starts: torch.Tensor, noise: torch.Tensor | None
) -> None:
    """Shapes, dtypes and devices of :func:`pointer_decode`'s tensors; the start cities in range."""
    if not isinstance(keys, PointerKeys):
        raise TypeError(f"{_OP}: keys must be a PointerKeys, got {type(keys).__name__}")
    gk, gv, lk, lq = keys
    if gk.dim() != 4:
        raise ValueError(f"{_OP}: glimpse_keys must be [B, H, d/H, n], got {tuple(gk.shape)}")
    b, h, dk, n = gk.shape
    d = h * dk
    if starts.dim() != 2 or starts.shape[0] != b:
        raise ValueError(f"{_OP}: starts must be [B={b}, P], got {tuple(starts.shape)}")
    expected = {
        "glimpse_values": (gv, (b, h, n, dk)),
        "logit_keys": (lk, (b, d, n)),
        "last_queries": (lq, (b, n, d)),
        "fixed_queries": (fixed_queries, (b, starts.shape[1], d)),
    }
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(
                f"{_OP}: {name} must have shape {list(shape)} (from glimpse_keys [B, H, d/H, n] = "
                f"{list(gk.shape)} and starts [B, P] = {list(starts.shape)}), got {list(tensor.shape)}"
            )
    floats = (gk, gv, lk, lq, fixed_queries)
    if len({t.dtype for t in floats}) != 1 or not gk.dtype.is_floating_point:
        raise ValueError(
            f"{_OP}: the keys and fixed_queries must share one floating dtype, got {[t.dtype for t in floats]}"
        )
    if starts.dtype != torch.long:
        raise ValueError(f"{_OP}: starts must be long, got {starts.dtype}")
    tensors = (*floats, starts) if noise is None else (*floats, starts, noise)
    if len({t.device for t in tensors}) != 1:
        raise ValueError(f"{_OP}: all tensors must be on one device, got {[str(t.device) for t in tensors]}")
    if noise is not None and (
        tuple(noise.shape) != (b, starts.shape[1], n - 1) or not noise.dtype.is_floating_point
    ):
        raise ValueError(
            f"{_OP}: noise must be a floating [B, P, n - 1] = {[b, starts.shape[1], n - 1]} tensor, got "
            f"{noise.dtype} {list(noise.shape)}"
        )
    if starts.numel() and not bool(((starts >= 0) & (starts < n)).all()):
        raise ValueError(
            f"{_OP}: starts must be cities 0..{n - 1}, got values from {int(starts.min())} to {int(starts.max())}"
        )


def auto_prefers_torch(instances: int, starts: int, *, n: int) -> bool:
    """Whether ``backend="auto"`` decodes with torch on CUDA: few starts per instance (``starts < 16``, so most
    of a program's 16 start lanes idle) with many instances (``>= 1000``) or many cities (``n >= 1000``).

    Measured on an H200 (``benchmarks/tsp/decoding.py``, RESULTS.md): with one start the persistent kernel
    runs at 0.4-0.5x eager torch from 1,000 instances (n = 50-1000) and at 0.4-0.9x for n = 1000 at any batch,
    while it is 2-15x torch at fewer instances and >= 1.0x with 100 starts everywhere."""
    return starts < 16 and (instances >= 1000 or n >= 1000)


def pointer_decode(
    keys: PointerKeys,
    fixed_queries: torch.Tensor,
    starts: torch.Tensor,
    *,
    clip: float,
    noise: torch.Tensor | None = None,
    persistent: bool = True,
    backend: Backend = "auto",
) -> torch.Tensor:
    r"""Decode ``P`` tours per instance from the start cities ``starts`` (module docstring).

    Args:
        keys: the per-instance tensors, ``glimpse_keys [B, H, d/H, n]``, ``glimpse_values [B, H, n, d/H]``,
            ``logit_keys [B, d, n]``, ``last_queries [B, n, d]``, one floating dtype.
        fixed_queries: ``[B, P, d]`` :math:`W_g \bar h + W_f h_f` of each row, the dtype of ``keys``.
        starts: ``[B, P]`` long start cities, ``0 <= starts < n``.
        clip: :math:`C > 0` of the tanh clipping.
        noise: ``[B, P, n - 1]`` uniforms in :math:`[0, 1)` (``noise[..., t - 1]`` draws the city at position
            ``t``) for sampled decoding; ``None``: greedy. (default: ``None``)
        persistent: for ``"triton"``, one launch for all ``n - 1`` steps; ``False``: one fused launch per step.
            (default: ``True``)
        backend: ``"auto"`` (Triton for CUDA tensors unless :func:`auto_prefers_torch`, the torch
            reference otherwise), ``"torch"`` or ``"triton"`` (CUDA tensors, or CPU tensors under
            ``TRITON_INTERPRET=1``). (default: ``"auto"``)

    Returns:
        ``[B, P, n]`` long tours, each a permutation of ``0..n-1`` beginning at its start city.

    Notes:
        The kernel reads float16, bfloat16 and float32 and computes in float32; **float64 inputs always use
        the torch reference** (in float64), also with ``backend="triton"``. Noise values are not checked.
    """
    _check(keys, fixed_queries, starts, noise)
    if not (isinstance(clip, (int, float)) and clip > 0 and math.isfinite(clip)):
        raise ValueError(f"{_OP}: clip must be a finite number > 0, got {clip!r}")
    which = resolve_backend(backend, fixed_queries, starts, op=_OP, implemented=TRITON_IMPLEMENTED)
    if backend == "auto" and auto_prefers_torch(*starts.shape, n=keys.logit_keys.shape[-1]):
        which = "torch"
    if which == "torch" or fixed_queries.dtype not in _KERNEL_DTYPES:
        return pointer_decode_reference(keys, fixed_queries, starts, clip=clip, noise=noise)
    from .kernel import pointer_decode_triton  # triton is imported only when the kernel runs

    return pointer_decode_triton(keys, fixed_queries, starts, clip, noise, persistent)
