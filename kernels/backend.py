"""Choosing between a kernel's Triton implementation and its torch reference."""

from __future__ import annotations

import importlib.util
import os
from typing import Literal

import torch

__all__ = ["Backend", "resolve_backend", "triton_available", "triton_implemented", "triton_interpreting"]

Backend = Literal["auto", "torch", "triton"]
_BACKENDS = ("auto", "torch", "triton")


def triton_available() -> bool:
    """Whether the ``triton`` package can be imported here (it ships Linux wheels only)."""
    return importlib.util.find_spec("triton") is not None


def triton_interpreting() -> bool:
    """Whether Triton runs kernels on the CPU through its interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def triton_implemented(op: str) -> bool:
    """Whether kernel folder ``op`` has a Triton implementation, i.e. a ``kernel.py`` beside its reference.

    Looked up without importing ``kernel.py`` (so without importing triton). Kernel packages expose the
    answer as their module-level ``TRITON_IMPLEMENTED``; ``geoattn info`` reports it per kernel.
    """
    return importlib.util.find_spec(f"geoattn.kernels.{op}.kernel") is not None


#: Kernels whose Triton implementation has passed its tests only through the interpreter, not yet compiled on a
#: GPU: ``backend="auto"`` keeps them on the torch reference, ``backend="triton"`` still runs them. Remove an op
#: from here once ``pytest -m gpu`` has passed its tests on a GPU host.
UNVERIFIED_ON_GPU: frozenset[str] = frozenset()


def resolve_backend(
    backend: str, *tensors: torch.Tensor, op: str, implemented: bool = True
) -> Literal["torch", "triton"]:
    """Resolve ``backend`` for inputs ``tensors`` of kernel ``op``.

    ``"auto"`` picks ``"triton"`` when every tensor is on CUDA (or Triton's interpreter is on, which runs
    kernels on CPU tensors) and Triton is importable, else ``"torch"``. An explicit ``"triton"`` that
    cannot run raises a ``RuntimeError`` saying why. For an op without a Triton kernel yet
    (``implemented=False``) ``"auto"`` is always ``"torch"`` and ``"triton"`` raises ``NotImplementedError``;
    for an op in :data:`UNVERIFIED_ON_GPU` ``"auto"`` is ``"torch"`` too.
    """
    if backend not in _BACKENDS:
        raise ValueError(f"{op}: backend must be one of {_BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    if not implemented:
        if backend == "triton":
            raise NotImplementedError(
                f"{op}: no Triton kernel exists yet for this op, so backend='triton' is unavailable; "
                "use backend='auto' or 'torch' (the torch reference)"
            )
        return "torch"
    on_cuda = all(t.is_cuda for t in tensors)
    runnable = triton_available() and (on_cuda or triton_interpreting())
    if backend == "triton":
        if not triton_available():
            raise RuntimeError(f"{op}: backend='triton' needs the triton package, which is not installed")
        if not runnable:
            raise RuntimeError(
                f"{op}: backend='triton' needs CUDA tensors (got {[str(t.device) for t in tensors]}) "
                "or TRITON_INTERPRET=1 to run the kernel on the CPU"
            )
        return "triton"
    return "triton" if on_cuda and runnable and op not in UNVERIFIED_ON_GPU else "torch"
