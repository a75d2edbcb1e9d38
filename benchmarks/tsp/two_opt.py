"""2-opt throughput: instances/s of the batched torch search, the Triton kernel and a per-instance numpy loop.

For every size ``n`` and batch size ``B``, ``B`` seeded uniform instances (``geoattn.tasks.uniform_points``,
float32) start from seeded random tours and are improved by best-improvement 2-opt until no move improves
(the default tolerance), by

* ``torch``: ``geoattn.solvers.two_opt(coords, tours, backend="torch")``, every instance still improving
  moved once per iteration, ``[B', n, n]`` temporaries;
* ``triton``: the same call with ``backend="triton"``, the persistent kernel of ``geoattn.kernels.two_opt``
  (one program per instance, the whole search in one launch);
* ``numpy``: a plain loop over instances on the CPU, each iteration vectorised over the moves (one core's
  worth of numpy), measured on up to ``--numpy-instances`` instances per ``n`` up to ``--numpy-max-n``
  (its instances/s does not depend on ``B``; the count is in parentheses).

All three apply the same moves (same float32 deltas, same tie-breaking), so their tours are compared: ``same
tours`` says whether Triton's (and numpy's, on its instances) equal torch's. Times are wall-clock of the whole
call (distance matrix, checks, search), CUDA synchronised, after one untimed warm-up per method and ``n``
(Triton compiles there), averaged over repeats until ``--min-seconds``. A cell is skipped when its estimated
memory exceeds ``--max-memory-gb`` or when the previous batch size, scaled linearly, predicts more than
``--cell-seconds``.

GPU host (about 3 minutes on an H200 with the defaults)::

    python benchmarks/tsp/two_opt.py --out benchmarks/results/tsp_two_opt.md

Smoke test (any machine, seconds; CPU, the kernel through Triton's interpreter, numbers are meaningless)::

    python benchmarks/tsp/two_opt.py --smoke --out /tmp/tsp_two_opt.md
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_common.py
from _common import (
    add_grid_arguments,
    cell_skip_reason,
    kernel_benchmark_device,
    markdown_table,
    timed_calls,
    write_report,
)

from geoattn.kernels import Backend
from geoattn.solvers import two_opt
from geoattn.tasks import uniform_points

METHODS: tuple[Backend, ...] = ("torch", "triton")
#: Bytes per B * n^2 float32 entry at the peak of each method: the distance matrix and its [B, n, n, 2]
#: difference intermediate, plus (torch) the tour-ordered matrix, its roll, the deltas and the mask.
PEAK_ENTRIES = {"torch": 8, "triton": 4}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_grid_arguments(p, max_memory_gb=100.0)
    p.add_argument("--numpy-instances", type=int, default=32, help="numpy instances per n (at most)")
    p.add_argument("--numpy-seconds", type=float, default=5.0, help="numpy time per n (at least 1 instance)")
    p.add_argument("--numpy-max-n", type=int, default=500, help="no numpy above this n (one TSP1000: ~30 s)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/tsp_two_opt.md"))
    p.add_argument("--smoke", action="store_true", help="tiny sizes on CPU (Triton's interpreter)")
    return p


def _instances(batch: int, n: int, seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded float32 coordinates ``[B, n, 2]`` and random tours ``[B, n]`` on ``device``."""
    coords = uniform_points(batch, n, seed=seed)
    tours = torch.rand(batch, n, generator=torch.Generator().manual_seed(seed)).argsort(dim=1)
    return coords.to(device), tours.to(device)


def numpy_two_opt(
    d: npt.NDArray[np.float32], tour: npt.NDArray[np.int64], tol: float
) -> npt.NDArray[np.int64]:
    """Best-improvement 2-opt on one instance (``d [n, n]``, ``tour [n]``): the moves of
    :func:`geoattn.solvers.two_opt` in row-major order, the same float32 deltas and tie-breaking."""
    n = tour.shape[0]
    i, j = np.triu_indices(n, 2)
    keep = ~((i == 0) & (j == n - 1))
    i, j = i[keep], j[keep]
    tour = tour.copy()
    while i.size:
        nxt = np.roll(tour, -1)
        delta = ((d[tour[i], tour[j]] + d[nxt[i], nxt[j]]) - d[tour[i], nxt[i]]) - d[tour[j], nxt[j]]
        k = int(np.argmin(delta))
        if not delta[k] < -tol:
            break
        tour[i[k] + 1 : j[k] + 1] = tour[i[k] + 1 : j[k] + 1][::-1].copy()
    return tour


