"""Tasks shipped with geoattn: each a model (``nn.Module``) and a data source following
:mod:`geoattn.train.protocol`, configured under ``configs/model`` and ``configs/data``.

- :mod:`~geoattn.train.tasks.tree_embedding`: embed a tree in a κ-stereographic space with learnable curvature.
- :mod:`~geoattn.train.tasks.node_classification`: full-batch node classification with a graph-attention
  layer chosen by name (one geometry, CAT, or GAT).
- :mod:`~geoattn.train.tasks.kg`: knowledge-graph completion through PyKEEN's pipeline (the ``runner`` of the
  ``experiment=kg/...`` configs; imported by Hydra on use, not here, so PyKEEN loads only for KG jobs).
"""

from .node_classification import (
    CONVS,
    FitResult,
    NodeClassificationData,
    NodeClassifier,
    classification_metrics,
    f1_per_class,
    fit_full_batch,
)
from .tree_embedding import TreeDistances, TreeEmbedding, distortion, mean_average_precision

__all__ = [
    "CONVS",
    "FitResult",
    "NodeClassificationData",
    "NodeClassifier",
    "TreeDistances",
    "TreeEmbedding",
    "classification_metrics",
    "distortion",
    "f1_per_class",
    "fit_full_batch",
    "mean_average_precision",
]
