r"""Log-sum-exp and row sums of negative distances to every column, without a ``[B, N]`` score matrix.

.. math::
    s_{bj} = -\|q_b - t_j\|_2^{\,p} + \gamma_j,\qquad
    \operatorname{lse}_b = \log\sum_j e^{s_{bj}},\qquad \operatorname{rowsum}_b = \sum_j s_{bj},

``p = 2`` (``squared=True``) or ``p = 1``: the pieces of a 1-N softmax cross entropy of a distance-based
knowledge-graph model (:func:`geoattn.kg.losses.fused_lcwa_cross_entropy`). The torch reference
(:mod:`.reference`) is the specification; the Triton kernels (:mod:`.kernel`) stream column tiles through an
online log-sum-exp and recompute them in the backward, so memory stays ``O((B + N) d)``.
"""

from __future__ import annotations

import torch

from ..backend import Backend, resolve_backend, triton_implemented
from .reference import distance_logsumexp_reference, distance_scores_reference

__all__ = [
    "MAX_DIM",
    "TRITON_IMPLEMENTED",
    "distance_logsumexp",
    "distance_logsumexp_reference",
    "distance_scores_reference",
]

_OP = "distance_logsumexp"
# Whether this folder has a Triton kernel (a kernel.py); `geoattn info` reports the same per kernel.
TRITON_IMPLEMENTED: bool = triton_implemented(_OP)
# Dtypes the Triton kernel computes (float32 accumulation); float64 uses the torch reference.
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_DTYPES = (*_KERNEL_DTYPES, torch.float64)
#: The largest feature dimension ``d`` (one tile of the kernels holds a whole row).
MAX_DIM = 256


def distance_logsumexp(
    q: torch.Tensor,
    t: torch.Tensor,
    gamma: torch.Tensor | None = None,
    *,
    squared: bool,
    backend: Backend = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Per row of ``q``: the log-sum-exp and the sum of the scores :math:`s_{bj} = -\|q_b - t_j\|^p + \gamma_j`.

    Args:
        q: ``[B, d]`` query points (float32, float16, bfloat16 or float64; ``1 <= d <= 256``).
        t: ``[N, d]`` points of every column (same dtype and device as ``q``).
        gamma: ``[N]`` column biases :math:`\gamma_j`, or ``None`` for none (default ``None``).
        squared: ``True`` for :math:`p = 2` (squared distances), ``False`` for :math:`p = 1` (distances; their
            gradient at zero distance is defined as 0, a subgradient of the norm, so it is finite).
        backend: ``"auto"`` (Triton for CUDA tensors, the torch reference otherwise), ``"torch"`` or
            ``"triton"`` (CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``). Default ``"auto"``.

    Returns:
        ``(lse [B], rowsum [B])`` in float32 (float64 for float64 inputs), differentiable in ``q``, ``t`` and
        ``gamma``; ``lse = -inf`` and ``rowsum = 0`` when ``N = 0``.

    Notes:
        Squared distances are taken in the Gram form :math:`\|q\|^2 + \|t\|^2 - 2\langle q, t\rangle`, clamped at
        0, which loses precision for near-coincident points (relative to :math:`\|q\|^2 + \|t\|^2`). The Triton
        kernels compute in float32 (no TF32) and never form the ``[B, N]`` scores; their backward uses no
        atomics (deterministic). **float64 inputs always use the torch reference**, also with
        ``backend="triton"``; the reference forms the ``[B, N]`` scores.
    """
    _check_inputs(q, t, gamma, squared)
    tensors = (q, t) if gamma is None else (q, t, gamma)
    which = resolve_backend(backend, *tensors, op=_OP, implemented=TRITON_IMPLEMENTED)
    if which == "torch" or q.dtype not in _KERNEL_DTYPES:
        return distance_logsumexp_reference(q, t, gamma, squared=squared)
    from .kernel import distance_logsumexp_triton  # triton is imported only when the kernel runs

    return distance_logsumexp_triton(q, t, gamma, squared=squared)


def _check_inputs(q: torch.Tensor, t: torch.Tensor, gamma: torch.Tensor | None, squared: bool) -> None:
    """Raise ``ValueError``/``TypeError`` naming the argument, its value and what is accepted."""
    for name, x in (("q", q), ("t", t)):
        if not isinstance(x, torch.Tensor) or x.dim() != 2:
            shown = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{_OP}: {name} must be a 2-D tensor ([B, d] / [N, d]), got {shown}")
        if x.dtype not in _DTYPES:
            raise ValueError(f"{_OP}: {name} must have a dtype of {_DTYPES}, got {x.dtype}")
    if q.shape[1] != t.shape[1] or not 1 <= q.shape[1] <= MAX_DIM:
        raise ValueError(
            f"{_OP}: q [B, d] and t [N, d] need the same d in [1, {MAX_DIM}], got q {tuple(q.shape)} and "
            f"t {tuple(t.shape)}"
        )
    if gamma is not None and (not isinstance(gamma, torch.Tensor) or tuple(gamma.shape) != (t.shape[0],)):
        shown = tuple(gamma.shape) if isinstance(gamma, torch.Tensor) else type(gamma).__name__
        raise ValueError(f"{_OP}: gamma must be None or a tensor [N] = [{t.shape[0]}], got {shown}")
    others = [t] if gamma is None else [t, gamma]
    if any(x.dtype != q.dtype for x in others):
        raise ValueError(f"{_OP}: q, t and gamma must share a dtype, got {[x.dtype for x in (q, *others)]}")
    if any(x.device != q.device for x in others):
        raise ValueError(
            f"{_OP}: q, t and gamma must be on the same device, got {[str(x.device) for x in (q, *others)]}"
        )
    if not isinstance(squared, bool):
        raise TypeError(f"{_OP}: squared must be a bool, got {squared!r}")
