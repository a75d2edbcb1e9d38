"""The hierarchical-attention examples side by side: HSA vs flat softmax on IMDB, SST and constructed multimodal pairs.

Runs the comparisons of ``examples/hsa_imdb.py``, ``examples/hsa_sst.py`` and ``examples/hsa_multimodal.py``
(the experiments ``hsa/imdb``, ``hsa/sst``, ``hsa/multimodal`` through ``geoattn-train``'s ``train``) for every
seed with a time limit per run, and writes one markdown report (environment, commands, one table per example:
test accuracy mean ± std over seeds, and HSA minus flat) to ``--report``. Runs land in ``--out/<example>/``
(``results.jsonl`` rows as runs finish; finished runs are skipped, interrupted ones resume), so the command can
be re-run after an interruption, or split over processes with ``--examples``/``--variants`` and then run once
more to write the report.

``--jobs N`` runs N training runs at once (separate processes; on one GPU they overlap well, because these small
models are bound by kernel launches, not by the GPU's arithmetic). Measured on one H200 for IMDB (1,408 steps,
six runs at once, ``--threads 2``): 261 s per hsa run and 132 s per flat run. Estimated for the others from the
operators per training step (torch profiler: SST hsa ~4,300 median / 7,500 deepest batch, multimodal hsa ~1,350,
every flat run ~520) at ~10 us per eager launch, plus start-up and data loading — the IMDB estimate made the same
way (80 s) was 3x short: SST hsa ~45 s / flat ~20 s (545 steps), multimodal hsa ~45 s / flat, text, image
~25-35 s (1,878 steps), so allow up to three times that. The time limit per run (``--minutes``) must leave room
for IMDB's hsa runs::

    python benchmarks/hsa_examples.py --device cuda --jobs 6 --threads 2 --minutes 8
    python benchmarks/hsa_examples.py --examples sst --variants hsa flat --seeds 0      # a part
    python benchmarks/hsa_examples.py --smoke --out /tmp/hsa_runs --report /tmp/hsa.md  # tiny, CPU (tests)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import torch

from geoattn.train.tasks.hsa_classification import comparison_table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from _common import spawn_pool, threads_per_run, write_report  # noqa: E402

EXAMPLES = {"imdb": "hsa_imdb.py", "sst": "hsa_sst.py", "multimodal": "hsa_multimodal.py"}


def _example(name: str) -> ModuleType:
    """``examples/<file>`` as a module (its ``VARIANTS``, ``SMOKE``, ``NOTE``)."""
    path = REPO / "examples" / EXAMPLES[name]
    spec = importlib.util.spec_from_file_location(f"_hsa_example_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _one_run(name: str, variant: str, seed: int, out: str, overrides: list[str], device: str) -> None:
    """One ``(example, variant, seed)`` through the example's ``run_comparison`` (a worker process's job)."""
    from geoattn.train.tasks.hsa_classification import run_comparison

    module = _example(name)
    run_comparison(
        f"hsa/{name}", {variant: module.VARIANTS[variant]}, [seed], out, overrides=overrides, device=device
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", nargs="+", choices=list(EXAMPLES), default=list(EXAMPLES))
    parser.add_argument(
        "--variants",
        nargs="+",
        help="variants to run (default: every variant of each example: hsa, flat; text, image for multimodal)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default: 0 1 2; --smoke: 0)")
    parser.add_argument("--device", default="auto", help="trainer.device: auto, cpu, cuda, cuda:N")
    parser.add_argument("--minutes", type=float, default=8.0, help="time limit per training run")
    parser.add_argument("--jobs", type=int, default=1, help="training runs at once (processes)")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads per run (default: the machine's cores shared among --jobs; 1 with --smoke)",
    )
    parser.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=Path("runs/hsa_examples"))
    parser.add_argument("--report", type=Path, default=REPO / "benchmarks" / "results" / "hsa_examples.md")
    parser.add_argument("--smoke", action="store_true", help="tiny model and data, a few steps on CPU")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    seeds = args.seeds or ([0] if args.smoke else [0, 1, 2])
    device = "cpu" if args.smoke else args.device
    threads = threads_per_run(args.jobs, args.threads or (1 if args.smoke else None))
    modules = {name: _example(name) for name in args.examples}
    jobs: list[tuple[str, str, int, str, list[str], str]] = []
    plan: dict[str, list[str]] = {}
    for name, module in modules.items():
        variants = [v for v in module.VARIANTS if args.variants is None or v in args.variants]
        plan[name] = variants
        overrides = [f"data.root={args.data_root}", f"trainer.time_limit_s={60 * args.minutes}"]
        overrides += module.SMOKE if args.smoke else []
        for seed in seeds:
            for variant in variants:
                jobs.append((name, variant, seed, str(args.out / name), overrides, device))
    if args.jobs == 1:
        torch.set_num_threads(threads)
        for job in jobs:
            _one_run(*job)
    else:
        with spawn_pool(args.jobs, threads) as pool:
            for future in [pool.submit(_one_run, *job) for job in jobs]:
                future.result()

    sections = []
    for name, variants in plan.items():
        path = args.out / name / "results.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if r["variant"] in variants and r["seed"] in seeds]
        note = getattr(modules[name], "NOTE", "")
        sections.append(comparison_table(rows, variants, f"hsa/{name}") + (f"\n\n{note}" if note else ""))
    body = (
        "Test accuracy of the final weights (exact, whole test split); every variant is the same HsaClassifier "
        "(d=64, 4 heads, 2 layers) with the same step budget and optimiser, the hierarchy being the only "
        "difference between hsa and flat.\n\n" + "\n\n".join(sections)
    )
    config = {"examples": args.examples, "minutes": args.minutes, "device": device, "smoke": args.smoke}
    print(
        write_report(
            args.report,
            "HSA examples: hierarchical vs flat softmax attention",
            body,
            seed=seeds[0],
            config=config,
        )
    )


if __name__ == "__main__":
    main()
