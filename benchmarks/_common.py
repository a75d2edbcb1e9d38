"""Shared helpers of the benchmark scripts: timing, the environment a result was measured in, markdown.

Every benchmark records with its table the git commit, the machine and accelerator, package versions, the
seed and the exact command, so a row in ``benchmarks/RESULTS.md`` (or a file it includes) can be traced.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import torch

from geoattn.train.metadata import git_state

__all__ = [
    "WorkerError",
    "add_grid_arguments",
    "cell_skip_reason",
    "environment",
    "git_sha",
    "kernel_benchmark_device",
    "markdown_table",
    "median_ms",
    "positive_ints",
    "read_jsonl",
    "spawn_pool",
    "threads_per_run",
    "timed_calls",
    "write_report",
]

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def git_sha() -> str:
    """The checked-out commit (12 digits), with ``+dirty`` when tracked files differ from it, or ``unknown``;
    ``GEOATTN_GIT_SHA`` from the environment wins when set (:func:`geoattn.train.metadata.git_state`)."""
    state = git_state(REPO)
    if state["sha"] is None:
        return "unknown"
    return state["sha"][:12] + ("+dirty" if state["dirty"] else "")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment() -> dict[str, str]:
    """Machine, accelerator and package versions, as ``name -> value``."""
    env = {
        "machine": f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs)",
        "device": torch.cuda.get_device_name()
        if torch.cuda.is_available()
        else "CPU only (times are not meaningful)",
        "python": platform.python_version(),
        "torch": f"{torch.__version__} (CUDA {torch.version.cuda})",
    }
    for package in ("triton", "geoopt", "geoattn"):
        env[package] = _version(package)
    env["TRITON_INTERPRET"] = os.environ.get("TRITON_INTERPRET", "0")
    env["git"] = git_sha()
    return env


def median_ms(
    fn: Callable[[], object],
    *,
    grad_to_none: Sequence[torch.Tensor] | None = None,
    warmup: int = 25,
    rep: int = 100,
) -> float:
    """Median time of ``fn`` in milliseconds: ``triton.testing.do_bench`` on CUDA (``warmup``/``rep`` in ms),
    a few wall-clock repetitions on CPU (smoke runs only)."""
    if torch.cuda.is_available():
        import triton.testing

        return float(
            triton.testing.do_bench(
                fn, warmup=warmup, rep=rep, grad_to_none=grad_to_none, return_mode="median"
            )
        )
    times = []
    for _ in range(3):
        for t in grad_to_none or ():
            t.grad = None
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table with columns padded to their widest cell."""
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=False)]
    lines = [
        "| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "| " + " | ".join("-" * w for w in widths) + " |",
    ]
    lines += [
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows
    ]
    return "\n".join(lines)


def write_report(path: str | Path, title: str, body: str, *, seed: int, config: dict[str, object]) -> str:
    """Write ``body`` under ``title`` with the environment, resolved config, seed and command to ``path``
    (parents created, file replaced); returns the markdown."""
    env = environment()
    command = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])
    lines = [f"## {title}", ""]
    lines += [f"- {name}: {value}" for name, value in env.items()]
    lines += [f"- seed: {seed}", f"- config: {config}", f"- command: `{command}`", "", body, ""]
    text = "\n".join(lines)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return text


