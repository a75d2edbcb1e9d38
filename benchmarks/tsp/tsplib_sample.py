"""The TSPLIB sample: per-instance gap to the optimum and time of ``geoattn solve-tsp``'s pipeline, LKH-3 and
Christofides, side by side in one run.

Every ``.tsp`` of ``--data`` with an optimum in its ``optimal.csv`` (the sample in ``shared/data/tsplib``: 10
instances, 14 to 1,002 cities, EUC_2D, ATT and GEO) is solved by

* ours through :func:`geoattn.solvers.solve.solve_tsp` (the ``solve-tsp`` pipeline, distances by the file's
  TSPLIB rule): ``greedy`` (no augmentation, no local search), ``multistart+aug`` (default start cities, x8,
  no local search) and ``default`` (multi-start, x8, then 2-opt + Or-opt: what ``geoattn solve-tsp`` does), on
  ``--device``, and ``default`` on the CPU as well; one untimed warm-up solve first;
* LKH-3 (``elkai``, ``--lkh-runs``) and Christofides (``networkx``) on the exact integer distance matrix, one
  worker per instance in parallel, cached in ``--cache`` (see ``_references.py``).

The report ``<out-dir>/tsp_tsplib_sample.md`` has one row per instance (gap % and seconds per method) and the
issue's goals: mean gap <= 2% for n <= 200 and <= 5% up to 1,002 (first stage), <= 2% on the whole sample.

GPU host (the numbers to record; about 2 minutes of CPU for the references on 16 cores)::

    python benchmarks/tsp/tsplib_sample.py --device cuda --data ../shared/data/tsplib \\
        --out-dir benchmarks/results --cache outputs/tsp_references

Smoke test (any machine, seconds; a tiny untrained policy, three small instances)::

    python benchmarks/tsp/tsplib_sample.py --smoke --out-dir /tmp/tsp_bench
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _references import add_common_arguments, reference_tours
from random_uniform import load_model

from geoattn.solvers.solve import SolveResult, load_instance, solve_tsp
from geoattn.tasks import TsplibInstance, read_optima_csv

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_common.py
from _common import markdown_table, write_report

ROOT = Path(__file__).resolve().parents[2]
REPORT_FILE = "tsp_tsplib_sample.md"
SMOKE_INSTANCES = ("burma14", "att48", "eil51")
REFERENCES = ("lkh", "christofides")
OURS = {
    "greedy": {"decoding": "greedy", "augment": False, "local_search": False},
    "multistart+aug": {"decoding": "multistart", "augment": True, "local_search": False},
    "default": {"decoding": "multistart", "augment": True, "local_search": True},
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "tsplib")
    parser.add_argument("--instances", help="comma-separated names (default: every instance in optimal.csv)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the solver (default 0)")
    add_common_arguments(parser, lkh_runs=10, smoke="three small instances, an untrained policy (CPU)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.instances, args.device, args.workers = ",".join(SMOKE_INSTANCES), "cpu", min(args.workers, 2)
    return args


def _reference_job(job: tuple[str, TsplibInstance, Path, int]) -> tuple[float, float]:
    """Worker: (length, seconds) of one instance by one reference method (cached like every reference)."""
    method, instance, cache, lkh_runs = job
    tours, seconds = reference_tours(
        method,
        instance.coords[None],
        kind=instance.edge_weight_type,
        cache=cache,
        prefix=f"tsplib-{instance.name}",
        workers=1,
        chunk_size=1,
        lkh_runs=lkh_runs,
        log=lambda _: None,
    )
    return instance.tour_length(tours[0]), float(seconds[0])


def _references(
    instances: list[TsplibInstance], args: argparse.Namespace
) -> dict[str, dict[str, tuple[float, float]]]:
    """``method -> name -> (length, seconds)`` of LKH-3 and Christofides, one process per job, largest first."""
    jobs = [
        (m, i, args.cache, args.lkh_runs) for i in sorted(instances, key=lambda i: -i.n) for m in REFERENCES
    ]
    if args.workers <= 1:
        results = [_reference_job(job) for job in jobs]
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(args.workers, len(jobs)), mp_context=context) as pool:
            results = list(pool.map(_reference_job, jobs))
    out: dict[str, dict[str, tuple[float, float]]] = {m: {} for m in REFERENCES}
    for (method, instance, _, _), result in zip(jobs, results, strict=True):
        out[method][instance.name] = result
    return out


def _cell(length: float, optimum: float, seconds: float) -> str:
    return f"{100 * (length - optimum) / optimum:.2f}% / {seconds:.2f} s"


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    optima = read_optima_csv(args.data / "optimal.csv")
    names = list(optima) if args.instances is None else args.instances.split(",")
    instances = sorted((load_instance(args.data / f"{name}.tsp") for name in names), key=lambda i: i.n)
    model, source = load_model(args)
    devices = [torch.device(args.device)] + ([torch.device("cpu")] if args.device != "cpu" else [])
    solve_tsp(instances[0], model, device=devices[0], seed=args.seed)  # warm-up, untimed
    ours: dict[str, dict[str, SolveResult]] = {}
    for device in devices:
        for variant, options in OURS.items():
            if device.type == "cpu" and device != devices[0] and variant != "default":
                continue
            label = f"{variant} ({device.type})"
            ours[label] = {}
            for instance in instances:
                result = solve_tsp(instance, model, device=device, seed=args.seed, **options)  # type: ignore[arg-type]
                ours[label][instance.name] = result
                print(
                    f"{instance.name:>10} {label:<24} gap {result.gap:6.2f}%  {result.times['total']:.2f} s",
                    flush=True,
                )
    refs = _references(instances, args)
    headers = ["instance", "n", "type", "optimum", *ours, f"LKH-3 (runs={args.lkh_runs})", "Christofides"]
    rows = []
    for instance in instances:
        opt = float(instance.optimum or np.nan)
        rows.append(
            [
                instance.name,
                str(instance.n),
                str(instance.edge_weight_type),
                f"{opt:g}",
                *(
                    _cell(r[instance.name].length, opt, r[instance.name].times["total"])
                    for r in ours.values()
                ),
                *(_cell(refs[m][instance.name][0], opt, refs[m][instance.name][1]) for m in REFERENCES),
            ]
        )
    body = "\n".join(
        [
            f"Policy: {source}. Cells: gap to the TSPLIB optimum / seconds per instance (ours: the whole solve, ",
            "including normalisation and checks; references: one CPU core, in parallel over instances).",
            "",
            markdown_table(headers, rows),
            "",
            *_goals(instances, ours),
        ]
    )
    config: dict[str, Any] = vars(args) | {"model": source}
    text = write_report(args.out_dir / REPORT_FILE, "tsp_tsplib_sample", body, seed=args.seed, config=config)
    print(text)


def _goals(instances: list[TsplibInstance], ours: dict[str, dict[str, SolveResult]]) -> list[str]:
    """The issue's TSPLIB goals against the default pipeline on the first device."""
    label = next(k for k in ours if k.startswith("default"))
    gaps = {i.name: ours[label][i.name].gap or 0.0 for i in instances}
    small = [gaps[i.name] for i in instances if i.n <= 200]
    lines = [f"Goals, `{label}`:"]
    if small:
        lines.append(f"- n <= 200: mean gap {np.mean(small):.2f}% (max {max(small):.2f}%); goal <= 2%")
    lines.append(
        f"- whole sample (n <= {max(i.n for i in instances)}): mean gap {np.mean(list(gaps.values())):.2f}% "
        f"(max {max(gaps.values()):.2f}%); first goal <= 5%, final goal <= 2%"
    )
    return lines


if __name__ == "__main__":
    main()
