"""Training throughput on 1 vs N processes (GPUs) at the same global batch: ``geoattn-train`` under ``torchrun``.

**TSP policy** (``--batch-sizes``): data-parallel with DDP (``geoattn.train.distributed``). For every global batch
size ``B`` and every process count ``P`` in ``1`` and ``--nproc``, the script launches ``torchrun --standalone
--nproc-per-node=P -m geoattn.train experiment=tsp/pomo_tsp100`` with one curriculum stage ``{n: --n,
batch_size: B}`` (each process draws ``B / P`` instances per step), ``--warmup-steps`` untimed steps, then
``--steps`` timed ones, and reads the timing from the run's own ``metrics.jsonl`` (rank 0's ``elapsed_s`` at the
end of the warm-up and of the last step; validation and the checkpoint come after the last step and are not
timed). Throughput is ``B * steps / seconds`` instances (POMO decodes ``n`` tours of each) per second; the
speed-up is relative to one process at the same ``B``. The last columns are the training loss (mean of the timed
steps, over all processes) and the validation gap after the last step, which at the same ``B`` and step count
have seen the same number of instances (meaningful only with ``--steps`` in the thousands).

**KG** (``--kg-experiments``): PyKEEN's pipeline with geoattn's data-parallel 1-N loop
(``geoattn.kg.distributed``): ``torchrun ... -m geoattn.train experiment=kg/<experiment>`` with the global batch
``--kg-batch``, ``--kg-epochs`` epochs, no early stopping; the first epoch (CUDA start-up, ``torch.compile``) is
not timed. Throughput is training pairs ``(h, r)`` per second (``pairs * (epochs - 1) / seconds``, from the
run's ``elapsed_s`` per epoch); the test MRR after the same epochs compares what 1 and N processes learnt (they
take the same steps on the same batches, up to floating-point summation order).

The children get ``NCCL_NVLS_ENABLE=0`` (NCCL's NVLink multicast stays off; the shared GPU hosts require it)
and ``OMP_NUM_THREADS=1`` unless it is set.

Two GPUs of one host (the numbers to record)::

    python benchmarks/ddp_throughput.py --nproc 2 --kg-data-root ../shared/data/kg --out benchmarks/results/ddp_throughput.md

Smoke test (any machine, gloo on CPU, a tiny policy and KG slice; the times are meaningless)::

    python benchmarks/ddp_throughput.py --smoke
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import markdown_table, write_report

from geoattn.train.distributed import torchrun_command, torchrun_environ

TINY_MODEL = [
    "model.embed_dim=16",
    "model.heads=2",
    "model.layers=1",
    "model.ff_dim=32",
    "model.val_num_starts=4",
]


@dataclass(frozen=True)
class Measurement:
    batch: int
    nproc: int
    seconds: float
    steps: int
    loss: float
    val: dict[str, float]

    @property
    def instances_per_s(self) -> float:
        return self.batch * self.steps / self.seconds


def _overrides(args: argparse.Namespace, batch: int) -> list[str]:
    """The ``geoattn-train`` overrides of one run: one stage, timing rows at the warm-up and the end only."""
    last = args.warmup_steps + args.steps
    overrides = [
        "experiment=tsp/pomo_tsp100",
        f"seed={args.seed}",
        f"data.stages=[{{n: {args.n}, batch_size: {batch}, steps: null}}]",
        f"data.val_sizes=[{args.val_n}]",
        f"data.val_count={args.val_count}",
        f"trainer.max_steps={last}",
        f"trainer.log_every={args.warmup_steps}",
        f"trainer.val_every={last}",
        f"trainer.ckpt_every={last}",
        f"trainer.device={args.device}",
        "trainer.progress_bar=false",
    ]
    return overrides + (TINY_MODEL if args.smoke else [])


def _run_job(overrides: list[str], nproc: int, run_dir: Path, what: str) -> list[dict[str, Any]]:
    """``torchrun --nproc-per-node=nproc -m geoattn.train *overrides`` into ``run_dir``; its metrics rows."""
    command = torchrun_command(nproc, ["-m", "geoattn.train", *overrides, f"hydra.run.dir={run_dir}"])
    env = {**torchrun_environ(), "HYDRA_FULL_ERROR": "1"}
    print(f"{what}, {nproc} process(es): {' '.join(command)}", file=sys.stderr, flush=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(
            f"torchrun failed (exit {done.returncode}) for {what}, {nproc} processes:\n{done.stderr[-6000:]}"
        )
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _measure(args: argparse.Namespace, batch: int, nproc: int, work: Path) -> Measurement:
    rows = _run_job(_overrides(args, batch), nproc, work / f"b{batch}_p{nproc}", f"batch {batch}")
    train = {r["step"]: r for r in rows if r["split"] == "train"}
    start, end = train[args.warmup_steps], train[args.warmup_steps + args.steps]
    timed = [r["loss"] for step, r in train.items() if step > args.warmup_steps]
    val = next(r for r in rows if r["split"] == "val")
    return Measurement(
        batch=batch,
        nproc=nproc,
        seconds=end["elapsed_s"] - start["elapsed_s"],
        steps=args.steps,
        loss=sum(timed) / len(timed),
        val={
            k: v for k, v in val.items() if k.endswith(("gap_n" + str(args.val_n), "len_n" + str(args.val_n)))
        },
    )


@dataclass(frozen=True)
class KGMeasurement:
    experiment: str
    nproc: int
    pairs: int
    seconds: float
    epochs: int
    loss: float
    test_mrr: float

    @property
    def pairs_per_s(self) -> float:
        return self.pairs * self.epochs / self.seconds


def _kg_pairs(args: argparse.Namespace, experiment: str) -> int:
    """The training pairs ``(h, r)`` of one epoch of ``experiment`` (with inverse triples, as it trains)."""
    from pykeen.triples import LCWAInstances

    from geoattn.train.tasks.kg import load_kg_dataset

    data = {"name": "WN18RR" if experiment.startswith("wn18rr") else "FB15k-237", "root": args.kg_data_root}
    if args.smoke:
        data["tiny"] = True
    dataset = load_kg_dataset(data, create_inverse_triples=True)
    return int(LCWAInstances.from_triples_factory(dataset.training).pairs.shape[0])


def _kg_measure(args: argparse.Namespace, experiment: str, nproc: int, work: Path) -> KGMeasurement:
    run_dir = work / f"{experiment}_p{nproc}"
    overrides = [
        f"experiment=kg/{experiment}",
        f"seed={args.seed}",
        f"data.root={args.kg_data_root}",
        f"runner.num_epochs={args.kg_epochs}",
        f"runner.batch_size={args.kg_batch}",
        f"runner.device={args.device}",
        "runner.stopper=null",
        "runner.evaluate_validation=false",
    ]
    if args.smoke:
        overrides += ["data.tiny=true", "model.embedding_dim=8"]
    rows = _run_job(overrides, nproc, run_dir, experiment)
    info = json.loads((run_dir / "run.json").read_text())
    return KGMeasurement(
        experiment=experiment,
        nproc=nproc,
        pairs=_kg_pairs(args, experiment),
        seconds=rows[-1]["elapsed_s"] - rows[0]["elapsed_s"],
        epochs=len(rows) - 1,
        loss=rows[-1]["loss"],
        test_mrr=info["test"]["mrr"],
    )


def _kg_table(results: list[KGMeasurement], batch: int, nproc: int) -> str:
    rows: list[list[str]] = []
    for m in results:
        base = next(r for r in results if r.experiment == m.experiment and r.nproc == 1)
        rows.append(
            [
                m.experiment,
                str(m.nproc),
                f"{batch} ({batch // m.nproc}{'+' if batch % m.nproc else ''} each)",
                f"{m.seconds / m.epochs:.2f}",
                f"{m.pairs_per_s:,.0f}",
                f"{m.pairs_per_s / base.pairs_per_s:.2f}x",
                f"{m.loss:.5g}",
                f"{m.test_mrr:.4f}",
            ]
        )
    headers = [
        "experiment",
        "processes",
        "global batch",
        "s / epoch",
        "pairs/s",
        "speed-up",
        "last epoch loss",
        "test MRR",
    ]
    return markdown_table(headers, rows)


def _table(args: argparse.Namespace, results: list[Measurement]) -> str:
    gap_key = f"aug_gap_n{args.val_n}"
    rows: list[list[str]] = []
    for m in results:
        base = next(r for r in results if r.batch == m.batch and r.nproc == 1)
        rows.append(
            [
                str(m.batch),
                str(m.nproc),
                str(m.batch // m.nproc),
                f"{m.seconds / m.steps * 1e3:.1f}",
                f"{m.instances_per_s:.1f}",
                f"{m.instances_per_s / base.instances_per_s:.2f}x",
                f"{m.loss:.4g}",
                f"{m.val[gap_key]:.2f}" if gap_key in m.val else "n/a",
            ]
        )
    headers = [
        "global batch",
        "processes",
        "batch / process",
        "ms / step",
        "instances/s",
        "speed-up",
        "train loss",
        f"val aug gap n{args.val_n} (%)",
    ]
    return markdown_table(headers, rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--nproc", type=int, default=2, help="processes (GPUs) to compare with one (default 2)"
    )
    parser.add_argument(
        "--batch-sizes", default="64,128", help="TSP global batch sizes, comma-separated ('' for none)"
    )
    parser.add_argument("--n", type=int, default=100, help="cities per training instance (default 100)")
    parser.add_argument("--warmup-steps", type=int, default=10, help="untimed steps (default 10)")
    parser.add_argument("--steps", type=int, default=50, help="timed steps, a multiple of --warmup-steps")
    parser.add_argument("--val-n", type=int, default=100, help="validation size: 20, 50 or 100 (default 100)")
    parser.add_argument("--val-count", type=int, default=64, help="validation instances (default 64)")
    parser.add_argument(
        "--device", default="auto", help="trainer.device: auto (CUDA when there is one) or cpu"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", type=Path, default=None, help="run folders (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=None, help="report file (default: print only)")
    parser.add_argument(
        "--kg-experiments",
        default="fb15k237_mure,fb15k237_cat",
        help="KG experiments (configs/experiment/kg/), comma-separated ('' for none; default %(default)s)",
    )
    parser.add_argument("--kg-batch", type=int, default=1024, help="KG global batch (default %(default)s)")
    parser.add_argument(
        "--kg-epochs", type=int, default=4, help="KG epochs, the first untimed (default %(default)s)"
    )
    parser.add_argument(
        "--kg-data-root",
        default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "kg"),
        help="folder of <WN18RR|FB15k-237>/{train,valid,test}.txt (default %(default)s)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="tiny policy, KG slice and sizes on the CPU (gloo)"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.batch_sizes, args.n, args.warmup_steps, args.steps = "4", 8, 1, 2
        args.val_n, args.val_count, args.device = 20, 2, "cpu"
        args.kg_experiments, args.kg_batch, args.kg_epochs = "fb15k237_mure", 64, 2
    batches = [int(b) for b in args.batch_sizes.split(",") if b]
    experiments = [e for e in args.kg_experiments.split(",") if e]
    if args.nproc < 2:
        parser.error(f"--nproc={args.nproc}: compare at least 2 processes with 1")
    if args.warmup_steps < 1 or args.steps < 1 or args.steps % args.warmup_steps:
        parser.error(
            f"--steps={args.steps} must be a positive multiple of --warmup-steps={args.warmup_steps}"
        )
    if uneven := [b for b in batches if b % args.nproc]:
        parser.error(f"--batch-sizes {uneven} are not divisible by --nproc={args.nproc}")
    if args.kg_epochs < 2 or args.kg_batch < 1:
        parser.error(
            f"--kg-epochs must be >= 2 (one untimed) and --kg-batch >= 1, got {args.kg_epochs}, {args.kg_batch}"
        )
    if not batches and not experiments:
        parser.error("nothing to measure: --batch-sizes and --kg-experiments are both empty")

    sections: list[str] = []
    with tempfile.TemporaryDirectory(prefix="ddp_throughput_") as tmp:
        work = args.work_dir or Path(tmp)
        if batches:
            table = _table(args, [_measure(args, b, p, work) for b in batches for p in (1, args.nproc)])
            sections.append(
                f"TSP policy (POMO, experiment=tsp/pomo_tsp100, n={args.n}); {args.warmup_steps} warm-up steps, "
                f"then {args.steps} timed steps.\n\n{table}"
            )
            print(table, flush=True)
        if experiments:
            measured = [_kg_measure(args, e, p, work) for e in experiments for p in (1, args.nproc)]
            table = _kg_table(measured, args.kg_batch, args.nproc)
            sections.append(
                f"KG (PyKEEN's pipeline, geoattn's fastlcwa loop); {args.kg_epochs} epochs, the first untimed; "
                f"test MRR after the {args.kg_epochs} epochs.\n\n{table}"
            )
            print(table, flush=True)
    if args.out is not None:
        config: dict[str, Any] = {
            key: value for key, value in vars(args).items() if key not in ("out", "work_dir")
        }
        body = "Trained under torchrun, NCCL_NVLS_ENABLE=0.\n\n" + "\n\n".join(sections)
        write_report(
            args.out, "DDP training throughput, 1 vs N processes", body, seed=args.seed, config=config
        )


if __name__ == "__main__":
    main()
