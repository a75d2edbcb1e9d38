"""Triton kernels for geoattn's hot paths, each beside its pure-torch reference.

One folder per op: ``__init__.py`` holds the public function (``backend="auto" | "torch" | "triton"``),
``reference.py`` the torch specification, ``kernel.py`` the Triton kernels, launchers and autograd function.
``auto`` uses Triton for CUDA tensors (when Triton is importable and the op has a ``kernel.py``) and the
reference otherwise; an op whose folder has no ``kernel.py`` yet runs its reference everywhere.
"""

from .backend import Backend, resolve_backend, triton_available, triton_implemented

# Every kernel folder, by op name (reported by `geoattn info`; a test checks it against the folders).
KERNELS = ("pairwise_dist", "manifold_attention", "two_opt", "pointer_decode", "distance_logsumexp")

__all__ = ["KERNELS", "Backend", "resolve_backend", "triton_available", "triton_implemented"]
