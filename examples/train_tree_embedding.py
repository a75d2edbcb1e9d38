"""Embed a tree in hyperbolic, Euclidean and learned-sign geometry with geoattn's training API; compare them.

Each geometry is the packaged experiment ``tree_embedding_<geometry>``, so this is the same as running
``geoattn-train experiment=tree_embedding_hyperbolic`` (and so on), driven from Python::

    python examples/train_tree_embedding.py                       # full runs, a few seconds each on a CPU
    python examples/train_tree_embedding.py --geometries hyperbolic euclidean --seed 1
    python examples/train_tree_embedding.py --smoke               # a few steps on a tiny tree (run by the tests)

Runs land in ``--out/<geometry>`` (config.yaml, run.json, metrics.jsonl, checkpoints/); the final model is
reloaded from its checkpoint with ``instantiate_from_checkpoint`` to show the round trip.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from hydra import compose, initialize_config_module

from geoattn.train import instantiate_from_checkpoint, train

GEOMETRIES = ("hyperbolic", "euclidean", "signed")
SMOKE = [
    "data.num_nodes=13",
    "trainer.max_steps=5",
    "trainer.val_every=5",
    "trainer.ckpt_every=5",
    "trainer.log_every=1",
    "trainer.device=cpu",
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--geometries", nargs="+", choices=GEOMETRIES, default=list(GEOMETRIES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/tree_embedding"))
    parser.add_argument("--smoke", action="store_true", help="a few steps on a 13-node tree")
    args = parser.parse_args(argv)

    print(f"{'geometry':<12}{'k':>9}{'distortion':>12}{'MAP':>8}  run folder")
    for geometry in args.geometries:
        overrides = [
            f"experiment=tree_embedding_{geometry}",
            f"seed={args.seed}",
            *(SMOKE if args.smoke else []),
        ]
        with initialize_config_module(config_module="geoattn.configs", version_base="1.3"):
            cfg = compose(config_name="train", overrides=overrides)
        result = train(cfg, run_dir=args.out / geometry)
        assert result.last_checkpoint is not None
        model = instantiate_from_checkpoint(result.last_checkpoint)
        k = float(model.curvature().detach())
        assert torch.isclose(torch.tensor(k), torch.tensor(result.val_metrics["k"]))
        m = result.val_metrics
        print(f"{geometry:<12}{k:>9.3f}{m['distortion']:>12.4f}{m['map']:>8.3f}  {result.run_dir}")


if __name__ == "__main__":
    main()
