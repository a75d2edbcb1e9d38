"""Knowledge-graph completion results table: CAT, its single-geometry ablations, AttH, RotH, MuRE and RotatE.

Each row is one ``geoattn-train`` experiment (``configs/experiment/kg/<dataset>_<model>.yaml``), run here
through :func:`geoattn.train.train` exactly as ``geoattn-train experiment=kg/<dataset>_<model> seed=<s>``
would, so one table row = one command. Protocol (the same for every row, from ``configs/runner/kg_pipeline.yaml``):
PyKEEN's pipeline, 1-N training with inverse triples, softmax cross-entropy with label smoothing 0.1, early
stopping on validation MRR, filtered rank-based evaluation (PyKEEN's realistic ranks, both head and tail
prediction) on the test split; validation metrics are recorded next to them for model selection.

Reported per dataset and model: filtered MRR and Hits@1/3/10 on test (mean +- sample std over the seeds), the
validation MRR, the training time, the parameter count, the epochs trained, the epoch where the early stopper's
validation curve peaked (``*``: the stopper stopped training and PyKEEN restored its best epoch's weights; otherwise
the model is the last epoch's) and the seeds. PyKEEN indexes entities from the training split and drops
valid/test triples with an entity unseen in training; the table states how many test triples that removed
(published tables such as Chami et al. 2020 keep and rank them, so their MRR is on slightly different test sets).

Every finished run is appended to ``<out-dir>/runs.jsonl`` at once, with a fingerprint of its composed config
(model, data, optimizer, runner, seed), and skipped on a restart while that fingerprint still matches: a run
whose experiment config changed since it was logged trains again. An interrupted run continues from its PyKEEN
checkpoint (``<out-dir>/runs/<experiment>[_lr<lr>]_seed<s>_<fingerprint>/checkpoints``; ``--checkpoint-minutes``
sets how often it is written, e.g. ``0`` for every epoch where a time limit may cut the run; checkpoints are
written atomically, so a kill at any moment leaves one to continue from). ``SIGINT`` (Ctrl-C, ``timeout -s INT``)
stops every run at once, the ones training in worker processes too. The table goes to stdout and to
``<out-dir>/kg_results.md``.

Learning rates (``--lrs``) are selected on the validation split with the same budget for every model: one run per
candidate with the first seed, the highest validation MRR wins, and the other seeds run with it; the table's "lr"
column gives the choice and every candidate's validation MRR ("config": the experiment's own lr). A candidate that
PyKEEN stops with a non-finite loss is logged as diverged and loses the selection. A run that fails otherwise is
reported (with its traceback) once the runs beside it are done and logged; the command then exits non-zero, and
running it again trains only what is missing.

``--jobs N`` trains N runs at once, as separate processes sharing the device (``--threads`` CPU threads each,
default the machine's cores shared among them): the d=32 models are small, so one GPU serves several runs — the
shallow ones are bound by Python and kernel launches, not by the GPU's arithmetic. Tuning runs go first, all at
once, then every seed's run with its selected rate. Runs finish in any order; the log and the table do not depend
on it.

GPU (what has run, with its commands, is in ``benchmarks/RESULTS.md``: every row at d=32 and d=256 on both datasets
— the shallow rows' tuning, the CAT rows' tuning and three seeds at d=32 — the dot-product score and the entities on
the ball; ``roth_kgemb`` has not run). The shallow rows, then the CAT rows — at 50 epochs so that six runs sharing
one H200 finish within a 10-minute window (the comparison between CAT and its ablations is at equal budget; against
the shallow rows, CAT has half their epochs). CAT's encoder is launch-bound eagerly, and ``torch.compile`` makes its
training step 2.1x faster on an H200 (``benchmarks/kg/epoch_speed.py --breakdown-only``): the ablations ran compiled
(the ``+``: the experiments do not set ``compile_encoder``); CAT ran eagerly on WN18RR, where inductor had failed on
its three-branch encoder (``AssertionError`` in torch 2.11, three runs in one pool), and compiled on FB15k-237, one
process per CAT run, where it did not fail. ``--checkpoint-minutes 0`` lets a run cut by a time limit continue from
its last epoch::

    python benchmarks/kg/results_table.py --device cuda --jobs 9 --threads 1 --lrs 0.001,0.003,0.01 --models mure,rotate,roth,atth --data-root ../shared/data/kg
    python benchmarks/kg/results_table.py --device cuda --jobs 9 --threads 1 --datasets wn18rr --lrs 0.001,0.003,0.01,0.03 --seeds 0,1,2 --epochs 50 --models cat_euclidean,cat_hyperbolic,cat_spherical --override +model.interaction_kwargs.compile_encoder=true --data-root ../shared/data/kg
    python benchmarks/kg/results_table.py --device cuda --jobs 4 --threads 2 --datasets wn18rr --lrs 0.001,0.003,0.01,0.03 --seeds 0,1,2 --epochs 50 --models cat --data-root ../shared/data/kg
    python benchmarks/kg/results_table.py --device cuda --jobs 1 --threads 1 --datasets fb15k237 --lrs 0.003,0.01 --seeds 0,1,2 --epochs 50 --models cat --override +model.interaction_kwargs.compile_encoder=true --data-root ../shared/data/kg
    python benchmarks/kg/results_table.py --device cuda --jobs 3 --threads 1 --datasets fb15k237 --lrs 0.003,0.01 --seeds 0,1,2 --epochs 50 --models cat_euclidean,cat_hyperbolic,cat_spherical --override +model.interaction_kwargs.compile_encoder=true --data-root ../shared/data/kg
    python benchmarks/kg/results_table.py --device cuda --jobs 3 --threads 1 --datasets wn18rr --lrs 0.001,0.003,0.01 --models roth_riemannian --data-root ../shared/data/kg
    python benchmarks/kg/results_table.py --device cuda --models cat_dot,cat_d256,roth_riemannian,atth_riemannian
    python benchmarks/kg/results_table.py --device cuda --jobs 3 --threads 1 --lrs 0.001 --models cat_euclidean_d256,cat_hyperbolic_d256,cat_spherical_d256 --override +model.interaction_kwargs.compile_encoder=true --data-root ../shared/data/kg
    python benchmarks/kg/results_table.py --device cuda --jobs 4 --threads 1 --lrs 0.001,0.003 --models roth_d256,atth_d256 --data-root ../shared/data/kg
    python benchmarks/kg/results_table.py --device cuda --jobs 2 --threads 1 --lrs 0.001,0.003 --models mure_d256,rotate_d256 --data-root ../shared/data/kg   # PyKEEN's evaluation of these takes >100 GiB at d=256
    python benchmarks/kg/results_table.py --device cuda --models roth_kgemb   # the 1-N protocol vs Chami et al.'s

(``--seeds 0,1,2`` adds the other seeds at the selected rates; the tuning runs are the first seed's.)

Smoke test (any machine; tiny slices, tiny models, 1 epoch on the CPU; numbers are meaningless)::

    python benchmarks/kg/results_table.py --smoke --out-dir /tmp/kg
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
import traceback
from collections.abc import Iterator, Sequence
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/_common.py
from _common import markdown_table, read_jsonl, spawn_pool, write_report

REPO = Path(__file__).resolve().parents[2]
DATASETS = {"wn18rr": "WN18RR", "fb15k237": "FB15k-237"}
MODELS = {
    "cat": "CAT",
    "cat_euclidean": "CAT, Euclidean only",
    "cat_hyperbolic": "CAT, hyperbolic only",
    "cat_spherical": "CAT, spherical only",
    "atth": "AttH",
    "roth": "RotH",
    "mure": "MuRE (PyKEEN)",
    "rotate": "RotatE (PyKEEN)",
}
# Further rows (pass them with --models): the scoring alternative, the high-dimension setting (every row at d=256),
# and entities on the ball trained with RiemannianAdam against the tangent-space parametrisation.
EXTRA_MODELS = {
    "cat_dot": "CAT, dot-product score",
    "cat_d256": "CAT, d=256",
    "cat_euclidean_d256": "CAT, Euclidean only, d=256",
    "cat_hyperbolic_d256": "CAT, hyperbolic only, d=256",
    "cat_spherical_d256": "CAT, spherical only, d=256",
    "roth_d256": "RotH, d=256",
    "atth_d256": "AttH, d=256",
    "mure_d256": "MuRE (PyKEEN), d=256",
    "rotate_d256": "RotatE (PyKEEN), d=256",
    "roth_riemannian": "RotH, on the ball + RiemannianAdam",
    "atth_riemannian": "AttH, on the ball + RiemannianAdam",
    "roth_kgemb": "RotH, Chami et al.'s protocol (sampled negatives)",
}
METRICS = ("mrr", "hits_at_1", "hits_at_3", "hits_at_10")
# tiny slices and models for --smoke (WN18RR is sparse: its 100 densest entities leave no test triple)
SMOKE = ["data.tiny=true", "data.num_entities=500", "data.num_triples=600", "runner.device=cpu"]
SMOKE_RUNNER = ["runner.num_epochs=1", "runner.batch_size=128", "runner.checkpoint_frequency=0"]
SMOKE_CAT = ["model.interaction_kwargs.num_layers=1", "model.interaction_kwargs.num_heads=2"]


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma list of %(default)s")
    parser.add_argument(
        "--models",
        default=",".join(MODELS),
        help="comma list of experiment suffixes (any configs/experiment/kg/<dataset>_<model>.yaml, e.g. "
        f"{','.join(EXTRA_MODELS)}); default %(default)s",
    )
    parser.add_argument("--seeds", default="0", help="comma list of seeds (default %(default)s)")
    parser.add_argument(
        "--lrs",
        default="",
        help="comma list of learning rates to select from on the validation split: each is trained with the first "
        "seed, the highest validation MRR wins and the other seeds run with it (the same tuning budget for every "
        "model); default: the experiment's own lr",
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="override runner.num_epochs (default: config)"
    )
    parser.add_argument(
        "--data-root",
        default=str(REPO.parent / "shared" / "data" / "kg"),
        help="folder of <WN18RR|FB15k-237>/{train,valid,test}.txt (default %(default)s)",
    )
    parser.add_argument(
        "--device", default="auto", help="runner.device: auto | cpu | cuda (default %(default)s)"
    )
    parser.add_argument(
        "--override", action="append", default=[], help="extra Hydra override for every run (repeatable)"
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at once, as processes sharing the device (default %(default)s)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads per run (default: the cores shared by --jobs)",
    )
    parser.add_argument(
        "--checkpoint-minutes",
        type=int,
        default=None,
        help="minutes between a run's PyKEEN checkpoints (0: every epoch; default: the runner's); not part of the "
        "config fingerprint, since when a run saves does not change what it trains",
    )
    parser.add_argument("--out-dir", default=str(REPO / "benchmarks" / "results" / "kg"))
    parser.add_argument("--smoke", action="store_true", help="tiny slices and models, 1 epoch, CPU")
    args = parser.parse_args(argv)
    args.datasets = [d for d in args.datasets.split(",") if d]
    args.models = [m for m in args.models.split(",") if m]
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    try:
        args.lrs = [float(x) for x in args.lrs.split(",") if x]
    except ValueError:
        parser.error(f"--lrs must be a comma list of numbers, got {args.lrs!r}")
    if any(not lr > 0 for lr in args.lrs) or len(set(args.lrs)) != len(args.lrs):
        parser.error(f"--lrs must be distinct positive numbers, got {args.lrs}")
    unknown = [d for d in args.datasets if d not in DATASETS]
    if unknown:
        parser.error(f"--datasets: unknown {unknown}; accepted: {sorted(DATASETS)}")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be >= 1, got {args.epochs}")
    if args.checkpoint_minutes is not None and args.checkpoint_minutes < 0:
        parser.error(f"--checkpoint-minutes must be >= 0, got {args.checkpoint_minutes}")
    if args.jobs < 1 or (args.threads is not None and args.threads < 1):
        parser.error(f"--jobs and --threads must be >= 1, got {args.jobs} and {args.threads}")
    return args


def _overrides(experiment: str, seed: int, args: argparse.Namespace, is_cat: bool) -> list[str]:
    out = [f"experiment=kg/{experiment}", f"seed={seed}", f"data.root={args.data_root}"]
    out.append(f"runner.device={args.device}")
    if args.smoke:
        out += SMOKE + SMOKE_RUNNER + ["model.embedding_dim=8"] + (SMOKE_CAT if is_cat else [])
    if args.epochs is not None:
        out.append(f"runner.num_epochs={args.epochs}")
    return out + list(args.override)


def _lr_run(
    experiment: str, seed: int, args: argparse.Namespace, is_cat: bool, lr: float | None
) -> tuple[list[str], str]:
    """``(overrides, run folder name)`` of one run, at learning rate ``lr`` (``None``: the experiment's)."""
    overrides = _overrides(experiment, seed, args, is_cat)
    if lr is None:
        return overrides, f"{experiment}_seed{seed}"
    return [*overrides, f"optimizer.lr={lr}"], f"{experiment}_lr{lr:g}_seed{seed}"


def _compose(overrides: list[str]) -> Any:
    """The ``geoattn-train`` config of ``overrides`` (a Hydra ``DictConfig``)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="geoattn.configs", version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def config_fingerprint(overrides: list[str]) -> str:
    """16 hex digits of the sha256 of the run's composed config — the parts a knowledge-graph run reads (model,
    data, optimizer, runner, seed), resolved — so a logged run is reused only while its experiment is unchanged."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.masked_copy(_compose(overrides), ["seed", "model", "data", "optimizer", "runner"])
    return hashlib.sha256(OmegaConf.to_yaml(cfg, resolve=True).encode()).hexdigest()[:16]


