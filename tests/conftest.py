"""Test-suite set-up: Triton's interpreter on CPU-only machines, warning filters, the ``gpu`` marker, shared
helper modules and fixtures."""

import importlib.util
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

# Must happen before any kernel module imports triton: without a GPU, kernels run on CPU tensors through
# Triton's interpreter (tiny sizes only).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


def _register_helper_modules() -> None:
    """Make every ``tests/<folder>/helpers.py`` importable as ``<folder>_helpers`` (e.g. ``hierarchy_helpers``).

    The suite runs with ``--import-mode=importlib``, which puts no test folder on ``sys.path``; pytest imports
    this conftest before it collects any test module, so they can ``import <folder>_helpers``.
    """
    for path in sorted(Path(__file__).parent.glob("*/helpers.py")):
        name = f"{path.parent.name}_helpers"
        if name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)


_register_helper_modules()


def pytest_configure(config: pytest.Config) -> None:
    """Filter the known deprecation warnings of our dependencies (pytest resets filters set at import)."""
    # geoopt and PyG still decorate functions with torch.jit.script, deprecated on recent torch.
    config.addinivalue_line("filterwarnings", r"ignore:`torch\.jit\.script` is deprecated:DeprecationWarning")
    config.addinivalue_line("filterwarnings", r"ignore:.*TorchScript.*:DeprecationWarning")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu``-marked tests, with the reason, where no CUDA device exists."""
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device: run `pytest -m gpu` on the GPU host")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_script() -> Callable[..., str]:
    """``run(path, *args, timeout=180)``: run the script at ``path`` (relative to the repository root, e.g.
    ``examples/solve_tsp.py``) in a fresh interpreter, assert that it exits with status 0 (showing its
    stderr otherwise) and return its stdout."""

    def run(path: str, *args: str, timeout: float = 180) -> str:
        done = subprocess.run(
            [sys.executable, str(REPO / path), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    return run


@pytest.fixture
def run_example(run_script: Callable[..., str]) -> Callable[..., str]:
    """``run(name, *args, timeout=180)``: :func:`run_script` for ``examples/<name>``."""

    def run(name: str, *args: str, timeout: float = 180) -> str:
        return run_script(f"examples/{name}", *args, timeout=timeout)

    return run


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread for the test: a decoding step is many tiny ops, which threads only slow down on a
    busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
