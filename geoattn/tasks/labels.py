"""Labelled datasets: seeded instances, exact labels computed in parallel over CPU cores, cached on disk.

:func:`labelled_dataset` draws ``count`` instances of ``n`` points (:func:`~geoattn.tasks.points.uniform_points`
with ``seed``), labels them (:func:`compute_labels`: a process pool over chunks of the batch) and, given a
``cache_dir``, stores the labels in one ``.npz`` whose name is the key: task, ``n``, ``count``, ``seed``, the
TSP solver (and LKH's ``runs``) and the cache format version. A second call with the same key loads the file
instead of recomputing. The file holds the labels as the smallest integer type that fits (int16 below 32,768
points) and the sha256 of the points, not the points themselves: they are drawn again from the seed and must
hash the same (a million TSP20 labels take 25 MB instead of 200 MB, small enough to carry to another machine).
Files are written to a temporary name in the same folder and renamed, so a reader never sees a partial file; a
file that does not match its key or its points (or cannot be read) is recomputed and replaced, with a warning.

Label shapes: convex hull ``[h]`` (:mod:`~geoattn.tasks.convex_hull`), Delaunay ``[m, 3]``
(:mod:`~geoattn.tasks.delaunay`), TSP ``[n]`` (:mod:`~geoattn.tasks.tsp`), all int64.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import secrets
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, get_args

import numpy as np
import numpy.typing as npt
import torch
from torch.nn.utils.rnn import pad_sequence

from .convex_hull import convex_hull_label
from .delaunay import delaunay_label
from .lkh import require_elkai
from .points import uniform_points
from .tsp import TspSolver, resolve_tsp_solver, tsp_label

__all__ = [
    "CACHE_FORMAT_VERSION",
    "TASKS",
    "LabelledDataset",
    "Task",
    "cache_path",
    "compute_labels",
    "default_workers",
    "label_instance",
    "labelled_dataset",
]

Task = Literal["convex_hull", "delaunay", "tsp"]
#: The tasks with labels, as accepted by ``task`` arguments.
TASKS: Final[tuple[str, ...]] = get_args(Task)
#: Stored in every cache file and its name; bump it when labels or the file layout change.
CACHE_FORMAT_VERSION: Final = 2


def _check_task(task: str) -> Task:
    if task not in TASKS:
        raise ValueError(f"task must be one of {list(TASKS)}, got {task!r}")
    return task  # type: ignore[return-value]  # checked against the Literal's values


def label_instance(
    task: str, points: npt.ArrayLike, *, tsp_solver: TspSolver = "auto", lkh_runs: int = 10
) -> npt.NDArray[np.int64]:
    """The label of one ``[n, 2]`` instance for ``task`` (shapes in the module docstring)."""
    kind = _check_task(task)
    if kind == "convex_hull":
        return convex_hull_label(points)
    if kind == "delaunay":
        return delaunay_label(points)
    return tsp_label(points, solver=tsp_solver, lkh_runs=lkh_runs)


def _label_chunk(args: tuple[str, npt.NDArray[np.float32], TspSolver, int]) -> list[npt.NDArray[np.int64]]:
    """Worker: labels of a ``[b, n, 2]`` chunk (module-level so that spawned processes can import it)."""
    task, chunk, tsp_solver, lkh_runs = args
    return [label_instance(task, x, tsp_solver=tsp_solver, lkh_runs=lkh_runs) for x in chunk]


def default_workers() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def compute_labels(
    task: str,
    points: torch.Tensor | npt.ArrayLike,
    *,
    workers: int | None = None,
    tsp_solver: TspSolver = "auto",
    lkh_runs: int = 10,
    mp_context: str = "spawn",
) -> list[npt.NDArray[np.int64]]:
    """Labels of every instance of a ``[B, n, 2]`` batch, computed in parallel.

    Args:
        task: ``"convex_hull"``, ``"delaunay"`` or ``"tsp"``.
        points: ``[B, n, 2]`` instances.
        workers: processes (default :func:`default_workers`); ``1`` computes in this process.
        tsp_solver: ``"auto"`` (Held-Karp for ``n <= 12``, else LKH-3), ``"held_karp"`` or ``"lkh"``.
        lkh_runs: LKH's ``RUNS`` when LKH is used.
        mp_context: the ``multiprocessing`` start method of the pool; ``"spawn"`` (default) is safe whatever
            threads torch has started in this process, and each worker imports ``geoattn.tasks`` (and torch)
            afresh, about two seconds. As with any spawned pool, a script calling this with ``workers > 1``
            needs the ``if __name__ == "__main__":`` guard.

    Returns:
        ``B`` int64 arrays, in the order of the instances; the same whatever ``workers`` is.
    """
    _check_task(task)
    p = points.detach().cpu().numpy() if isinstance(points, torch.Tensor) else np.asarray(points)
    if p.ndim != 3 or p.shape[2] != 2:
        raise ValueError(f"compute_labels: points must have shape [B, n, 2], got {p.shape}")
    if task == "tsp" and resolve_tsp_solver(tsp_solver, p.shape[1]) == "lkh":
        require_elkai()  # fail here, not once per worker
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError(f"compute_labels: workers must be >= 1, got {workers}")
    batch = p.shape[0]
    if workers == 1 or batch < 2:
        return _label_chunk((task, p, tsp_solver, lkh_runs))
    # A few chunks per worker balance uneven chunk costs without much pickling.
    size = max(1, math.ceil(batch / (4 * workers)))
    chunks = [(task, p[i : i + size], tsp_solver, lkh_runs) for i in range(0, batch, size)]
    context = multiprocessing.get_context(mp_context)
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=context) as pool:
        return [label for chunk in pool.map(_label_chunk, chunks) for label in chunk]


@dataclass(frozen=True)
class LabelledDataset:
    """Instances and their labels.

    Attributes:
        task: ``"convex_hull"``, ``"delaunay"`` or ``"tsp"``.
        n: points per instance.
        seed: the seed the instances were drawn with.
        points: ``[B, n, 2]`` float32 instances.
        labels: ``B`` int64 tensors (``[h]``, ``[m, 3]`` or ``[n]``, by task).
        tsp_solver: the TSP solver used (``"held_karp"`` or ``"lkh"``), ``None`` for other tasks.
        from_cache: whether the labels were loaded from the cache rather than computed.
    """

    task: str
    n: int
    seed: int
    points: torch.Tensor
    labels: list[torch.Tensor]
    tsp_solver: str | None
    from_cache: bool

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def padded_labels(self, padding_value: int = -1) -> torch.Tensor:
        """Labels stacked into ``[B, L]`` (or ``[B, L, 3]`` for Delaunay), padded with ``padding_value``."""
        return pad_sequence(self.labels, batch_first=True, padding_value=padding_value)


def _key(task: str, n: int, count: int, seed: int, solver: str | None, lkh_runs: int) -> dict[str, Any]:
    return {
        "task": task,
        "n": int(n),
        "count": int(count),
        "seed": int(seed),
        "tsp_solver": solver,
        "lkh_runs": int(lkh_runs) if solver == "lkh" else None,
        "version": CACHE_FORMAT_VERSION,
    }


def cache_path(
    cache_dir: str | os.PathLike[str],
    task: str,
    n: int,
    count: int,
    seed: int,
    *,
    tsp_solver: TspSolver = "auto",
    lkh_runs: int = 10,
) -> Path:
    """The cache file of a dataset key (see the module docstring), under ``cache_dir``."""
    _check_task(task)
    solver = ""
    if task == "tsp":
        resolved = resolve_tsp_solver(tsp_solver, n)
        solver = f"-lkh{lkh_runs}" if resolved == "lkh" else "-heldkarp"
    return Path(cache_dir) / f"{task}-n{n}-count{count}-seed{seed}{solver}-v{CACHE_FORMAT_VERSION}.npz"


def _points_digest(points: npt.NDArray[np.float32]) -> str:
    return hashlib.sha256(np.ascontiguousarray(points).tobytes()).hexdigest()


def _save(
    path: Path, key: dict[str, Any], points: npt.NDArray[np.float32], labels: list[npt.NDArray[np.int64]]
) -> None:
    """Write the ``.npz`` to a temporary file in the same folder, fsync, and rename it into place."""
    offsets = np.zeros(len(labels) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(x) for x in labels])
    values = np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)
    small = np.int16 if key["n"] <= np.iinfo(np.int16).max else np.int32
    meta = {**key, "points_sha256": _points_digest(points)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    try:
        with tmp.open("wb") as f:
            np.savez(
                f,
                meta=np.array(json.dumps(meta, sort_keys=True)),
                offsets=offsets,
                values=values.astype(small),
            )
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _load(path: Path, key: dict[str, Any]) -> tuple[npt.NDArray[np.float32], list[npt.NDArray[np.int64]]]:
    """Points (drawn again from the seed) and labels of a cache file; ValueError when it does not hold exactly
    ``key``'s dataset."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        offsets, values = data["offsets"], data["values"]
    digest = meta.pop("points_sha256", None)
    if meta != key:
        raise ValueError(f"its key {meta} is not {key}")
    count, n = key["count"], key["n"]
    if (
        offsets.shape != (count + 1,)
        or offsets[0] != 0
        or (np.diff(offsets) < 0).any()
        or offsets[-1] != values.shape[0]
        or values.dtype.kind != "i"
    ):
        raise ValueError("its arrays do not have the shapes of the key")
    points = uniform_points(count, n, seed=key["seed"]).numpy()
    if _points_digest(points) != digest:
        raise ValueError("the points drawn from its seed here do not hash as when it was written")
    labels = values.astype(np.int64)
    return points, [labels[offsets[i] : offsets[i + 1]] for i in range(count)]


