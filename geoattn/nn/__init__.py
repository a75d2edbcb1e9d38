"""Geometry-aware attention modules and PyTorch Geometric layers.

Dense modules (``[B, N, D]`` in, ``[B, N, D]`` out): :class:`ManifoldAttention` (one geometry, curvature
per head), :class:`CurvatureAdaptiveAttention` (CAT: Euclidean, hyperbolic and spherical branches mixed by
a per-token router), :class:`CATEncoderLayer` and :class:`CATEncoder` (pre-norm transformer encoder).
PyG layers (``x, edge_index``): :class:`ManifoldAttentionConv` and :class:`CurvatureAdaptiveConv`.
Building blocks: :class:`HeadGeometry` (per-head curvature, temperature and bias), :class:`GeometryRouter`
and the routing regularisers. Hierarchical self-attention over nested signals (exact dynamic programming
over a :class:`geoattn.hierarchy.Hierarchy`): :class:`HierarchicalSelfAttention`, its encoder and layer.
The attention model for the TSP (Kool et al. 2019, POMO decoding): :class:`TSPAttentionModel`.
Pointer networks: :class:`PointerNetwork` (LSTM encoder-decoder; greedy, sampling and beam-search decoding),
:class:`PointerAttention`, and the step masks :class:`PermutationMask`, :class:`CycleMask`, :class:`FreeMask`.
"""

import importlib
from typing import TYPE_CHECKING

from .attention_model import TSPAttentionModel
from .cat_encoder import CATEncoder
from .cat_encoder_layer import AttentionKind, CATEncoderLayer
from .curvature_adaptive_attention import BRANCHES, CurvatureAdaptiveAttention, ParameterReport
from .head_geometry import HeadGeometry
from .hierarchical_attention import (
    HierarchicalSelfAttention,
    HsaScore,
    SiblingPositionalBias,
    hierarchical_attention,
    hsa_dense_reference,
)
from .hierarchical_conv import HierarchicalAttentionConv
from .hierarchical_encoder import HierarchicalTransformerEncoder, HierarchicalTransformerEncoderLayer
from .manifold_attention import ManifoldAttention
from .pointer_attention import PointerAttention, masked_log_softmax
from .pointer_network import (
    CycleMask,
    Decoded,
    DecodingState,
    DecodingStrategy,
    FreeMask,
    PermutationMask,
    PointerNetwork,
    StepMask,
    sequence_log_likelihood,
)
from .router import GeometryRouter, Routing, routing_entropy, routing_load_balance, routing_regularizer

__all__ = [
    "BRANCHES",
    "AttentionKind",
    "CATEncoder",
    "CATEncoderLayer",
    "CurvatureAdaptiveAttention",
    "CurvatureAdaptiveConv",
    "CycleMask",
    "Decoded",
    "DecodingState",
    "DecodingStrategy",
    "FreeMask",
    "GeometryRouter",
    "HeadGeometry",
    "HierarchicalAttentionConv",
    "HierarchicalSelfAttention",
    "HierarchicalTransformerEncoder",
    "HierarchicalTransformerEncoderLayer",
    "HsaScore",
    "ManifoldAttention",
    "ManifoldAttentionConv",
    "ParameterReport",
    "PermutationMask",
    "PointerAttention",
    "PointerNetwork",
    "Routing",
    "SiblingPositionalBias",
    "StepMask",
    "TSPAttentionModel",
    "hierarchical_attention",
    "hsa_dense_reference",
    "masked_log_softmax",
    "routing_entropy",
    "routing_load_balance",
    "routing_regularizer",
    "sequence_log_likelihood",
]

# The PyG layers load on first use: importing torch_geometric takes ~2 s, which every user of geoattn.nn
# (e.g. `geoattn solve-tsp`, whose default run must stay under 3 s) would otherwise pay.
if TYPE_CHECKING:
    from .curvature_adaptive_conv import CurvatureAdaptiveConv
    from .manifold_attention_conv import ManifoldAttentionConv

_LAZY = {
    "CurvatureAdaptiveConv": "curvature_adaptive_conv",
    "ManifoldAttentionConv": "manifold_attention_conv",
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value