def kernel_benchmark_device(smoke: bool) -> torch.device | None:
    """CUDA when present; on a CPU-only machine only a ``--smoke`` run, through Triton's interpreter.

    Sets ``TRITON_INTERPRET=1`` for CPU smoke runs (call it before a kernel module, and its ``triton.jit``,
    is imported). Returns ``None`` after printing why when a full run is asked for without CUDA.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        if not smoke:
            print("no CUDA device: only --smoke runs on CPU (through Triton's interpreter)", file=sys.stderr)
            return None
        os.environ.setdefault("TRITON_INTERPRET", "1")
    return device


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (one object per non-blank line); ``[]`` when the file does not exist
    (a benchmark's runs file before its first run)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def threads_per_run(jobs: int, threads: int | None = None) -> int:
    """torch CPU threads for each of ``jobs`` runs at once: ``threads``, else the machine's cores shared among
    them. Runs must not each take every core: six IMDB runs with torch's default thread count each, beside two
    other trainings, oversubscribed a 16-core GPU host."""
    return threads or max(1, (os.cpu_count() or 1) // jobs)


class WorkerError(RuntimeError):
    """An exception of a worker process of :func:`spawn_pool`, as ``"<type>: <message>"`` (its traceback
    follows as the cause). The pool sends a worker's exception back pickled, and some do not pickle (torch's
    ``InductorError`` holds modules): the pool then reported only "cannot pickle 'module' object"."""


def _reporting_call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, raising any exception as a picklable :class:`WorkerError` (the original is its
    cause, whose traceback the pool formats before pickling)."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        raise WorkerError(f"{type(exc).__name__}: {exc}") from exc


class _ReportingPool(ProcessPoolExecutor):
    """A process pool whose tasks fail with :class:`WorkerError`, never with a pickling error, and which stops at
    once when its ``with`` block is left by an exception."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return super().submit(_reporting_call, fn, *args, **kwargs)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
        """Leaving the block by an exception (``KeyboardInterrupt`` from a time limit's SIGINT, an error of the
        caller) cancels the tasks not started and terminates the workers: :class:`ProcessPoolExecutor` would wait
        for every queued task to run to its end, so a time-limited job would outlive its limit by as long as those
        take (a killed training task resumes from its last checkpoint)."""
        if exc_type is not None:
            # shutdown() forgets the workers and the manager thread; that thread reaps the workers once they die
            # (joining them here as well would race it for their exit status and could see a dead worker alive)
            workers = list((self._processes or {}).values())
            manager = self._executor_manager_thread
            self.shutdown(wait=False, cancel_futures=True)
            for process in workers:
                process.terminate()
            if manager is not None:
                manager.join(timeout=30)
        return super().__exit__(exc_type, exc, tb)


def spawn_pool(jobs: int, threads: int | None = None) -> ProcessPoolExecutor:
    """``jobs`` spawned worker processes (fresh interpreters: safe with CUDA), each with
    :func:`threads_per_run` torch threads; a task that raises fails with a :class:`WorkerError` naming the
    worker's exception."""
    return _ReportingPool(
        jobs,
        mp_context=get_context("spawn"),
        initializer=torch.set_num_threads,
        initargs=(threads_per_run(jobs, threads),),
    )


def positive_ints(text: str) -> list[int]:
    """``argparse`` type of a comma-separated list of positive integers (``"50,100"`` -> ``[50, 100]``)."""
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return values


def add_grid_arguments(parser: argparse.ArgumentParser, *, max_memory_gb: float) -> None:
    """The options of a benchmark over a grid of sizes ``n`` and batch sizes ``B`` whose cells are repeated
    until a minimum time and skipped when predicted too slow or too large."""
    parser.add_argument(
        "--sizes", type=positive_ints, default=[50, 100, 200, 500, 1000], help="n, comma-separated"
    )
    parser.add_argument(
        "--batches", type=positive_ints, default=[1, 10, 100, 1000, 10000], help="B, comma-separated"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cell-seconds", type=float, default=8.0, help="skip cells predicted to take longer")
    parser.add_argument("--min-seconds", type=float, default=0.3, help="repeat a cell until this much time")
    parser.add_argument(
        "--max-memory-gb", type=float, default=max_memory_gb, help="skip cells estimated to need more"
    )


def cell_skip_reason(
    need_gb: float, previous: tuple[int, float] | None, batch: int, args: argparse.Namespace
) -> str | None:
    """Why a grid cell of batch size ``batch`` is not run (the options of :func:`add_grid_arguments`), or ``None``:
    its estimated memory ``need_gb`` exceeds ``--max-memory-gb``, or the method's ``previous`` cell
    ``(B, seconds)``, scaled linearly to ``batch``, predicts more than ``--cell-seconds``."""
    if need_gb > args.max_memory_gb:
        return f"skipped ({need_gb:.1f} GiB)"
    if previous is not None and previous[1] * batch / previous[0] > args.cell_seconds:
        return "skipped (time)"
    return None


def timed_calls(call: Callable[[], T], device: torch.device, min_seconds: float) -> tuple[float, T]:
    """(mean wall-clock seconds per ``call()``, its last result), repeating until ``min_seconds`` in total (at
    least once); CUDA is synchronised around each call."""

    def once() -> tuple[float, T]:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        begin = time.perf_counter()
        result = call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - begin, result

    total, result = once()
    runs = 1
    while total < min_seconds:
        seconds, result = once()
        total += seconds
        runs += 1
    return total / runs, result
