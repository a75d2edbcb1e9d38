"""1-N (LCWA) training speed and test MRR: PyKEEN's ``LCWATrainingLoop`` vs geoattn's ``FastLCWATrainingLoop``.

For each dataset (WN18RR, FB15k-237 with inverse triples, read offline by ``geoattn.kg.local_kg_dataset``) and
each model (any name PyKEEN's ``model_resolver`` knows after ``import geoattn.kg``; default PyKEEN's MuRE and
RotatE and geoattn's RotH), every loop trains through ``pykeen.pipeline.pipeline`` with the same seed and
hyper-parameters and is evaluated on the filtered test split:

* ``pykeen``: ``training_loop="lcwa"`` for ``--pykeen-epochs`` epochs (it is slow: labels are densified on the CPU);
* ``ours``: ``training_loop="fastlcwa"`` for the same ``--pykeen-epochs`` (same shuffling, so the same batches:
  the MRRs should agree up to float rounding) and again for ``--epochs`` (the quality a longer run reaches).

Seconds per epoch are wall-clock times between epoch ends (CUDA synchronised), the median over epochs after the
first (which includes Triton compilation and CUDA warm-up) when there are several. A per-batch breakdown of our
loop follows (``triton.testing.do_bench``): one training step (scores and loss, forward and backward) with the
matrix-product scorer of PyKEEN's L2 MuRE/TransE/RotatE and without it (the model's broadcast ``score_t``), the
loss alone on a materialised ``[batch, num_entities]`` score matrix, which bounds what fusing the loss into the
scoring kernel could save, and the same step with that fused loss (``fused_loss=True``: a Triton log-sum-exp over
distance tiles, no score matrix; for those models with the cross-entropy loss, ``n/a`` otherwise), and for CAT the
step with its encoder compiled by each ``torch.compile`` backend of ``--cat-compile`` (a backend that fails is
reported in its cell) and the eager step without attention-weight dropout (``attention_kwargs={"dropout": 0}``:
with dropout the attention over the 3 tokens runs through the torch reference, op by op; without it through the
fused kernels — a different model, timed to decide whether one is worth training).

Every record is appended to ``<out-dir>/kg_epoch_speed_runs.jsonl`` as it finishes; a rerun with the same
configuration skips what is there, so a run cut short, or split over calls (``--datasets wn18rr`` then
``--datasets fb15k237`` into the same ``--out-dir``), resumes. The report ``<out-dir>/kg_epoch_speed.md``
tabulates every record in the file.

GPU (the numbers to record; about 6-7 minutes on one H200 by estimate, not yet measured)::

    python benchmarks/kg/epoch_speed.py --device cuda --data-root .data/kg --out-dir benchmarks/results

Only the per-batch breakdown (fused vs unfused step; about a minute on one H200 by estimate)::

    python benchmarks/kg/epoch_speed.py --device cuda --data-root .data/kg --out-dir /tmp/kg_fused \\
        --breakdown-only

CAT's encoder compiled by inductor and replayed as CUDA graphs (``cudagraphs``: no inductor code generation)::

    python benchmarks/kg/epoch_speed.py --device cuda --data-root .data/kg --out-dir /tmp/kg_cat \\
        --breakdown-only --models CAT --cat-compile inductor,cudagraphs

Smoke test (any machine; a tiny WN18RR slice on the CPU, seconds; numbers are meaningless)::

    python benchmarks/kg/epoch_speed.py --smoke --out-dir /tmp/kg_speed
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pykeen.datasets.base import Dataset
from pykeen.losses import CrossEntropyLoss
from pykeen.models import Model, model_resolver
from pykeen.pipeline import pipeline
from pykeen.training.callbacks import TrainingCallback

import geoattn.kg  # noqa: F401  (registers "fastlcwa" and geoattn's models with PyKEEN)
from geoattn.kg import FastLCWATrainingLoop, local_kg_dataset
from geoattn.kg.losses import sparse_lcwa_loss, supports_sparse_lcwa
from geoattn.kg.scoring import fast_tail_scorer, tail_distance_decomposition

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_common.py
from _common import markdown_table, median_ms, read_jsonl, write_report

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ("wn18rr", "fb15k237")
LOOPS = ("pykeen", "ours")
BREAKDOWN = "batch-breakdown"  # the loop name of the per-batch records
RUNS_FILE = "kg_epoch_speed_runs.jsonl"
REPORT_FILE = "kg_epoch_speed.md"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, of {DATASETS}")
    parser.add_argument(
        "--models", default="MuRE,RotatE,RotH", help="comma-separated model names (default MuRE,RotatE,RotH)"
    )
    parser.add_argument("--dim", type=int, default=32, help="embedding_dim of every model (default 32)")
    parser.add_argument(
        "--epochs", type=int, default=30, help="epochs of the long run of our loop (default 30)"
    )
    parser.add_argument(
        "--pykeen-epochs",
        type=int,
        default=1,
        help="epochs of both loops in the equal-epoch comparison (default 1)",
    )
    parser.add_argument("--batch-size", type=int, default=1024, help="training batch size (default 1024)")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (default 0.01)")
    parser.add_argument("--loss", default="crossentropy", help="PyKEEN loss name (default crossentropy)")
    parser.add_argument("--label-smoothing", type=float, default=0.1, help="label smoothing (default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="pipeline random_seed (default 0)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--data-root",
        type=Path,
        default=ROOT.parent / "shared" / "data" / "kg",
        help="folder of the datasets",
    )
    parser.add_argument(
        "--out-dir", type=Path, default=ROOT / "benchmarks" / "results", help="runs and report"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny WN18RR slice, d=8, 1 and 3 epochs, CPU")
    parser.add_argument(
        "--cat-compile",
        default="inductor",
        help="comma-separated torch.compile backends of CAT's encoder in the per-batch breakdown, one step "
        "time each (e.g. inductor,cudagraphs; --smoke: eager) (default %(default)s)",
    )
    parser.add_argument(
        "--breakdown-only",
        action="store_true",
        help="run only the per-batch breakdown (no training runs); records and report as usual",
    )
    args = parser.parse_args(argv)
    args.datasets = [d.strip().lower().replace("-", "") for d in args.datasets.split(",") if d.strip()]
    if not set(args.datasets) <= set(DATASETS):
        parser.error(f"--datasets: accepted {DATASETS}, got {args.datasets}")
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.cat_compile = [b.strip() for b in args.cat_compile.split(",") if b.strip()]
    for name in ("dim", "epochs", "pykeen_epochs", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    # --smoke compiles with "eager", dynamo's graph capture alone: on a CPU aot_eager's autograd tracing of CAT's
    # encoder takes 30 s and inductor a minute
    if args.smoke:
        args.datasets, args.device, args.cat_compile = ["wn18rr"], "cpu", ["eager"]
        args.dim, args.epochs, args.pykeen_epochs, args.batch_size = 8, 3, 1, 64
    return args


def _config(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("dim", "epochs", "pykeen_epochs", "batch_size", "lr", "loss", "label_smoothing", "seed", "smoke")
    keys += ("cat_compile",)  # CAT's breakdown record holds one step time per backend
    return {k: getattr(args, k) for k in keys}


class EpochTimer(TrainingCallback):
    """A PyKEEN training callback recording the wall-clock seconds of each epoch (CUDA synchronised)."""

    def __init__(self, device: str) -> None:
        super().__init__()
        self.cuda = device.startswith("cuda")
        self.seconds: list[float] = []
        self._last: float | None = None

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def pre_batch(self, **kwargs: Any) -> None:
        if self._last is None:  # the first batch starts the first epoch
            self._last = self._now()

    def post_epoch(self, epoch: int, epoch_loss: float, **kwargs: Any) -> None:
        now = self._now()
        self.seconds.append(now - (self._last if self._last is not None else now))
        self._last = now


def _loop_on(
    instance: Model, dataset: Dataset, batch_size: int, fast: bool, fused: bool = False
) -> FastLCWATrainingLoop:
    """Our loop on ``instance`` with its device incidence built (as ``train`` would)."""
    loop = FastLCWATrainingLoop(
        model=instance, triples_factory=dataset.training, fast_scoring=fast, fused_loss=fused
    )
    loop._create_training_data_loader(dataset.training, sampler=None, batch_size=batch_size)
    return loop


def _step_ms(loop: FastLCWATrainingLoop, ids: torch.Tensor, label_smoothing: float) -> float:
    """Median ms of one training step (scores and loss, forward and backward) on the pairs ``ids``."""

    def step() -> None:
        loop._process_batch(ids, 0, len(ids), label_smoothing=label_smoothing).backward()

    return median_ms(step, grad_to_none=list(loop.model.parameters()))


def batch_breakdown(args: argparse.Namespace, dataset: Dataset, model: str) -> dict[str, Any]:
    """Milliseconds of one training batch of our loop, with and without the matrix-product scorer (``None``
    when the model has none), of the loss alone on a materialised score matrix (``None`` when the loss has no
    sparse path: it then runs through PyKEEN's dense one), and of the step with the fused loss (``None`` unless
    the model has a distance decomposition and the loss is PyKEEN's cross entropy)."""

    def make(**kwargs: Any) -> Model:
        options = dict(embedding_dim=args.dim, loss=args.loss, random_seed=args.seed, **kwargs)
        return model_resolver.make(model, options, triples_factory=dataset.training).to(args.device)

    instance = make()
    loop = _loop_on(instance, dataset, args.batch_size, fast=True)
    incidence = loop.incidence
    assert incidence is not None
    gen = torch.Generator().manual_seed(args.seed)
    ids = torch.randperm(len(incidence), generator=gen)[: args.batch_size].to(args.device)
    scores = loop.scores(incidence.pairs[ids]).detach().requires_grad_()
    targets = incidence.positives(ids)

    def loss_only() -> None:
        sparse_lcwa_loss(instance.loss, scores, targets, args.label_smoothing).backward()

    generic = _loop_on(instance, dataset, args.batch_size, fast=False)
    fusable = tail_distance_decomposition(instance) is not None and type(instance.loss) is CrossEntropyLoss
    fused = _loop_on(instance, dataset, args.batch_size, fast=True, fused=True) if fusable else None
    compiled: dict[str, float | str] = {}
    without_attention_dropout: float | str | None = None
    if model == "CAT":
        for backend in args.cat_compile:
            compiled[backend] = _variant_step_ms(make, dataset, args, ids, compile_encoder=backend)
        without_attention_dropout = _variant_step_ms(
            make, dataset, args, ids, attention_kwargs={"dropout": 0.0}
        )
    return {
        "epochs": 0,
        "rows": len(ids),
        "num_entities": scores.shape[1],
        "step_ms": _step_ms(loop, ids, args.label_smoothing),
        "generic_ms": _step_ms(generic, ids, args.label_smoothing) if fast_tail_scorer(instance) else None,
        "loss_ms": median_ms(loss_only, grad_to_none=[scores])
        if supports_sparse_lcwa(instance.loss)
        else None,
        "fused_ms": _step_ms(fused, ids, args.label_smoothing) if fused is not None else None,
        "compiled_ms_by_backend": compiled or None,
        "no_attention_dropout_ms": without_attention_dropout,
    }


def _variant_step_ms(
    make: Any, dataset: Dataset, args: argparse.Namespace, ids: torch.Tensor, **interaction_kwargs: Any
) -> float | str:
    """ms of the step of the same CAT model and seed built with ``interaction_kwargs`` (e.g. ``compile_encoder=
    "inductor"``: compiled in the timing's warm-up); or why building, compiling or running it failed (a result,
    not a crash: inductor failed on the three-branch encoder in some runs)."""
    try:
        twin = make(interaction_kwargs=interaction_kwargs)
        loop = _loop_on(twin, dataset, args.batch_size, fast=True)
        return _step_ms(loop, ids, args.label_smoothing)
    except Exception as exc:  # recorded in the report cell
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"failed: {type(exc).__name__}: {first_line[:120]}"
    finally:
        torch._dynamo.reset()  # each backend compiles afresh


def run_one(args: argparse.Namespace, dataset: Dataset, model: str, loop: str, epochs: int) -> dict[str, Any]:
    """Train and evaluate one configuration."""
    timer = EpochTimer(args.device)
    result = pipeline(
        dataset=dataset,
        model=model,
        model_kwargs=dict(embedding_dim=args.dim),
        loss=args.loss,
        training_loop="lcwa" if loop == "pykeen" else "fastlcwa",
        optimizer="adam",
        optimizer_kwargs=dict(lr=args.lr),
        training_kwargs=dict(
            num_epochs=epochs,
            batch_size=args.batch_size,
            label_smoothing=args.label_smoothing,
            use_tqdm=False,
            pin_memory=args.device.startswith("cuda"),  # PyKEEN's default, which warns without a GPU
            callbacks=[timer],
        ),
        evaluation_kwargs=dict(use_tqdm=False),
        random_seed=args.seed,
        device=args.device,
    )
    seconds = timer.seconds
    steady = seconds[1:] or seconds
    metrics = result.metric_results
    return {
        "epochs": epochs,
        "epoch_seconds": seconds,
        "seconds_per_epoch": statistics.median(steady),
        "train_seconds": sum(seconds),
        "mrr": float(metrics.get_metric("mrr")),
        "hits_at_10": float(metrics.get_metric("hits@10")),
        "final_loss": result.losses[-1],
    }


def _load_runs(path: Path, config: dict[str, Any]) -> list[dict[str, Any]]:
    runs = read_jsonl(path)
    other = [r for r in runs if r["config"] != config]
    if other:
        raise SystemExit(
            f"{path} holds runs of another configuration ({other[0]['config']}); use another --out-dir or "
            "delete the file"
        )
    return runs


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def report(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The markdown tables of all records: per dataset and model, speed and MRR side by side, then per batch."""
    by_key = {(r["dataset"], r["model"], r["loop"], r["epochs"]): r for r in runs}
    pairs = sorted({(r["dataset"], r["model"]) for r in runs}, key=lambda p: (DATASETS.index(p[0]), p[1]))
    p, e = args.pykeen_epochs, args.epochs
    headers = [
        "dataset",
        "model",
        "PyKEEN s/epoch",
        "ours s/epoch",
        "speed-up",
        f"MRR PyKEEN @{p}",
        f"MRR ours @{p}",
        "ΔMRR",
        f"MRR ours @{e}",
        f"ours time to {e} ep. (s)",
        f"PyKEEN est. time to {e} ep. (s)",
    ]
    rows, batch_rows = [], []
    for dataset, model in pairs:
        pk, ours = by_key.get((dataset, model, "pykeen", p)), by_key.get((dataset, model, "ours", p))
        long = by_key.get((dataset, model, "ours", e))
        pk_s = pk["seconds_per_epoch"] if pk else None
        ours_s = (long or ours or {}).get("seconds_per_epoch")
        rows.append(
            [
                dataset,
                model,
                _fmt(pk_s, ".3f"),
                _fmt(ours_s, ".3f"),
                f"{pk_s / ours_s:.1f}x" if pk_s and ours_s else "-",
                _fmt(pk and pk["mrr"], ".4f"),
                _fmt(ours and ours["mrr"], ".4f"),
                f"{ours['mrr'] - pk['mrr']:+.4f}" if pk and ours else "-",
                _fmt(long and long["mrr"], ".4f"),
                _fmt(long and long["train_seconds"], ".1f"),
                _fmt(pk_s and pk_s * e, ".0f"),
            ]
        )
        batch = by_key.get((dataset, model, BREAKDOWN, 0))
        if batch:
            step, generic, loss = batch["step_ms"], batch["generic_ms"], batch["loss_ms"]
            fused = batch.get("fused_ms")  # absent in records written before the fused loss existed
            compiled = batch.get("compiled_ms_by_backend")  # likewise, before the per-backend column
            # records written before it have one inductor-only "compiled_ms"
            if compiled is None and batch.get("compiled_ms") is not None:
                compiled = {"inductor": batch["compiled_ms"]}
            batch_rows.append(
                [
                    dataset,
                    model,
                    f"{batch['rows']} x {batch['num_entities']}",
                    f"{step:.2f}",
                    "n/a (no fast scorer)" if generic is None else f"{generic:.2f} ({generic / step:.1f}x)",
                    _fmt(loss, ".2f"),
                    "-" if loss is None else f"{loss / step:.0%}",
                    "n/a" if fused is None else f"{fused:.2f} ({step / fused:.2f}x)",
                    "n/a" if not compiled else _compiled_cell(compiled, step),
                    _variant_cell(batch.get("no_attention_dropout_ms"), step),  # absent in older records
                ]
            )
    note = (
        f"d={args.dim}, batch {args.batch_size}, Adam lr {args.lr}, loss {args.loss}, label smoothing "
        f"{args.label_smoothing}, inverse triples, seed {args.seed}; filtered test MRR. s/epoch: median over epochs "
        "after the first (first included when only one); ours s/epoch from the longest run of our loop. "
        f"PyKEEN's time to {e} epochs is its s/epoch x {e} (not run that long)."
    )
    parts = [note, markdown_table(headers, rows)]
    if batch_rows:
        parts.append(
            "Per training batch of our loop (median ms; `triton.testing.do_bench` on CUDA): a step (scores + loss, "
            "forward and backward) with the matrix-product scorer, without it (the model's broadcast `score_t`), "
            "the loss alone on a materialised score matrix: the most a loss fused into the scoring kernel "
            "could save, and the step with that fused loss (`fused_loss=True`; in brackets the speed-up over "
            "the step; n/a: no distance decomposition or not the cross-entropy loss), and for CAT the step with "
            "its encoder through `torch.compile` with each backend of `--cat-compile` (`compile_encoder=<backend>`) "
            "and the eager step without attention-weight dropout (its attention through the fused kernels)."
        )
        headers = [
            "dataset",
            "model",
            "batch x entities",
            "step ms",
            "without fast scorer ms",
            "loss-only ms",
        ]
        parts.append(
            markdown_table(
                [*headers, "loss share", "fused step ms", "compiled encoder ms", "no attention dropout ms"],
                batch_rows,
            )
        )
    return "\n\n".join(parts)


def _variant_cell(ms: float | str | None, step: float) -> str:
    """``ms (speed-up over the eager step)``, the failure recorded instead, or ``n/a`` (not timed)."""
    if ms is None:
        return "n/a"
    return ms if isinstance(ms, str) else f"{ms:.2f} ({step / ms:.2f}x)"


def _compiled_cell(compiled: dict[str, float | str], step: float) -> str:
    """``backend <variant cell>`` per backend."""
    return "; ".join(f"{backend} {_variant_cell(ms, step)}" for backend, ms in compiled.items())


def measure(
    args: argparse.Namespace, dataset: Dataset, model: str, loop: str, epochs: int
) -> dict[str, Any] | str:
    """One record (without its keys), or why the combination is skipped."""
    if loop == BREAKDOWN:
        return batch_breakdown(args, dataset, model)
    return run_one(args, dataset, model, loop, epochs)


def _summary(record: dict[str, Any]) -> str:
    if record["loop"] == BREAKDOWN:
        generic = record["generic_ms"]
        without = "" if generic is None else f"; {generic:.2f} ms without the fast scorer"
        fused = record.get("fused_ms")
        with_fused = "" if fused is None else f"; {fused:.2f} ms with the fused loss"
        return f"{record['step_ms']:.2f} ms per training step{without}{with_fused}"
    return f"{record['epochs']} ep., {record['seconds_per_epoch']:.3f} s/epoch, MRR {record['mrr']:.4f}"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = _config(args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    runs_path = args.out_dir / RUNS_FILE
    runs = _load_runs(runs_path, config)
    done = {(r["dataset"], r["model"], r["loop"], r["epochs"]) for r in runs}
    plan = [(loop, args.pykeen_epochs) for loop in LOOPS] + [("ours", args.epochs), (BREAKDOWN, 0)]
    if args.breakdown_only:
        plan = [(BREAKDOWN, 0)]
    for name in args.datasets:
        dataset = local_kg_dataset(
            name, args.data_root, tiny=args.smoke, num_entities=300, create_inverse_triples=True
        )
        for model in args.models:
            for loop, epochs in dict.fromkeys(plan):
                if (name, model, loop, epochs) in done:
                    continue
                start = time.perf_counter()
                result = measure(args, dataset, model, loop, epochs)
                record = {"dataset": name, "model": model, "loop": loop, **result, "config": config}
                with runs_path.open("a") as f:  # incremental: an interrupted run keeps what finished
                    f.write(json.dumps(record) + "\n")
                runs.append(record)
                wall = time.perf_counter() - start
                print(f"{name} {model} {loop}: {_summary(record)} ({wall:.0f} s in all)", flush=True)
    body = report(runs, args)
    print(body)
    out = args.out_dir / REPORT_FILE
    write_report(out, "kg_epoch_speed", body, seed=args.seed, config=config)
    print(f"wrote {out} and {runs_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
