"""Reference tours of the TSP benchmarks: LKH-3 (``elkai``) and Christofides (networkx), in parallel, cached.

References are for comparison only; ``geoattn solve-tsp`` never uses them. Instances are cut into chunks;
each chunk is solved by one worker process (a spawned pool over the CPU cores), timed per instance, and
written to ``<cache>/<prefix>-<method>-<i>.npz`` as soon as it is done (to a temporary name, then renamed), so
an interrupted run keeps every finished chunk and a rerun computes only the missing ones. A chunk file holds
the sha256 of its instances' coordinates and is recomputed if they differ.

- ``lkh``: :func:`geoattn.tasks.lkh_tour` (LKH-3 through elkai; integer TSPLIB matrices exactly, float
  matrices scaled), ``runs`` restarts.
- ``christofides``: ``networkx.algorithms.approximation.christofides`` on the complete graph of the distance
  matrix (the 3/2-approximation: minimum spanning tree, minimum-weight perfect matching of its odd-degree
  vertices, Euler tour shortcut).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import numpy.typing as npt

from geoattn.tasks import euclidean_distance_matrix, lkh_tour, tsplib_distance_matrix

__all__ = ["METHODS", "add_common_arguments", "reference_tours"]

METHODS = ("lkh", "christofides")


def add_common_arguments(parser: argparse.ArgumentParser, *, lkh_runs: int, smoke: str) -> None:
    """The options both TSP benchmarks share: policy, device, references, outputs, smoke mode."""
    import torch

    from geoattn.tasks.labels import default_workers

    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", help="exported policy weights (folder or .safetensors; default: shipped)")
    parser.add_argument(
        "--lkh-runs", type=int, default=lkh_runs, help=f"LKH RUNS per instance (default {lkh_runs})"
    )
    parser.add_argument("--workers", type=int, default=default_workers(), help="processes for the references")
    parser.add_argument(
        "--cache", type=Path, default=Path("outputs/tsp_references"), help="reference cache folder"
    )
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--smoke", action="store_true", help=smoke)


def _distances(coords: npt.NDArray[np.float64], kind: str | None) -> npt.NDArray[np.generic]:
    return euclidean_distance_matrix(coords) if kind is None else tsplib_distance_matrix(coords, kind)


def _tour(method: str, dist: npt.NDArray[np.generic], lkh_runs: int) -> npt.NDArray[np.int64]:
    if method == "lkh":
        return lkh_tour(dist, runs=lkh_runs)
    import networkx as nx
    from networkx.algorithms.approximation import christofides

    # Every pair as an edge: nx.from_numpy_array drops zero entries, so duplicate cities (a280) would leave
    # the graph incomplete, which christofides rejects.
    n = dist.shape[0]
    rows, cols = np.triu_indices(n, k=1)
    graph = nx.Graph()
    graph.add_weighted_edges_from(zip(rows.tolist(), cols.tolist(), dist[rows, cols].tolist(), strict=True))
    cycle = christofides(graph, weight="weight")  # closed: first city repeated at the end
    return np.asarray(cycle[:-1], dtype=np.int64)


def _solve_chunk(
    task: tuple[int, str, npt.NDArray[np.float64], str | None, int],
) -> tuple[int, npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Worker: (chunk index, tours [b, n], seconds per instance [b])."""
    index, method, coords, kind, lkh_runs = task
    tours, seconds = [], []
    for instance in coords:
        start = time.perf_counter()
        tours.append(_tour(method, _distances(instance, kind), lkh_runs))
        seconds.append(time.perf_counter() - start)
    return index, np.stack(tours), np.asarray(seconds)


def _digest(coords: npt.NDArray[np.float64]) -> str:
    return hashlib.sha256(np.ascontiguousarray(coords, dtype=np.float64).tobytes()).hexdigest()


def _load(path: Path, digest: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["digest"]) != digest:
                return None
            return data["tours"], data["seconds"]
    except (OSError, ValueError, KeyError, EOFError):
        return None


def _save(path: Path, digest: str, tours: npt.NDArray[np.int64], seconds: npt.NDArray[np.float64]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        np.savez(f, digest=np.array(digest), tours=tours, seconds=seconds)
    os.replace(tmp, path)


def reference_tours(
    method: str,
    coords: npt.NDArray[np.float64],
    *,
    kind: str | None,
    cache: Path,
    prefix: str,
    workers: int,
    chunk_size: int = 64,
    lkh_runs: int = 1,
    log: Callable[[str], None] = print,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Tours ``[B, n]`` and solve seconds ``[B]`` (one core each) of ``coords`` ``[B, n, 2]`` by ``method``.

    Args:
        method: ``"lkh"`` or ``"christofides"``.
        coords: the instances.
        kind: TSPLIB ``EDGE_WEIGHT_TYPE`` of every instance, or ``None`` for Euclidean float distances.
        cache: folder of the chunk files (created).
        prefix: names the instance set in the chunk files (e.g. ``uniform-n100-count10000-seed1234``).
        workers: processes; ``1`` solves in this process.
        chunk_size: instances per chunk (and per cache file).
        lkh_runs: LKH's ``RUNS``.
        log: progress messages.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    cache.mkdir(parents=True, exist_ok=True)
    tag = f"lkh{lkh_runs}" if method == "lkh" else method
    count = coords.shape[0]
    starts = list(range(0, count, chunk_size))
    paths = [cache / f"{prefix}-{tag}-size{chunk_size}-{i:05d}.npz" for i in range(len(starts))]
    digests = [_digest(coords[s : s + chunk_size]) for s in starts]
    tours: list[npt.NDArray[np.int64] | None] = [None] * len(starts)
    seconds: list[npt.NDArray[np.float64] | None] = [None] * len(starts)
    missing = []
    for i, (path, digest) in enumerate(zip(paths, digests, strict=True)):
        found = _load(path, digest) if path.is_file() else None
        if found is None:
            missing.append(i)
        else:
            tours[i], seconds[i] = found
    log(f"{prefix} {tag}: {len(starts) - len(missing)}/{len(starts)} chunks cached, computing {len(missing)}")
    tasks = [(i, method, coords[starts[i] : starts[i] + chunk_size], kind, lkh_runs) for i in missing]

    def keep(index: int, chunk_tours: npt.NDArray[np.int64], chunk_seconds: npt.NDArray[np.float64]) -> None:
        tours[index], seconds[index] = chunk_tours, chunk_seconds
        _save(paths[index], digests[index], chunk_tours, chunk_seconds)

    if workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            keep(*_solve_chunk(task))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=context) as pool:
            futures = [pool.submit(_solve_chunk, task) for task in tasks]
            step = max(1, math.ceil(len(futures) / 10))
            for done, future in enumerate(as_completed(futures), start=1):
                keep(*future.result())
                if done % step == 0 or done == len(futures):
                    log(f"{prefix} {tag}: {done}/{len(futures)} chunks computed")
    return np.concatenate(tours), np.concatenate(seconds)  # type: ignore[arg-type]
