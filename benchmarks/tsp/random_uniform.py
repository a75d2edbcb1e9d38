"""Random uniform TSP20/50/100: geoattn's policy (greedy, multi-start, +x8 augmentation, +2-opt, +Or-opt) vs LKH-3
and Christofides, side by side in one run.

For every size ``n``, ``--instances`` seeded instances (``geoattn.tasks.uniform_points(count, n, seed=seed)``,
the same for every method) are solved by

* ours, on ``--device`` over all instances and on the CPU over the first ``--cpu-instances`` (the same
  model): ``greedy`` (one rollout from city 0), ``multistart`` (every city a start, POMO), ``multistart+aug``
  (x8 symmetries), ``+2-opt`` (batched torch 2-opt on the best tour), ``+2-opt+Or-opt`` (2-opt and Or-opt
  alternated until neither improves). Times are wall-clock per stage of the pipeline, cumulative (``+2-opt``
  includes its decoding), over batches of ``--batch-size`` after one untimed warm-up batch, CUDA synchronised;
* LKH-3 (``elkai``, ``--lkh-runs`` restarts), the near-optimal reference of every gap;
* Christofides (``networkx.algorithms.approximation.christofides``) over the first
  ``--christofides-instances``.

References are computed in parallel over ``--workers`` CPU cores and cached per chunk in ``--cache`` (see
``_references.py``): an interrupted run keeps them and a rerun continues. Their time per instance is one core's;
their instances/s is ``workers / time``. Each measured row is appended to
``<out-dir>/tsp_random_uniform_runs.jsonl`` as soon as it exists, and a rerun with the same settings skips the
rows already there; the report ``<out-dir>/tsp_random_uniform.md`` tabulates the file's rows for the settings,
with the published anchors (their own test sets, not ours).

GPU host (the numbers to record; 16 cores; LKH on 3 x 10,000 instances is the long part, a rerun resumes)::

    python benchmarks/tsp/random_uniform.py --device cuda --out-dir benchmarks/results \\
        --cache outputs/tsp_references

Smoke test (any machine, seconds; a tiny untrained policy, numbers are meaningless)::

    python benchmarks/tsp/random_uniform.py --smoke --out-dir /tmp/tsp_bench
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from _references import add_common_arguments, reference_tours

from geoattn.solvers import or_opt, two_opt
from geoattn.solvers.neural import decode_tours
from geoattn.tasks import uniform_points

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_common.py
from _common import markdown_table, read_jsonl, write_report

RUNS_FILE = "tsp_random_uniform_runs.jsonl"
REPORT_FILE = "tsp_random_uniform.md"
OURS = ("greedy", "multistart", "multistart+aug", "+2-opt", "+2-opt+Or-opt")
#: Published anchors quoted by issue 10, each on its paper's own test set (mean gap %, or mean optimal length).
ANCHORS: dict[int, list[tuple[str, str]]] = {
    20: [("Concorde (optimal), mean length 3.83", "Kool et al., ICLR 2019, Table 1")],
    50: [("Concorde (optimal), mean length 5.69", "Kool et al., ICLR 2019, Table 1")],
    100: [
        ("Concorde (optimal), mean length 7.76", "Kool et al., ICLR 2019, Table 1"),
        ("AM greedy: gap 4.53%", "Kool et al., ICLR 2019, Table 1"),
        ("AM sampling (1,280 samples): gap 2.26%", "Kool et al., ICLR 2019, Table 1"),
        ("POMO, x8 augmentation: gap 0.14%", "Kwon et al., NeurIPS 2020, Table 2"),
    ],
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default="20,50,100", help="comma-separated n (default 20,50,100)")
    parser.add_argument("--instances", type=int, default=10_000, help="instances per size (default 10000)")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the instances (default 1234)")
    parser.add_argument(
        "--cpu-instances", type=int, default=100, help="ours on the CPU too (default 100; 0: off)"
    )
    parser.add_argument("--batch-size", type=int, default=1000, help="instances per decoding batch")
    parser.add_argument(
        "--christofides-instances",
        type=int,
        default=10_000,
        help="Christofides on the first K (default 10000)",
    )
    add_common_arguments(parser, lkh_runs=1, smoke="tiny sizes and an untrained policy (CPU, seconds)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.instances, args.cpu_instances, args.batch_size = "10,20", 6, 3, 4
        args.christofides_instances, args.workers = 6, min(args.workers, 2)
        args.device = "cpu"
    args.sizes = [int(s) for s in args.sizes.split(",")]
    return args


def load_model(args: argparse.Namespace) -> tuple[torch.nn.Module, str]:
    """The policy and a description of where it came from."""
    if args.smoke:
        from geoattn.nn.attention_model import TSPAttentionModel

        torch.manual_seed(0)
        return TSPAttentionModel(embed_dim=16, heads=2, layers=1, ff_dim=32), "untrained tiny policy (smoke)"
    from geoattn.solvers.solve import load_policy

    source = "shipped pretrained weights" if args.model is None else f"weights {args.model}"
    return load_policy(args.model), source


def _name(device: torch.device) -> str:
    """The device column of a row: the GPU's name, or ``cpu``."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _alternate(coords: torch.Tensor, tours: torch.Tensor) -> torch.Tensor:
    """Or-opt and 2-opt alternated (batched) until a round shortens no tour."""
    best = two_opt(coords, tours, max_iterations=0).lengths
    while True:
        result = two_opt(coords, or_opt(coords, tours).tours)
        if not bool((result.lengths < best).any()):
            return result.tours
        tours, best = result.tours, result.lengths


