"""Node classification with Curvature-Adaptive graph attention (CAT) next to GATConv, on a real graph.

Trains a two-layer :class:`~geoattn.train.tasks.NodeClassifier` with ``CurvatureAdaptiveConv`` layers
(Euclidean, hyperbolic and spherical attention over each node's neighbours, mixed by a per-node router)
and the same classifier with PyG's ``GATConv``, full batch with early stopping on validation accuracy,
then prints validation and test accuracy, macro-F1, the learned curvatures and where CAT's router sends the
nodes. The data is read offline from a data root laid out as ``shared/data/graphs`` (see
``geoattn.datasets``): ``--data-root``, else ``$GEOATTN_DATA``, else ``data/graphs``::

    python examples/node_classification.py --data-root ../shared/data/graphs                  # Cora
    python examples/node_classification.py --dataset disease --models cat,hyperbolic,gat
    python examples/node_classification.py --smoke       # 2 epochs on Cora at tiny sizes (run by the tests)

For the side-by-side numbers over seeds with a hyper-parameter search see
``benchmarks/node_classification.py``.
"""

from __future__ import annotations

import argparse

import torch

from geoattn.datasets import NODE_DATASETS, default_data_root
from geoattn.nn import BRANCHES
from geoattn.train.tasks import CONVS, NodeClassificationData, NodeClassifier, fit_full_batch


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="cora", choices=sorted(NODE_DATASETS))
    parser.add_argument(
        "--data-root", default=None, help="data root (default: $GEOATTN_DATA, else data/graphs)"
    )
    parser.add_argument("--models", default="cat,gat", help=f"comma-separated, from {','.join(CONVS)}")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=50)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="2 epochs on Cora with tiny layers")
    args = parser.parse_args()
    if args.smoke:
        args.dataset, args.epochs = "cora", 2
    args.models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(args.models) - set(CONVS))
    if unknown:
        parser.error(f"--models: unknown {unknown}; accepted are {list(CONVS)}")
    return args


def main() -> None:
    args = parse_args()
    root = args.data_root if args.data_root is not None else default_data_root()
    data = NodeClassificationData(args.dataset, root)
    device = torch.device(args.device)
    batch = {k: v.to(device) for k, v in data.batch.items()}
    split = {k: int(batch[f"{k}_mask"].sum()) for k in ("train", "val", "test")}
    print(
        f"{args.dataset}: {batch['x'].shape[0]} nodes, {batch['edge_index'].shape[1]} directed edges, "
        f"{data.num_features} features, {data.num_classes} classes; split {split}; device {device}"
    )
    size = {"hidden_channels": 4, "heads": 2} if args.smoke else {"hidden_channels": 16, "heads": 4}
    print(f"{'model':<11}{'epochs':>7}{'best':>6}{'val acc':>9}{'test acc':>10}{'test F1':>9}{'s':>7}")
    for name in args.models:
        torch.manual_seed(args.seed)
        model = NodeClassifier(data.num_features, data.num_classes, name, dropout=args.dropout, **size)
        result = fit_full_batch(
            model.to(device),
            batch,
            lr=args.lr,
            weight_decay=args.weight_decay,
            epochs=args.epochs,
            patience=args.patience,
            keep_routing=True,
        )
        print(
            f"{name:<11}{result.epochs:>7}{result.best_epoch:>6}{result.val['accuracy']:>9.3f}"
            f"{result.test['accuracy']:>10.3f}{result.test['macro_f1']:>9.3f}{result.seconds:>7.1f}"
            + ("  (diverged)" if result.diverged else "")
        )
        if result.curvatures:
            print("  curvature " + "  ".join(f"{k} {v:+.3f}" for k, v in result.curvatures.items()))
        if result.routing is not None:
            for layer, weights in enumerate(result.routing):
                mean = weights.mean(0)
                print(
                    f"  routing layer {layer} (mean over nodes) "
                    + "  ".join(f"{b} {w:.3f}" for b, w in zip(BRANCHES, mean.tolist(), strict=True))
                )


if __name__ == "__main__":
    main()
