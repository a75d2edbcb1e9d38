"""Pointer networks (Vinyals et al. 2015) on fresh seeded test sets, next to the paper's numbers.

Every model — a name from :mod:`geoattn.solvers.pointer_pretrained` (``--models``; default: every shipped one) or a
``geoattn-train`` checkpoint file or run folder of a ``pointer/*`` experiment (``--checkpoints``) — is scored on
each of its test sizes ``n`` (the validation sizes of its training run, or ``--sizes``) with each decoding of
``--beams`` (``1``: greedy; ``W > 1``: beam search with ``W`` beams, the best beam scored).

Test sets: ``--count`` instances of ``n`` uniform points drawn with seed ``--seed-base + n`` (default
2,000,000 + n: apart from the training pools, seed ``train_seed + n``, and the validation sets,
``val_seed + n``; a seed the model was trained or validated on is refused), exactly labelled by
:func:`geoattn.tasks.labels.labelled_dataset` (Qhull; TSP: Held-Karp up to n = 12, LKH-3 with
``--lkh-runs`` above), cached in ``--cache-dir``. The metrics are the paper's, computed by
:meth:`geoattn.train.tasks.pointer.PointerTask.validation_metrics` over batches of ``--batch-size`` and
combined exactly (instance-weighted means; hull area coverage weighted by its simple polygons; TSP gap from the mean
lengths): convex hull accuracy, area coverage (``FAIL`` when over 1% of predictions are not simple polygons, as the
paper writes it) and that fail rate; Delaunay accuracy and triangle coverage; TSP average tour length, average label
length and their gap. ``eval s`` is the wall-clock of decoding and scoring (labels excluded). The report also gives
each model's provenance: steps, training runs, recipe (optimizer, learning-rate schedule, whether the step mask was
applied in training), training wall-clock on its device (``run.json``'s start to end, label generation included),
git SHA.

The recorded run (the 2-core CPU machine; delaunay_5, 10,000 instances, greedy and 4 beams)::

    python benchmarks/pointer/evaluate.py --models delaunay_5 --count 10000 --beams 1,4 --device cpu \\
        --cache-dir /tmp/geoattn_labels --out benchmarks/results/pointer.md

GPU host (a trained checkpoint; TSP labels above n = 12 need the ``baselines`` extra)::

    python benchmarks/pointer/evaluate.py --checkpoints runs/ptr_hull --device cuda --cache-dir runs/labels

Smoke test (any machine, seconds; CPU, 16 instances)::

    python benchmarks/pointer/evaluate.py --smoke --out /tmp/pointer.md
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from geoattn.solvers.pointer_pretrained import (
    available_pointer_models,
    load_pointer_checkpoint,
    load_pointer_model,
    pointer_model_entry,
)
from geoattn.tasks.labels import default_workers, labelled_dataset
from geoattn.tasks.metrics import AREA_FAIL_THRESHOLD
from geoattn.train.tasks.pointer import PointerTask

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_common.py
from _common import markdown_table, positive_ints, write_report

DEFAULT_OUT = Path("benchmarks/results/pointer.md")
SOURCE = "Vinyals, Fortunato, Jaitly, Pointer Networks, NeurIPS 2015"


@dataclass(frozen=True)
class Anchor:
    """A published result: ``problem`` at test size ``n``, trained on sizes ``trained``; fractions or lengths."""

    problem: str
    n: int
    trained: str
    metrics: dict[str, float]


#: The paper's numbers as quoted by issue 9 (on the paper's own test sets).
ANCHORS = (
    Anchor("convex_hull", 50, "50", {"accuracy": 0.726, "coverage": 0.999}),
    Anchor("convex_hull", 100, "5-50", {"accuracy": 0.503, "coverage": 0.999}),
    Anchor("delaunay", 5, "5", {"accuracy": 0.807, "coverage": 0.930}),
    Anchor("tsp", 20, "5-20", {"length": 3.88, "label_length": 3.83}),
)


@dataclass
class Model:
    """A model to evaluate: its task, what to call it in the tables, and its manifest-style entry."""

    label: str
    task: PointerTask
    entry: dict[str, Any]

    @property
    def data(self) -> dict[str, Any]:
        data = self.entry.get("provenance", {}).get("data")
        return data if isinstance(data, dict) else {}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--models", type=lambda s: [m for m in s.split(",") if m], help="names, comma-separated"
    )
    parser.add_argument(
        "--checkpoints", nargs="+", type=Path, default=[], help="checkpoint files or run folders"
    )
    parser.add_argument(
        "--weights-dir", type=Path, help="weights folder of --models (default: the package's)"
    )
    parser.add_argument(
        "--sizes", type=positive_ints, help="test sizes n (default: each model's validation sizes)"
    )
    parser.add_argument("--count", type=int, default=10_000, help="test instances per size (default 10000)")
    parser.add_argument(
        "--beams", type=positive_ints, default=[1, 4], help="beam widths, 1 = greedy (default 1,4)"
    )
    parser.add_argument("--seed-base", type=int, default=2_000_000, help="size n uses seed SEED_BASE + n")
    parser.add_argument("--batch-size", type=int, default=1000, help="instances per decoding batch")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--cache-dir", type=Path, help="label cache folder (default: none, recompute)")
    parser.add_argument("--workers", type=int, default=default_workers(), help="processes computing labels")
    parser.add_argument("--lkh-runs", type=int, default=10, help="LKH RUNS for TSP labels with n > 12")
    parser.add_argument("--out", type=Path, help=f"report file (default {DEFAULT_OUT}; smoke: a temp file)")
    parser.add_argument("--smoke", action="store_true", help="16 instances, beams 1,2, on one CPU thread")
    args = parser.parse_args(argv)
    if args.count < 1 or args.batch_size < 1:
        parser.error(f"--count and --batch-size must be >= 1, got {args.count} and {args.batch_size}")
    if args.smoke:
        args.count, args.beams, args.batch_size = 16, [1, 2], 8
        args.device, args.threads, args.workers = "cpu", 1, 1
    if args.out is None:
        args.out = Path(tempfile.gettempdir()) / "pointer_smoke.md" if args.smoke else DEFAULT_OUT
    return args


def load_models(args: argparse.Namespace) -> list[Model]:
    """The named models (default: every shipped one when no checkpoint is given), then the checkpoints."""
    names = args.models
    if names is None:
        names = [] if args.checkpoints else available_pointer_models(args.weights_dir)
    models = [
        Model(
            name,
            load_pointer_model(name, weights_dir=args.weights_dir, map_location=args.device),
            pointer_model_entry(name, weights_dir=args.weights_dir),
        )
        for name in names
    ]
    for path in args.checkpoints:
        task, entry = load_pointer_checkpoint(path, map_location=args.device)
        models.append(Model(str(path), task, entry))
    if not models:
        raise SystemExit("no models: pass --models NAME,... or --checkpoints PATH ...")
    return models


def sizes_of(model: Model, sizes: list[int] | None, seed_base: int) -> list[int]:
    """The sizes to test ``model`` on; refuses a test seed among its training or validation seeds."""
    data = model.data
    chosen = sizes or list(data.get("val_sizes") or [data.get("n_max") or 0])
    if not chosen or min(chosen) < 3:
        raise SystemExit(f"{model.label}: no test sizes recorded in its provenance; pass --sizes")
    used = set()
    if "train_seed" in data and "n_min" in data and "n_max" in data:
        used |= {data["train_seed"] + n for n in range(data["n_min"], data["n_max"] + 1)}
    if "val_seed" in data:
        used |= {data["val_seed"] + n for n in data.get("val_sizes") or []}
    clash = sorted(seed_base + n for n in chosen if seed_base + n in used)
    if clash:
        raise SystemExit(
            f"{model.label}: test seeds {clash} (--seed-base {seed_base} + n) were used for its training or "
            "validation sets; choose another --seed-base"
        )
    return chosen


def combine(parts: list[tuple[int, dict[str, float]]]) -> dict[str, float]:
    """The metrics of a whole test set from those of its batches ``(instances, validation_metrics)``, with the
    size suffix ``_n<n>`` dropped: instance-weighted means, except the hull's area coverage (a mean over the
    simple predictions) and the TSP gap (from the mean lengths)."""
    total: dict[str, float] = {}
    weight: dict[str, float] = {}
    for count, metrics in parts:
        values = {key.rsplit("_n", 1)[0]: value for key, value in metrics.items()}
        for key, value in values.items():
            w = count * (1.0 - values["area_fail_rate"]) if key == "area_coverage" else float(count)
            total[key] = total.get(key, 0.0) + w * value
            weight[key] = weight.get(key, 0.0) + w
    out = {key: total[key] / weight[key] for key in total if weight[key] > 0}
    if "gap" in out:
        out["gap"] = 100.0 * (out["tour_length"] / out["label_length"] - 1.0)
    return out


def evaluate(
    task: PointerTask, points: torch.Tensor, labels: torch.Tensor, args: argparse.Namespace
) -> dict[str, float]:
    """``combine``d validation metrics of ``task`` (its current ``beam_width``) over batches of the test set."""
    parts = []
    with torch.inference_mode():
        for lo in range(0, len(points), args.batch_size):
            batch = {
                "points": points[lo : lo + args.batch_size].to(args.device),
                "labels": labels[lo : lo + args.batch_size].to(args.device),
            }
            parts.append((len(batch["points"]), task.validation_metrics(batch)))
    return combine(parts)


def _percent(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def _number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def metric_cells(problem: str, metrics: dict[str, float]) -> list[str]:
    """``accuracy, coverage, fail rate, mean length, label length, gap %`` cells (``-`` where not defined)."""
    if problem == "tsp":
        gap = metrics.get("gap")
        if gap is None and "length" in metrics:
            gap = 100.0 * (metrics["length"] / metrics["label_length"] - 1.0)
        length = metrics.get("tour_length", metrics.get("length"))
        return ["-", "-", "-", _number(length), _number(metrics.get("label_length")), _number(gap, 2)]
    fail = metrics.get("area_fail_rate")
    coverage = _percent(
        metrics.get("triangle_coverage", metrics.get("area_coverage", metrics.get("coverage")))
    )
    if fail is not None and fail > AREA_FAIL_THRESHOLD:
        coverage = f"FAIL ({coverage})"
    return [_percent(metrics.get("accuracy")), coverage, _percent(fail), "-", "-", "-"]


def trained_on(data: dict[str, Any]) -> str:
    low, high = data.get("n_min"), data.get("n_max")
    return "?" if low is None else str(low) if low == high else f"{low}-{high}"


def provenance_row(model: Model) -> list[str]:
    """``model, problem, trained on, steps, training runs, recipe, training wall-clock, git`` cells."""
    provenance = model.entry.get("provenance", {})
    runs = provenance.get("runs") or []
    segments = ", ".join(
        f"{r['end_step'] - r['start_step']:,} at batch {r['batch_size']}"
        for r in runs
        if isinstance(r.get("start_step"), int) and isinstance(r.get("end_step"), int)
    )
    optimizer = provenance.get("optimizer")
    opt = "-"
    if isinstance(optimizer, dict):
        opt = f"{str(optimizer.get('_target_', '?')).rsplit('.', 1)[-1]} lr {optimizer.get('lr', '?')}"
        trainer = provenance.get("trainer") or {}
        if trainer.get("lr_schedule", "constant") != "constant":  # runs before the option existed: constant
            opt += f", {trainer['lr_schedule']} to {trainer.get('lr_final_ratio', 0.0):g}x"
    if model.task.masked_training:
        opt += ", masked training"
    wall = provenance.get("train_wall_s")
    devices = sorted({str(r.get("device")) for r in runs})
    train_time = "-" if wall is None else f"{wall:,.0f} s on {'/'.join(devices)} ({len(runs)} runs)"
    sha = provenance.get("git_sha")
    git = "-" if not sha else sha[:10] + (" (dirty)" if provenance.get("git_dirty") else "")
    step = provenance.get("step")
    return [
        model.label,
        model.task.problem,
        trained_on(model.data),
        "-" if step is None else f"{step:,}",
        segments or "-",
        opt,
        train_time,
        git,
    ]


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        models = load_models(args)
    except (OSError, ValueError, RuntimeError) as e:
        raise SystemExit(f"error: {e}") from e
    plan = [(model, sizes_of(model, args.sizes, args.seed_base)) for model in models]
    rows: list[list[str]] = []
    shown: set[tuple[str, int]] = set()
    for model, sizes in plan:
        problem = model.task.problem
        lkh_runs = args.lkh_runs if problem == "tsp" else 1
        for n in sizes:
            start = time.perf_counter()
            data = labelled_dataset(
                problem,
                n,
                args.count,
                seed=args.seed_base + n,
                cache_dir=args.cache_dir,
                workers=args.workers,
                lkh_runs=lkh_runs,
            )
            label_s = time.perf_counter() - start
            labels = data.padded_labels()
            print(f"{model.label}: {problem} n={n}, {len(data)} labels in {label_s:.1f} s", flush=True)
            for width in args.beams:
                model.task.beam_width = width
                start = time.perf_counter()
                metrics = evaluate(model.task, data.points, labels, args)
                seconds = time.perf_counter() - start
                decoding = "greedy" if width == 1 else f"beam {width}"
                row = [model.label, problem, trained_on(model.data), str(n), decoding, f"{len(data):,}"]
                rows.append(
                    [*row, *metric_cells(problem, metrics), f"{seconds:.2f}", f"{len(data) / seconds:,.0f}"]
                )
                print(" | ".join(rows[-1]), flush=True)
            for anchor in ANCHORS:
                if (anchor.problem, anchor.n) == (problem, n) and (problem, n) not in shown:
                    cells = metric_cells(problem, anchor.metrics)
                    rows.append(
                        ["paper", problem, anchor.trained, str(n), "beam search", "-", *cells, "-", "-"]
                    )
            shown.add((problem, n))
    report(args, models, rows)


def report(args: argparse.Namespace, models: list[Model], rows: list[list[str]]) -> None:
    """Write the markdown report: the results with the paper's anchors, then each model's provenance."""
    device = torch.cuda.get_device_name(args.device) if str(args.device).startswith("cuda") else "cpu"
    threads = torch.get_num_threads()
    headers = [
        "model",
        "problem",
        "trained on n",
        "test n",
        "decoding",
        "instances",
        "accuracy",
        "coverage",
        "fail rate",
        "mean length",
        "label length",
        "gap %",
        "eval s",
        "inst/s",
    ]
    provenance = markdown_table(
        [
            "model",
            "problem",
            "trained on n",
            "steps",
            "training runs",
            "recipe",
            "training wall-clock",
            "git",
        ],
        [provenance_row(model) for model in models],
    )
    body = "\n".join(
        [
            f"Test sets: seed {args.seed_base} + n, {args.count:,} instances per size, exact labels; evaluated on "
            f"{device} ({threads} threads), batches of {args.batch_size}. Coverage: triangle coverage (Delaunay) "
            "or area coverage (convex hull; FAIL when over 1% of the predicted polygons are not simple). "
            f"Paper rows: {SOURCE}, on its own test sets, decoded by beam search (width not given); anchors, "
            "not rows of this run.",
            "",
            markdown_table(headers, rows),
            "",
            "Models (provenance from the weights manifest or the checkpoint's run folder; the training wall-clock "
            "is run.json's start to end and includes label generation):",
            "",
            provenance,
        ]
    )
    config = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    text = write_report(
        args.out, "pointer networks — Vinyals et al. 2015 test sets", body, seed=args.seed_base, config=config
    )
    print(text)


if __name__ == "__main__":
    main()