def run_ours(
    model: torch.nn.Module, points: torch.Tensor, device: torch.device, batch_size: int
) -> dict[str, tuple[npt.NDArray[np.int64], float]]:
    """Tours ``[B, n]`` and cumulative seconds of each of :data:`OURS` on ``points`` ``[B, n, 2]``."""
    model = model.to(device).eval()
    n = points.shape[1]
    warm = points[: min(4, len(points))].to(device)
    decode_tours(model, warm, strategy="multistart", num_starts=n, augment=True)  # warm-up, untimed
    tours: dict[str, list[torch.Tensor]] = {name: [] for name in OURS}
    seconds = dict.fromkeys(OURS, 0.0)
    for lo in range(0, len(points), batch_size):
        coords = points[lo : lo + batch_size].to(device)
        for name, strategy, augment in (
            ("greedy", "greedy", False),
            ("multistart", "multistart", False),
            ("multistart+aug", "multistart", True),
        ):
            _sync(device)
            start = time.perf_counter()
            result = decode_tours(model, coords, strategy=strategy, num_starts=n, augment=augment)
            _sync(device)
            seconds[name] += time.perf_counter() - start
            tours[name].append(result.tours)
        start = time.perf_counter()
        improved = two_opt(coords, result.tours).tours
        _sync(device)
        seconds["+2-opt"] += time.perf_counter() - start
        tours["+2-opt"].append(improved)
        start = time.perf_counter()
        tours["+2-opt+Or-opt"].append(_alternate(coords, improved))
        _sync(device)
        seconds["+2-opt+Or-opt"] += time.perf_counter() - start
    seconds["+2-opt"] += seconds["multistart+aug"]
    seconds["+2-opt+Or-opt"] += seconds["+2-opt"]
    return {name: (torch.cat(tours[name]).cpu().numpy(), seconds[name]) for name in OURS}


