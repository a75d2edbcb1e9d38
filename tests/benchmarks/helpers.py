"""Shared helpers of the tests that run benchmark scripts (importable as ``benchmarks_helpers``, see
``tests/conftest.py``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_script(path: Path, name: str) -> ModuleType:
    """The benchmark script at ``path`` imported in-process as module ``name`` (no subprocess start-up).

    ``benchmarks/`` goes on ``sys.path`` first (the scripts import ``_common`` from there, as they do when run),
    and the module into ``sys.modules`` before it runs (dataclasses look their module up there).
    """
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
