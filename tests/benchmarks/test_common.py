"""benchmarks/_common.py: the process pool that runs several trainings at once."""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

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


def sleep(seconds):
    import time

    time.sleep(seconds)
'''


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, ModuleType]]:
    """``(_common, pool_tasks)``, importable by the spawned workers too."""
    (tmp_path / "pool_tasks.py").write_text(TASKS)
    path = os.pathsep.join([str(BENCHMARKS), str(tmp_path), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)  # the spawned workers' sys.path
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    yield importlib.import_module("_common"), importlib.import_module("pool_tasks")
    sys.modules.pop("pool_tasks")


def test_spawn_pool_reports_a_workers_unpicklable_exception_by_its_type_and_message(
    modules: tuple[ModuleType, ModuleType],
) -> None:
    common, tasks = modules
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


def test_spawn_pool_stops_its_workers_when_interrupted(modules: tuple[ModuleType, ModuleType]) -> None:
    """A time limit's SIGINT in the caller ends the pool at once, its running task killed (a plain
    ProcessPoolExecutor waits for the running and the queued tasks: four minutes here)."""
    common, tasks = modules
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt), common.spawn_pool(1, threads=1) as pool:
        running = pool.submit(tasks.sleep, 120)
        pool.submit(tasks.sleep, 120)
        while not running.running():
            time.sleep(0.05)
        workers = list(pool._processes.values())
        raise KeyboardInterrupt
    assert time.monotonic() - start < 60
    assert all(not worker.is_alive() for worker in workers)
