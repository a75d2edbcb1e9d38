"""Train the TSP attention policy, export it as package-style weights, reload it and decode with every strategy.

The training run is the packaged experiment (``geoattn-train experiment=tsp/imitation`` or
``tsp/pomo_curriculum``) driven from Python; a time limit ends it with a validated checkpoint. Then the
checkpoint is exported like the shipped weights (safetensors + sha256 manifest), loaded back with
``load_pretrained`` and compared on fresh random instances: greedy, POMO multi-start, and multi-start with the
x8 symmetry augmentation::

    python examples/train_tsp_policy.py --experiment imitation --minutes 30     # needs elkai (LKH-3 labels)
    python examples/train_tsp_policy.py --experiment pomo_curriculum --minutes 30
    python examples/train_tsp_policy.py --smoke     # a tiny policy for a few steps (run by the tests)

Runs land in ``--out/run`` (config.yaml, run.json, metrics.jsonl, checkpoints/), the weights in ``--out/weights``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module

from geoattn.solvers import decode_tours, export_pretrained, load_pretrained
from geoattn.tasks import uniform_points
from geoattn.train import train

SMOKE = [
    "model.embed_dim=16",
    "model.heads=2",
    "model.layers=1",
    "model.ff_dim=32",
    "data.stages=[{n: 8, batch_size: 4, steps: null}]",
    "data.label_count=8",
    "data.label_workers=1",
    "data.val_sizes=[20]",
    "data.val_count=4",
    "data.val_reference=concorde",
    "trainer.max_steps=4",
    "trainer.val_every=4",
    "trainer.device=cpu",
    "trainer.progress_bar=false",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--experiment", choices=["imitation", "pomo_curriculum", "pomo_tsp100"], default="imitation"
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="training time limit")
    parser.add_argument("--n", type=int, default=100, help="cities of the test instances")
    parser.add_argument("--instances", type=int, default=64, help="number of test instances")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/tsp_policy"))
    parser.add_argument("--smoke", action="store_true", help="a tiny policy for a few steps")
    args = parser.parse_args(argv)

    overrides = [f"experiment=tsp/{args.experiment}", f"seed={args.seed}"]
    overrides += SMOKE if args.smoke else [f"trainer.time_limit_s={60 * args.minutes}"]
    with initialize_config_module(config_module="geoattn.configs", version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    result = train(cfg, run_dir=args.out / "run")
    print(f"trained {result.step} steps: " + ", ".join(f"{k}={v:.3f}" for k, v in result.val_metrics.items()))

    assert result.last_checkpoint is not None
    weights = export_pretrained(result.last_checkpoint, "example", weights_dir=args.out / "weights")
    print(f"exported {weights} ({weights.stat().st_size / 1e6:.2f} MB)")
    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    policy = load_pretrained("example", device=device, weights_dir=args.out / "weights")

    n = 10 if args.smoke else args.n
    coords = uniform_points(4 if args.smoke else args.instances, n, seed=10_000 + args.seed).to(device)
    print(f"{'decoding':<20}{'mean length':>12}{'ms/instance':>13}   ({coords.shape[0]} instances, n={n})")
    for label, strategy, augment in [
        ("greedy", "greedy", False),
        ("multi-start", "multistart", False),
        ("multi-start + x8", "multistart", True),
    ]:
        start = time.perf_counter()
        lengths = decode_tours(policy, coords, strategy=strategy, augment=augment).lengths  # type: ignore[arg-type]
        ms = 1000 * (time.perf_counter() - start) / coords.shape[0]
        print(f"{label:<20}{float(lengths.mean()):>12.4f}{ms:>13.2f}")


if __name__ == "__main__":
    main()