def lengths_of(points: npt.NDArray[np.float64], tours: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Closed-tour Euclidean lengths ``[B]`` in float64, checked to be permutations."""
    n = points.shape[1]
    if not (np.sort(tours, axis=1) == np.arange(n)).all():
        raise AssertionError("a tour is not a permutation")
    ordered = np.take_along_axis(points, tours[..., None], axis=1)
    return np.linalg.norm(ordered - np.roll(ordered, -1, axis=1), axis=-1).sum(axis=1)


def _row(
    key: dict[str, Any],
    method: str,
    device: str,
    lengths: npt.NDArray[np.float64],
    ref: npt.NDArray[np.float64],
    seconds_per_instance: float,
    per_second: float,
) -> dict[str, Any]:
    return {
        **key,
        "method": method,
        "device": device,
        "count": len(lengths),
        "mean_length": float(lengths.mean()),
        "mean_gap_percent": float((100 * (lengths - ref[: len(lengths)]) / ref[: len(lengths)]).mean()),
        "ms_per_instance": 1e3 * seconds_per_instance,
        "instances_per_s": per_second,
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    model, source = load_model(args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    runs = args.out_dir / RUNS_FILE
    rows = read_jsonl(runs)
    settings = {"instances": args.instances, "seed": args.seed, "lkh_runs": args.lkh_runs, "model": source}

    def done(key: dict[str, Any], method: str, dev: str) -> bool:
        return any(r.items() >= {**key, "method": method, "device": dev}.items() for r in rows)

    def record(row: dict[str, Any]) -> None:
        rows.append(row)
        with runs.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            f"n={row['n']:<4} {row['method']:<16} {row['device']:<22} gap {row['mean_gap_percent']:7.3f}%  "
            f"length {row['mean_length']:.4f}  {row['ms_per_instance']:9.3f} ms/inst",
            flush=True,
        )

    cores = f"cpu x{args.workers}"
    targets = [(device, args.instances)]
    if device.type != "cpu" and args.cpu_instances > 0:
        targets.append((torch.device("cpu"), min(args.cpu_instances, args.instances)))
    chr_count = min(args.christofides_instances, args.instances)
    for n in args.sizes:
        key = {"n": n, **settings}
        ours = [(dev, count) for dev, count in targets if not all(done(key, m, _name(dev)) for m in OURS)]
        christofides = chr_count > 0 and not done(key, "Christofides (networkx)", cores)
        if done(key, "LKH-3 (elkai)", cores) and not ours and not christofides:
            continue  # every row of this size is in the runs file
        points_t = uniform_points(args.instances, n, seed=args.seed)
        points = points_t.double().numpy()
        prefix = f"uniform-n{n}-count{args.instances}-seed{args.seed}"
        ref_tours, ref_seconds = reference_tours(
            "lkh",
            points,
            kind=None,
            cache=args.cache,
            prefix=prefix,
            workers=args.workers,
            lkh_runs=args.lkh_runs,
        )
        ref = lengths_of(points, ref_tours)
        if not done(key, "LKH-3 (elkai)", cores):
            t = float(ref_seconds.mean())
            record(_row(key, "LKH-3 (elkai)", cores, ref, ref, t, args.workers / t))
        for dev, count in ours:
            results = run_ours(model, points_t[:count], dev, args.batch_size)
            for method, (tours, seconds) in results.items():
                if not done(key, method, _name(dev)):
                    lengths = lengths_of(points[:count], tours)
                    record(_row(key, method, _name(dev), lengths, ref, seconds / count, count / seconds))
        if christofides:
            chr_tours, chr_seconds = reference_tours(
                "christofides",
                points[:chr_count],
                kind=None,
                cache=args.cache,
                prefix=f"{prefix}-first{chr_count}",
                workers=args.workers,
            )
            t = float(chr_seconds.mean())
            lengths = lengths_of(points[:chr_count], chr_tours)
            record(_row(key, "Christofides (networkx)", cores, lengths, ref, t, args.workers / t))
    report(args, rows, settings)


def report(args: argparse.Namespace, rows: list[dict[str, Any]], settings: dict[str, Any]) -> None:
    """Write the markdown report of the rows measured with ``settings``."""
    headers = [
        "n",
        "method",
        "device",
        "instances",
        "mean length",
        "gap to LKH-3 %",
        "ms / instance",
        "instances / s",
    ]
    table = []
    for n in args.sizes:
        for r in rows:
            if r["n"] == n and all(r.get(k) == v for k, v in settings.items()):
                table.append(
                    [
                        str(n),
                        r["method"],
                        r["device"],
                        str(r["count"]),
                        f"{r['mean_length']:.4f}",
                        f"{r['mean_gap_percent']:.3f}".replace("-0.000", "0.000"),
                        f"{r['ms_per_instance']:.3f}",
                        f"{r['instances_per_s']:.1f}",
                    ]
                )
        table += [
            [str(n), f"published: {text}", source, "-", "-", "-", "-", "-"]
            for text, source in ANCHORS.get(n, [])
        ]
    body = "\n".join(
        [
            "Mean gap = mean over instances of 100 (L - L_LKH) / L_LKH on the same instances (the first `count`).",
            "Ours: times are wall-clock for the whole pipeline up to that stage. References: one core per instance;",
            "instances/s = workers / time. Published rows are on their papers' own test sets (anchors, not rows of",
            "this run).",
            "",
            markdown_table(headers, table),
        ]
    )
    text = write_report(
        args.out_dir / REPORT_FILE, "tsp_random_uniform", body, seed=args.seed, config=vars(args) | settings
    )
    print(text)


if __name__ == "__main__":
    main()
