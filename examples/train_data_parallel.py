"""Train on several GPUs: ``geoattn-train`` under ``torchrun``, for the TSP policy and for a knowledge graph.

Starts ``torchrun --standalone --nproc-per-node=N -m geoattn.train <experiment> ...`` (NCCL on GPUs, gloo on the
CPU, ``NCCL_NVLS_ENABLE=0``), then reads what rank 0 wrote into the run folder: ``run.json`` (``world_size``, the
final metrics) and ``metrics.jsonl``. The global batch is the experiment's, split over the processes; a checkpoint
of an N-process run resumes with any number of processes (``--resume-with 1`` shows it)::

    python examples/train_data_parallel.py --task tsp --nproc 2 --minutes 10       # POMO on TSP100, 2 GPUs
    python examples/train_data_parallel.py --task kg --nproc 2                     # CAT on FB15k-237, 2 GPUs
    python examples/train_data_parallel.py --task kg --nproc 2 --resume-with 1     # ... then 1 more epoch on 1
    python examples/train_data_parallel.py --smoke                                 # both, tiny, 2 CPU processes

The same from a shell: ``NCCL_NVLS_ENABLE=0 torchrun --standalone --nproc-per-node=2 -m geoattn.train
experiment=kg/fb15k237_cat hydra.run.dir=runs/kg`` (README, "Training on several GPUs").
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from geoattn.train.distributed import torchrun_command, torchrun_environ

KG_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "kg"
TINY_TSP = [
    "model.embed_dim=16",
    "model.heads=2",
    "model.layers=1",
    "model.ff_dim=32",
    "model.val_num_starts=4",
    "data.stages=[{n: 8, batch_size: 4, steps: null}]",
    "data.val_sizes=[20]",
    "data.val_count=2",
    "trainer.max_steps=3",
    "trainer.val_every=3",
    "trainer.device=cpu",
]
TINY_KG = [
    "data.tiny=true",
    "model.embedding_dim=8",
    "model.interaction_kwargs.num_layers=1",
    "model.interaction_kwargs.num_heads=2",
    "runner.num_epochs=2",
    "runner.batch_size=64",
    "runner.device=cpu",
]


def job(task: str, args: argparse.Namespace) -> list[str]:
    """The ``geoattn-train`` overrides of one task (tiny ones with ``--smoke``)."""
    if task == "tsp":
        out = ["experiment=tsp/pomo_tsp100", "trainer.progress_bar=false"]
        return out + (TINY_TSP if args.smoke else [f"trainer.time_limit_s={60 * args.minutes}"])
    out = ["experiment=kg/fb15k237_cat", f"data.root={args.kg_data_root}"]
    return out + (TINY_KG if args.smoke else [])


def run(nproc: int, overrides: list[str], run_dir: Path) -> tuple[dict[str, object], list[dict[str, object]]]:
    """Train with ``nproc`` processes into ``run_dir``; rank 0's ``run.json`` and ``metrics.jsonl`` rows."""
    command = torchrun_command(nproc, ["-m", "geoattn.train", *overrides, f"hydra.run.dir={run_dir}"])
    print("$ torchrun " + " ".join(command[3:]), flush=True)
    done = subprocess.run(command, env=torchrun_environ(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"torchrun failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    info: dict[str, object] = json.loads((run_dir / "run.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return info, rows


def one_more(task: str, rows: list[dict[str, object]]) -> str:
    """The override that trains one step (TSP) or epoch (KG) past the end of a run."""
    last = rows[-1]["step" if task == "tsp" else "epoch"]
    assert isinstance(last, int)
    return f"trainer.max_steps={last + 1}" if task == "tsp" else f"runner.num_epochs={last + 1}"


def report(task: str, info: dict[str, object], rows: list[dict[str, object]]) -> None:
    processes = info.get("world_size", 1)
    if task == "tsp":
        val = next(r for r in reversed(rows) if r["split"] == "val")
        gaps = {k: v for k, v in val.items() if "gap" in k}
        print(f"  tsp: {rows[-1]['step']} steps on {processes} process(es), validation {gaps}")
    else:
        test = info["test"]
        assert isinstance(test, dict)
        print(
            f"  kg: {info['num_epochs']} epochs on {processes} process(es), last loss {rows[-1]['loss']:.4f}, "
            f"test MRR {test['mrr']:.4f}, H@10 {test['hits_at_10']:.4f}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", choices=["tsp", "kg", "both"], default="both")
    parser.add_argument("--nproc", type=int, default=2, help="processes: one per GPU (default 2)")
    parser.add_argument("--minutes", type=float, default=10.0, help="TSP training time limit")
    parser.add_argument(
        "--resume-with", type=int, default=None, help="then resume the run with this many processes"
    )
    parser.add_argument(
        "--kg-data-root", default=str(KG_DATA), help="folder of FB15k-237/{train,valid,test}.txt"
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/data_parallel"))
    parser.add_argument(
        "--smoke", action="store_true", help="tiny runs on 2 CPU processes (gloo), then resume on 1"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.nproc, args.resume_with = 2, 1
    if args.nproc < 1 or (args.resume_with is not None and args.resume_with < 1):
        parser.error(f"--nproc and --resume-with must be >= 1, got {args.nproc} and {args.resume_with}")

    for task in ("tsp", "kg") if args.task == "both" else (args.task,):
        run_dir = args.out / f"{task}_p{args.nproc}"
        info, rows = run(args.nproc, job(task, args), run_dir)
        report(task, info, rows)
        if args.resume_with is not None:  # continue the N-process checkpoint with another number of processes
            more = [*job(task, args), f"resume={run_dir}", one_more(task, rows)]
            resumed = args.out / f"{task}_p{args.nproc}_resumed_p{args.resume_with}"
            report(task, *run(args.resume_with, more, resumed))


if __name__ == "__main__":
    main()
