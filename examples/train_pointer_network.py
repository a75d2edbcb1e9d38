"""Train a pointer network on convex hulls, Delaunay triangulations or TSP, then score it greedy and with beams.

The training run is the packaged experiment (``geoattn-train experiment=pointer/<name>``) driven from Python;
a time limit ends it with a validated checkpoint (``--checkpoint`` skips training and scores a given one,
``--pretrained`` a network shipped with geoattn, loaded by name and sha256-checked).
The trained model is rebuilt from its checkpoint (``instantiate_from_checkpoint``) and scored on the
experiment's fixed validation sets with greedy decoding and beam search, by the paper's metrics::

    python examples/train_pointer_network.py --experiment convex_hull_50 --minutes 8 --cache-dir runs/labels
    python examples/train_pointer_network.py --experiment tsp_20 --checkpoint runs/ptr_tsp --beams 1 4 16
    python examples/train_pointer_network.py --experiment delaunay_5 --pretrained delaunay_5   # a shipped one
    python examples/train_pointer_network.py --experiment tsp_20 --pretrained tsp_20 --beams 1 4  # (and convex_hull_50)
    python examples/train_pointer_network.py --smoke     # a tiny network for a few steps (run by the tests)

Runs land in ``--out`` (config.yaml, run.json, metrics.jsonl, checkpoints/). Prints one row per validation
size and decoding, one column per metric (fractions; the TSP gap in percent).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from geoattn.solvers.pointer_pretrained import load_pointer_model
from geoattn.train import resolve_config, train
from geoattn.train.checkpoint import instantiate_from_checkpoint
from geoattn.train.tasks.pointer import PointerInstances, PointerTask

EXPERIMENTS = ("convex_hull_50", "convex_hull_5_50", "delaunay_5", "tsp_20")
# A tiny network and labelled pools of 16 instances per size n = 5..7, on CPU.
SMOKE = [
    "trainer.device=cpu",
    "trainer.progress_bar=false",
    "trainer.max_steps=4",
    "trainer.val_every=4",
    "model.hidden_dim=16",
    "data.n_min=5",
    "data.n_max=7",
    "data.batch_size=8",
    "data.train_count=16",
    "data.val_sizes=[6,8]",
    "data.val_count=8",
    "data.label_workers=1",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--experiment", choices=EXPERIMENTS, default=EXPERIMENTS[0], help="pointer/<name>")
    parser.add_argument("--minutes", type=float, default=8.0, help="training time limit")
    parser.add_argument("--checkpoint", type=Path, help="score this checkpoint (file or run folder) only")
    parser.add_argument("--pretrained", help="score this shipped network only (available_pointer_models())")
    parser.add_argument("--cache-dir", type=Path, help="label cache folder (data.cache_dir)")
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 4], help="beam widths (1: greedy)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/pointer_network"))
    parser.add_argument("--smoke", action="store_true", help="a tiny network for a few steps")
    args = parser.parse_args(argv)
    if any(width < 1 for width in args.beams):
        parser.error(f"--beams must be >= 1, got {args.beams}")

    overrides = [f"experiment=pointer/{args.experiment}", f"seed={args.seed}"]
    if args.cache_dir is not None:
        overrides.append(f"data.cache_dir={args.cache_dir}")
    if args.smoke:  # a shipped network is scored at its experiment's sizes, on a few instances
        overrides += ["data.val_count=8", "data.label_workers=1"] if args.pretrained else SMOKE
    else:
        overrides.append(f"trainer.time_limit_s={60 * args.minutes}")
    with initialize_config_module(config_module="geoattn.configs", version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    if args.pretrained is not None:
        model = load_pointer_model(args.pretrained, map_location=device)
        if model.problem != cfg.model.problem:
            parser.error(
                f"--pretrained {args.pretrained} solves {model.problem}, not pointer/{args.experiment}"
            )
    else:
        checkpoint = args.checkpoint
        if checkpoint is None:
            result = train(cfg, run_dir=args.out)
            print(f"trained {result.step} steps")
            checkpoint = result.last_checkpoint
        assert checkpoint is not None
        model = instantiate_from_checkpoint(checkpoint, map_location=device).eval()
        assert isinstance(model, PointerTask)
    data: PointerInstances = instantiate(resolve_config(cfg)["data"])

    rows: list[tuple[str, dict[str, float]]] = []
    with torch.no_grad():
        for batch in data.val_batches():
            n = batch["points"].shape[1]
            on_device: dict[str, Any] = {key: value.to(device) for key, value in batch.items()}
            for width in args.beams:
                model.beam_width = width
                name = "greedy" if width == 1 else f"beam {width}"
                metrics = model.validation_metrics(on_device)
                rows.append((f"n={n} {name}", {k.removesuffix(f"_n{n}"): v for k, v in metrics.items()}))
    columns = sorted({key for _, metrics in rows for key in metrics})
    print(f"{'decoding':<16}" + "".join(f"{c:>18}" for c in columns))
    for label, metrics in rows:
        print(f"{label:<16}" + "".join(f"{metrics.get(c, float('nan')):>18.4f}" for c in columns))


if __name__ == "__main__":
    main()
