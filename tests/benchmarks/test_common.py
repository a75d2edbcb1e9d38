"""benchmarks/_common.py: the process pool that runs several trainings at once."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

# Tasks for spawned workers must be importable there by module name, so they live in a module written out.
TASKS = '''
import types


class UnpicklableError(RuntimeError):
    """Like torch's InductorError: an exception holding a module, which pickle refuses."""

    def __init__(self, message):
        super().__init__(message)
        self.module = types.ModuleType("held")


def fail_unpicklably(x):
    raise UnpicklableError(f"compilation failed for {x}")


def square(x):
    return x * x
'''


def test_spawn_pool_reports_a_workers_unpicklable_exception_by_its_type_and_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pool_tasks.py").write_text(TASKS)
    path = os.pathsep.join([str(BENCHMARKS), str(tmp_path), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)  # the spawned workers' sys.path
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    common = importlib.import_module("_common")
    tasks = importlib.import_module("pool_tasks")
    with common.spawn_pool(2, threads=1) as pool:
        ok = pool.submit(tasks.square, 3)
        bad = pool.submit(tasks.fail_unpicklably, 7)
        assert ok.result() == 9
        error = bad.exception()
    assert isinstance(error, common.WorkerError)
    assert str(error) == "UnpicklableError: compilation failed for 7"
    assert "fail_unpicklably" in str(error.__cause__)  # the worker's traceback, as the pool formats it
    with pytest.raises(common.WorkerError, match="UnpicklableError"):
        bad.result()
    sys.modules.pop("pool_tasks")