def run_one(
    experiment: str,
    seed: int,
    overrides: list[str],
    out_dir: Path,
    name: str,
    fingerprint: str,
    checkpoint_minutes: int | None = None,
) -> dict[str, Any]:
    """Train ``experiment=kg/<experiment>`` with ``overrides`` (Hydra) in ``<out_dir>/runs/<name>_<fingerprint>``,
    return its run.json fields, or ``diverged`` (the message) where PyKEEN stopped it with a non-finite loss.
    ``checkpoint_minutes`` (``None``: the runner's) sets how often PyKEEN checkpoints the run, outside the logged
    overrides: a run cut by a time limit continues from its last checkpoint with the same fingerprint."""
    from pykeen.training.training_loop import NonFiniteLossError

    from geoattn.train import train

    saving = [] if checkpoint_minutes is None else [f"runner.checkpoint_frequency={checkpoint_minutes}"]
    cfg = _compose([*overrides, *saving])
    run_dir = out_dir / "runs" / f"{name}_{fingerprint}"
    head = {"experiment": experiment, "seed": seed, "overrides": overrides, "config_sha": fingerprint}
    try:
        train(cfg, run_dir=run_dir)
    except NonFiniteLossError as exc:
        # a learning rate too high for the model: a result of tuning, not an error
        return {**head, "diverged": f"{type(exc).__name__}: {exc}"}
    info = json.loads((run_dir / "run.json").read_text())
    return {
        **head,
        **{key: info[key] for key in ("validation", "test", "train_seconds", "num_parameters", "num_epochs")},
        "dropped_test_triples": info["dropped_test_triples"],
        "early_stopping": info.get("early_stopping"),
        "git_sha": info["git_sha"],
        "device": info["device"],
    }


