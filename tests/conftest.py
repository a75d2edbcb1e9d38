"""Test-suite set-up: Triton's interpreter on CPU-only machines, warning filters, the ``gpu`` marker."""

import os
import warnings

import pytest
import torch

# Must happen before any kernel module imports triton: without a GPU, kernels run on CPU tensors through
# Triton's interpreter (tiny sizes only).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

# geoopt and PyG still decorate functions with torch.jit.script, deprecated on recent torch.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*", category=DeprecationWarning)
warnings.filterwarnings("ignore", message=r".*TorchScript.*", category=DeprecationWarning)
warnings.filterwarnings("ignore", message=r".*torch\.jit.*is deprecated.*")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu``-marked tests, with the reason, where no CUDA device exists."""
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device: run `pytest -m gpu` on the GPU host")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
