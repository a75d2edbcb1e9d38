"""Fast 1-N knowledge-graph training inside PyKEEN: ``pipeline(..., training_loop="fastlcwa")``.

``import geoattn.kg`` registers geoattn's training loop (and its hyperbolic models) with PyKEEN; the loop is
PyKEEN's LCWA (1-N, ``KvsAll``) objective with the labels kept on the model's device, so stoppers, checkpoints,
callbacks and result trackers are PyKEEN's own. This script trains a model on WN18RR or FB15k-237 (read offline
from ``<data-root>/<WN18RR|FB15k-237>/{train,valid,test}.txt``) with early stopping on validation MRR and prints
the loss per epoch, the seconds per epoch and the test metrics::

    python examples/kg_fast_training.py --data-root ../shared/data/kg --model RotH --epochs 100
    python examples/kg_fast_training.py --data-root ../shared/data/kg --dataset fb15k237 --model MuRE
    python examples/kg_fast_training.py --smoke      # a tiny WN18RR slice, 2 epochs on the CPU (run by the tests)

``benchmarks/kg/epoch_speed.py`` compares the loop with PyKEEN's ``training_loop="lcwa"`` side by side.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from pykeen.pipeline import pipeline

import geoattn.kg  # noqa: F401  (registers training_loop="fastlcwa" and the models MuRP, RotH, RefH, AttH)
from geoattn.kg import LOCAL_KG_DATASETS, local_kg_dataset

ROOT = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--dataset", default="wn18rr", choices=sorted(LOCAL_KG_DATASETS))
    parser.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data" / "kg")
    parser.add_argument("--model", default="RotH", help="any PyKEEN model name, e.g. RotH, MuRE, RotatE")
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="tiny WN18RR slice, d=8, 2 epochs, CPU")
    args = parser.parse_args()
    if args.smoke:
        args.dataset, args.dim, args.epochs, args.batch_size, args.device = "wn18rr", 8, 2, 64, "cpu"
    return args


def main() -> None:
    args = parse_args()
    dataset = local_kg_dataset(
        args.dataset, args.data_root, tiny=args.smoke, num_entities=300, create_inverse_triples=True
    )
    print(
        f"{args.dataset}: {dataset.training.num_entities} entities, {dataset.training.num_relations} relations "
        f"(with inverses), {dataset.training.num_triples} training triples"
    )
    start = time.perf_counter()
    result = pipeline(
        dataset=dataset,
        model=args.model,
        model_kwargs=dict(embedding_dim=args.dim),
        loss="crossentropy",
        training_loop="fastlcwa",
        optimizer="adam",
        optimizer_kwargs=dict(lr=args.lr),
        stopper="early",
        stopper_kwargs=dict(frequency=5 if not args.smoke else 1, patience=2, metric="mrr"),
        training_kwargs=dict(
            num_epochs=args.epochs,
            batch_size=args.batch_size,
            label_smoothing=args.label_smoothing,
            use_tqdm=False,
        ),
        evaluation_kwargs=dict(use_tqdm=False),
        random_seed=args.seed,
        device=args.device,
    )
    seconds = time.perf_counter() - start
    for epoch, loss in enumerate(result.losses, start=1):
        print(f"epoch {epoch:4d}  loss {loss:.4f}")
    epochs = len(result.losses)
    print(
        f"trained {epochs} epochs in {result.train_seconds:.1f} s ({result.train_seconds / epochs:.3f} s/epoch, "
        f"validation included); {seconds:.1f} s end to end"
    )
    metrics = result.metric_results
    print(
        f"test  MRR {metrics.get_metric('mrr'):.4f}  Hits@1 {metrics.get_metric('hits@1'):.4f}  "
        f"Hits@10 {metrics.get_metric('hits@10'):.4f}"
    )


if __name__ == "__main__":
    main()