def _mean_std(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def _peak_epoch(run: dict[str, Any]) -> str:
    """The epoch of the highest validation result on the early stopper's curve; where the stopper stopped training,
    its best epoch with ``*`` instead (PyKEEN restored that epoch's weights, so the reported model is that epoch's;
    otherwise it is the last epoch's). The stopper's best epoch is not the peak in general: it counts a result as
    better only above its ``relative_delta`` (PyKEEN's default: 1% relative). ``-`` where the run has no curve (no
    evaluation yet, or logged before curves were recorded)."""
    curve = run.get("early_stopping") or {}
    if curve.get("stopped") and curve.get("best_epoch") is not None:
        return f"{curve['best_epoch']}*"
    values, epochs = curve.get("values") or [], curve.get("epochs") or []
    if not values:
        return "-"
    return str(epochs[max(range(len(values)), key=values.__getitem__)])


def table(
    runs: list[dict[str, Any]],
    datasets: list[str],
    models: list[str],
    lr_choice: dict[str, str] | None = None,
) -> str:
    """One markdown table per dataset; rows in the order of ``models``; ``lr_choice``: the "lr" cell of each
    experiment (the selected rate and the validation MRR of every candidate)."""
    headers = [
        "model",
        "lr",
        "MRR",
        "Hits@1",
        "Hits@3",
        "Hits@10",
        "val MRR",
        "train s",
        "params",
        "epochs",
        "peak val epoch",
        "seeds",
    ]
    parts = []
    for dataset in datasets:
        rows = []
        dropped: set[int | None] = set()
        for model in models:
            mine = [r for r in runs if r["experiment"] == f"{dataset}_{model}" and "diverged" not in r]
            if not mine:
                continue
            dropped |= {r["dropped_test_triples"] for r in mine}
            rows.append(
                [
                    {**MODELS, **EXTRA_MODELS}.get(model, model),
                    (lr_choice or {}).get(f"{dataset}_{model}", "config"),
                    *(_mean_std([r["test"][m] for r in mine]) for m in METRICS),
                    _mean_std([r["validation"].get("mrr", math.nan) for r in mine]),
                    f"{statistics.mean(r['train_seconds'] for r in mine):.0f}",
                    f"{mine[0]['num_parameters']:,}",
                    "/".join(str(r["num_epochs"]) for r in mine),
                    "/".join(_peak_epoch(r) for r in mine),
                    ",".join(str(r["seed"]) for r in mine),
                ]
            )
        counts = ", ".join("n/a (tiny slice)" if d is None else str(d) for d in sorted(dropped, key=str))
        diverged = [
            f"{r['experiment']} seed {r['seed']}"
            for r in runs
            if "diverged" in r and r["experiment"].startswith(f"{dataset}_")
        ]
        parts += [
            f"### {DATASETS[dataset]} (filtered, test split)",
            "",
            markdown_table(headers, rows),
            "",
            f"Test triples PyKEEN dropped (an entity unseen in training): {counts}.",
            "",
            *(
                [f"Diverged (non-finite training loss; not in the table): {', '.join(diverged)}.", ""]
                if diverged
                else []
            ),
        ]
    return "\n".join(parts)


#: One training run: ``(experiment, seed, Hydra overrides, run folder name)``.
Run = tuple[str, int, list[str], str]  # experiment, seed, overrides, name


def _trained(
    pending: list[tuple[Run, str]],
    out_dir: Path,
    jobs: int,
    threads: int | None,
    checkpoint_minutes: int | None,
) -> Iterator[tuple[Run, dict[str, Any] | BaseException]]:
    """Train ``pending`` runs, ``jobs`` at once in spawned processes (``threads`` torch threads each; PyKEEN
    checkpoints every ``checkpoint_minutes``, see :func:`run_one`), yielding each run as it finishes with its row, or
    with the exception it raised: a failing run does not stop the others."""
    if jobs == 1:
        if threads is not None:
            torch.set_num_threads(threads)
        for run, fingerprint in pending:
            outcome: dict[str, Any] | BaseException
            try:
                outcome = run_one(*run[:3], out_dir, run[3], fingerprint, checkpoint_minutes)
            except Exception as exc:  # reported once the other runs are done
                outcome = exc
            yield run, outcome
        return
    with spawn_pool(jobs, threads) as pool:
        futures = {
            pool.submit(run_one, *run[:3], out_dir, run[3], fingerprint, checkpoint_minutes): run
            for run, fingerprint in pending
        }
        for future in as_completed(futures):
            error = future.exception()
            yield futures[future], future.result() if error is None else error


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log = out_dir / "runs.jsonl"
    runs = read_jsonl(log)
    fingerprints: dict[str, str | BaseException] = {}

    def fingerprint(run: Run) -> str | BaseException:
        """The run's config fingerprint, or why its config does not compose (e.g. no such experiment)."""
        if run[3] not in fingerprints:
            try:
                fingerprints[run[3]] = config_fingerprint(run[2])
            except Exception as exc:  # reported with the runs that fail, after the others are done
                fingerprints[run[3]] = exc
        return fingerprints[run[3]]

    def logged(run: Run) -> list[dict[str, Any]]:
        experiment, seed, overrides, _ = run
        return [
            r for r in runs if (r["experiment"], r["seed"], r["overrides"]) == (experiment, seed, overrides)
        ]

    def find(run: Run) -> dict[str, Any] | None:
        return next((r for r in logged(run) if r.get("config_sha") == fingerprint(run)), None)

    def rows_of(wanted: list[Run]) -> dict[str, dict[str, Any]]:
        """The rows of ``wanted`` by run name: from the log, or trained now (``--jobs`` at once) and logged as
        they finish."""
        failed = []

        def report(run: Run, error: BaseException) -> None:
            failed.append(f"{run[3]} ({type(error).__name__}: {error})")
            traceback.print_exception(error)  # in a worker's: the worker's traceback as its cause
            print(f"FAILED: {failed[-1]}", flush=True)

        pending = []
        for run in wanted:
            key = fingerprint(run)
            if isinstance(key, BaseException):
                report(run, key)
            elif find(run) is not None:
                print(f"skip {run[3]}: in {log}", flush=True)
            else:
                if logged(run):
                    print(f"retrain {run[3]}: its config changed since it was logged", flush=True)
                pending.append((run, key))
        for run, row in _trained(pending, out_dir, args.jobs, args.threads, args.checkpoint_minutes):
            if isinstance(row, BaseException):
                report(run, row)
                continue
            if "diverged" in row:
                print(f"{run[3]}: diverged ({row['diverged']})", flush=True)
            else:
                print(f"{run[3]}: validation MRR {row['validation'].get('mrr', math.nan):.4f}, test MRR "
                      f"{row['test']['mrr']:.4f}", flush=True)  # fmt: skip
            with log.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            runs.append(row)
        if failed:
            raise SystemExit(
                f"results_table: {len(failed)} run(s) failed: {'; '.join(failed)}. Every other run is in {log}; "
                "the same command retrains only what is missing."
            )
        return {run[3]: found for run in wanted if (found := find(run)) is not None}

    def run_at(experiment: str, seed: int, lr: float | None) -> Run:
        is_cat = experiment.split("_", 1)[1].startswith("cat")
        return (experiment, seed, *_lr_run(experiment, seed, args, is_cat, lr))

    experiments = [f"{dataset}_{model}" for dataset in args.datasets for model in args.models]
    best: dict[str, float | None] = dict.fromkeys(experiments)  # the experiment's own lr unless --lrs
    lr_choice: dict[str, str] = {}
    if args.lrs:  # the same budget for every model: one run per candidate, first seed
        first = args.seeds[0]
        tuning = rows_of([run_at(e, first, lr) for e in experiments for lr in args.lrs])
        for experiment in experiments:
            candidates = {lr: tuning[run_at(experiment, first, lr)[3]] for lr in args.lrs}
            val = {
                lr: float(row["validation"].get("mrr", -math.inf))
                for lr, row in candidates.items()
                if "diverged" not in row
            }
            if not val:
                raise SystemExit(
                    f"results_table: every candidate learning rate of {experiment} diverged ({args.lrs}); "
                    "pass smaller --lrs"
                )
            chosen = max(val, key=lambda lr: val[lr])
            best[experiment] = chosen
            lr_choice[experiment] = (
                f"{chosen:g} (val MRR "
                + " / ".join(
                    f"{lr:g}: {val[lr]:.3f}" if lr in val else f"{lr:g}: diverged" for lr in args.lrs
                )
                + ")"
            )
    selected = list(rows_of([run_at(e, seed, best[e]) for e in experiments for seed in args.seeds]).values())
    body = table(selected, args.datasets, args.models, lr_choice)
    config = {k: v for k, v in vars(args).items() if k != "out_dir"}
    text = write_report(
        out_dir / "kg_results.md", "Knowledge-graph completion", body, seed=args.seeds[0], config=config
    )
    print(text)


if __name__ == "__main__":
    main()