def labelled_dataset(
    task: str,
    n: int,
    count: int,
    *,
    seed: int,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    tsp_solver: TspSolver = "auto",
    lkh_runs: int = 10,
) -> LabelledDataset:
    """``count`` seeded instances of ``n`` uniform points with their ``task`` labels, cached on disk.

    Args:
        task: ``"convex_hull"``, ``"delaunay"`` or ``"tsp"``.
        n: points per instance (``>= 3``).
        count: number of instances.
        seed: seed of :func:`~geoattn.tasks.points.uniform_points` (the same seed gives the same points for
            every task).
        cache_dir: folder of the cache (created if missing); ``None`` computes without caching.
        workers: processes for the labels (default: every core available).
        tsp_solver: for ``task="tsp"``: ``"auto"`` (Held-Karp for ``n <= 12``, LKH-3 above), ``"held_karp"``
            or ``"lkh"``.
        lkh_runs: LKH's ``RUNS`` when LKH is used (part of the cache key).

    Returns:
        A :class:`LabelledDataset`; ``from_cache`` says whether the cache answered.
    """
    _check_task(task)
    if n < 3 or count < 0:
        raise ValueError(f"labelled_dataset: need n >= 3 and count >= 0, got n={n}, count={count}")
    solver = resolve_tsp_solver(tsp_solver, n) if task == "tsp" else None
    key = _key(task, n, count, seed, solver, lkh_runs)
    path = None
    if cache_dir is not None:
        path = cache_path(cache_dir, task, n, count, seed, tsp_solver=tsp_solver, lkh_runs=lkh_runs)
        if path.is_file():
            try:
                points, labels = _load(path, key)
            except (ValueError, OSError, KeyError, EOFError) as exc:
                warnings.warn(f"label cache {path} is unusable ({exc}); recomputing it", stacklevel=2)
            else:
                return LabelledDataset(
                    task=task,
                    n=n,
                    seed=seed,
                    points=torch.from_numpy(points),
                    labels=[torch.from_numpy(x) for x in labels],
                    tsp_solver=solver,
                    from_cache=True,
                )
    points_t = uniform_points(count, n, seed=seed)
    points = points_t.numpy()
    labels = compute_labels(task, points, workers=workers, tsp_solver=tsp_solver, lkh_runs=lkh_runs)
    if path is not None:
        _save(path, key, points, labels)
    return LabelledDataset(
        task=task,
        n=n,
        seed=seed,
        points=points_t,
        labels=[torch.from_numpy(x) for x in labels],
        tsp_solver=solver,
        from_cache=False,
    )
