r"""Batched best-improvement 2-opt: a persistent Triton kernel (one program per instance) and its torch reference.

Per instance :math:`b` and iteration, the move :math:`(i, j)` with the smallest

.. math::
    \Delta_{ij} = \big((D_{t_i t_j} + D_{t_{i+1} t_{j+1}}) - D_{t_i t_{i+1}}\big) - D_{t_j t_{j+1}}

(first in row-major order on ties) reverses :math:`t_{i+1} \dots t_j` if :math:`\Delta_{ij} < -\text{tol}_b`;
the search ends when no move improves or after ``max_iterations`` moves. Both backends give the same tours,
bitwise (same float operations in the same order, same tie-breaking). The user-facing search, with input
checks, tolerances and lengths, is :func:`geoattn.solvers.two_opt` (its ``backend`` argument lands here).
"""

from __future__ import annotations

import torch

from ..backend import Backend, resolve_backend, triton_implemented
from .reference import two_opt_search_reference

__all__ = ["TRITON_IMPLEMENTED", "two_opt_search", "two_opt_search_reference"]

_OP = "two_opt"
# Whether this folder has a Triton kernel (a kernel.py); `geoattn info` reports the same per kernel.
TRITON_IMPLEMENTED: bool = triton_implemented(_OP)
# Dtypes the Triton kernel computes in; others use the torch reference.
_KERNEL_DTYPES = (torch.float32, torch.float64)


def two_opt_search(
    distances: torch.Tensor,
    tours: torch.Tensor,
    tol: torch.Tensor,
    *,
    max_iterations: int | None = None,
    backend: Backend = "auto",
) -> torch.Tensor:
    r"""Best-improvement 2-opt on a batch of tours until no instance improves (module docstring).

    Args:
        distances: ``[B, n, n]`` symmetric distances (floating point, finite).
        tours: ``[B, n]`` long, a permutation of ``0 .. n-1`` per row.
        tol: ``[B]`` thresholds :math:`\ge 0`: a move is applied only if :math:`\Delta < -\text{tol}_b`.
        max_iterations: the most moves per instance; ``None``: until no move improves. (default: ``None``)
        backend: ``"auto"`` (Triton for CUDA tensors, the torch reference otherwise), ``"torch"`` or
            ``"triton"`` (CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``). (default: ``"auto"``)

    Returns:
        ``[B, n]`` long, the improved tours (a new tensor; the inputs are not modified).

    Notes:
        Symmetry and the permutations are not checked here (:func:`geoattn.solvers.two_opt` checks them).
        The kernel computes float32 and float64 distances in their own dtype; **other dtypes always use
        the torch reference**, also with ``backend="triton"``. The kernel needs :math:`n \le 46340`.
    """
    if distances.dim() != 3 or tours.dim() != 2 or distances.shape != (*tours.shape, tours.shape[1]):
        raise ValueError(
            f"{_OP}: distances [B, n, n] and tours [B, n] must agree, got {tuple(distances.shape)} "
            f"and {tuple(tours.shape)}"
        )
    if tours.dtype != torch.long or not distances.dtype.is_floating_point:
        raise ValueError(
            f"{_OP}: tours must be long and distances floating point, got {tours.dtype} and {distances.dtype}"
        )
    if tol.shape != tours.shape[:1]:
        raise ValueError(f"{_OP}: tol must have shape [{tours.shape[0]}], got {tuple(tol.shape)}")
    if len({distances.device, tours.device, tol.device}) != 1:
        raise ValueError(
            f"{_OP}: distances, tours and tol must be on one device, got "
            f"{distances.device}, {tours.device} and {tol.device}"
        )
    if max_iterations is not None and max_iterations < 0:
        raise ValueError(f"{_OP}: max_iterations must be None or >= 0, got {max_iterations}")
    which = resolve_backend(backend, distances, tours, tol, op=_OP, implemented=TRITON_IMPLEMENTED)
    tol = tol.to(distances.dtype)
    if which == "torch" or distances.dtype not in _KERNEL_DTYPES:
        return two_opt_search_reference(distances, tours, tol, max_iterations=max_iterations)
    from .kernel import two_opt_search_triton  # triton is imported only when the kernel runs

    return two_opt_search_triton(distances, tours, tol, max_iterations)
