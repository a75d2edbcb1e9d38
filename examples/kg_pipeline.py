"""Knowledge-graph completion with geoattn's models inside PyKEEN's own pipeline.

``import geoattn.kg`` registers CAT, RotH, AttH, MuRP and RefH with PyKEEN, so ``pipeline(model="CAT", ...)``
finds them by name; everything else (training loop, loss, early stopping, filtered evaluation) is PyKEEN's.
This script trains CAT (1-N with inverse triples, cross-entropy with label smoothing) and RotH with entities
stored on the Poincaré ball and trained by geoopt's RiemannianAdam, then prints filtered MRR and Hits@10::

    python examples/kg_pipeline.py --data-root ../shared/data/kg                # WN18RR from local files
    python examples/kg_pipeline.py --dataset FB15k-237 --epochs 20 --device cuda
    python examples/kg_pipeline.py                                               # PyKEEN downloads WN18RR
    python examples/kg_pipeline.py --smoke --data-root ../shared/data/kg        # tiny slice (the tests)

``--data-root`` points at a folder holding ``<WN18RR|FB15k-237>/{train,valid,test}.txt``; without it PyKEEN's
dataset class downloads the data. For the recipes behind the results table use ``geoattn-train
experiment=kg/wn18rr_cat`` and ``benchmarks/kg/results_table.py``.
"""

from __future__ import annotations

import argparse
from typing import Any

from pykeen.datasets import get_dataset
from pykeen.pipeline import pipeline

import geoattn.kg


def _dataset(args: argparse.Namespace) -> Any:
    if args.data_root is None:
        if args.smoke:
            raise SystemExit("--smoke needs --data-root (a tiny slice of local files)")
        return get_dataset(dataset=args.dataset, dataset_kwargs=dict(create_inverse_triples=True))
    return geoattn.kg.local_kg_dataset(
        args.dataset, args.data_root, tiny=args.smoke, create_inverse_triples=True, seed=args.seed
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="WN18RR", help="WN18RR or FB15k-237 (default %(default)s)")
    parser.add_argument("--data-root", default=None, help="folder of local files (default: PyKEEN download)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--dim", type=int, default=32, help="embedding dimension (default %(default)s)")
    parser.add_argument("--device", default=None, help="cpu | cuda (default: PyKEEN's choice)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="a tiny FB15k-237 slice, 2 epochs, tiny models")
    args = parser.parse_args()
    if args.smoke:
        args.dataset, args.epochs, args.dim, args.device = "FB15k-237", 2, 8, "cpu"
    dataset = _dataset(args)
    common: dict[str, Any] = dict(
        dataset=dataset,
        training_loop="lcwa",
        loss="crossentropy",
        training_kwargs=dict(
            num_epochs=args.epochs, batch_size=128 if args.smoke else 1024, label_smoothing=0.1
        ),
        random_seed=args.seed,
        device=args.device,
    )
    layers = dict(num_layers=1, num_heads=2) if args.smoke else dict(num_layers=2, num_heads=4)
    runs = {
        "CAT": dict(model="CAT", model_kwargs=dict(embedding_dim=args.dim, interaction_kwargs=layers)),
        "RotH (on the ball, RiemannianAdam)": dict(
            model="RotH",
            model_kwargs=dict(embedding_dim=args.dim, entity_storage="manifold"),
            optimizer="RiemannianAdam",
            optimizer_kwargs=dict(lr=0.01),
        ),
    }
    print(
        f"{args.dataset}: {dataset.training.num_entities} entities, {dataset.training.num_triples} training triples"
    )
    for name, kwargs in runs.items():
        result = pipeline(**common, **kwargs)
        mrr = result.metric_results.get_metric("both.realistic.inverse_harmonic_mean_rank")
        hits = result.metric_results.get_metric("both.realistic.hits_at_10")
        print(
            f"{name:36s} loss {result.losses[0]:.3f} -> {result.losses[-1]:.3f}  "
            f"filtered MRR {mrr:.4f}  Hits@10 {hits:.4f}  ({result.train_seconds:.1f} s)"
        )


if __name__ == "__main__":
    main()