def _numpy_rate(n: int, args: argparse.Namespace) -> tuple[float, int, bool]:
    """(instances/s, instances run, tours equal torch's) of the numpy loop on the CPU."""
    coords, tours = _instances(args.numpy_instances, n, args.seed + 1, torch.device("cpu"))
    d = (coords[:, :, None] - coords[:, None]).norm(dim=-1)
    start = d[torch.arange(coords.shape[0])[:, None], tours, tours.roll(-1, dims=1)].sum(dim=1)
    tol = (n * torch.finfo(torch.float32).eps) * start  # two_opt's default threshold, in float32
    done: list[npt.NDArray[np.int64]] = []
    begin = time.perf_counter()
    while len(done) < coords.shape[0] and (not done or time.perf_counter() - begin < args.numpy_seconds):
        b = len(done)
        done.append(numpy_two_opt(d[b].numpy(), tours[b].numpy(), float(tol[b])))
    elapsed = time.perf_counter() - begin
    count = len(done)
    expected = two_opt(coords[:count], tours[:count], backend="torch").tours
    return count / elapsed, count, bool(np.array_equal(np.stack(done), expected.numpy()))


def run(args: argparse.Namespace, device: torch.device) -> list[list[str]]:
    """The table rows: one per (n, B)."""
    rows = []
    for n in args.sizes:
        numpy_cell, numpy_same = "not run (--numpy-max-n)", True
        if n <= args.numpy_max_n:
            numpy_rate, numpy_count, numpy_same = _numpy_rate(n, args)
            numpy_cell = f"{numpy_rate:,.1f} ({numpy_count})"
        last: dict[str, tuple[int, float]] = {}  # method -> (B, seconds) of its last measured cell
        for method in METHODS:  # warm-up: CUDA context, Triton's compilation
            two_opt(*_instances(1, n, args.seed, device), backend=method)
        for batch in args.batches:
            coords, tours = _instances(batch, n, args.seed, device)
            cells: dict[str, str] = {}
            results: dict[str, torch.Tensor] = {}
            seconds: dict[str, float] = {}
            for method in METHODS:
                need_gb = PEAK_ENTRIES[method] * 4 * batch * n * n / 2**30
                skip = cell_skip_reason(need_gb, last.get(method), batch, args)
                if skip is not None:
                    cells[method] = skip
                    continue
                try:
                    call = functools.partial(two_opt, coords, tours, backend=method)
                    seconds[method], improved = timed_calls(call, device, args.min_seconds)
                    result = improved.tours
                except torch.OutOfMemoryError:
                    torch.cuda.empty_cache()
                    cells[method] = "out of memory"
                    continue
                results[method] = result
                last[method] = (batch, seconds[method])
                cells[method] = f"{batch / seconds[method]:,.1f}"
            speedup = f"{seconds['torch'] / seconds['triton']:.1f}x" if len(seconds) == 2 else "-"
            same = "-"
            if len(results) == 2:
                same = "yes" if torch.equal(results["torch"], results["triton"]) and numpy_same else "NO"
            rows.append([str(n), str(batch), cells["torch"], cells["triton"], speedup, numpy_cell, same])
            print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.smoke:
        args.sizes, args.batches, args.min_seconds = [5, 12], [1, 3], 0.0
        args.numpy_instances, args.numpy_seconds = 3, 1.0
    device = kernel_benchmark_device(args.smoke)
    if device is None:
        return 1
    rows = run(args, device)
    headers = [
        "n",
        "B",
        "torch (inst/s)",
        "Triton (inst/s)",
        "Triton / torch",
        "numpy (inst/s, count)",
        "same tours",
    ]
    table = markdown_table(headers, rows)
    print(table)
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_report(
        args.out, "TSP 2-opt: torch batched vs Triton vs numpy", table, seed=args.seed, config=config
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
