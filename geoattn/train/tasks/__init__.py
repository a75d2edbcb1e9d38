"""Tasks shipped with geoattn: each a model (``nn.Module``) and a data source following
:mod:`geoattn.train.protocol`, configured under ``configs/model`` and ``configs/data``.

- :mod:`~geoattn.train.tasks.tree_embedding`: embed a tree in a κ-stereographic space with learnable curvature.
"""

from .tree_embedding import TreeDistances, TreeEmbedding, distortion, mean_average_precision

__all__ = ["TreeDistances", "TreeEmbedding", "distortion", "mean_average_precision"]
