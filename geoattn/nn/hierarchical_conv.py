r"""A PyG-style hierarchical self-attention layer: flat node features plus a hierarchy over them."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from geoattn.hierarchy import Hierarchy

from .hierarchical_attention import HsaScore, SiblingPositionalBias, hierarchical_attention

__all__ = ["HierarchicalAttentionConv"]


class HierarchicalAttentionConv(nn.Module):
    r"""Hierarchical self-attention (`Amizadeh et al., NeurIPS 2025 <https://arxiv.org/abs/2509.15448>`_) for
    PyG-style inputs: flat node features of a mini-batch and a hierarchy over them.

    .. math::
        \mathbf{x}'_i = \mathbin\Vert_{h=1}^{H} \sum_j \theta^{(h)}_{ij}\, \mathbf{W}^{(h)}_V \mathbf{x}_j
        \;+\; \mathbf{W}_r \mathbf{x}_i + \mathbf{b},

    where :math:`\Theta^{(h)}` is the hierarchical self-attention matrix of head :math:`h` for queries
    :math:`\mathbf{W}^{(h)}_Q \mathbf{x}_i` and keys :math:`\mathbf{W}^{(h)}_K \mathbf{x}_j` (the KL-closest
    matrix to softmax attention that is constant between sibling sub-trees; see
    :mod:`geoattn.nn.hierarchical_attention`). Heads are concatenated (``concat=True``) or averaged.

    A thin wrapper over :func:`~geoattn.nn.hierarchical_attention.hierarchical_attention`, not a
    ``MessagePassing`` layer: attention runs over the tree, not over graph edges. The hierarchy of a PyG
    mini-batch is given as a :class:`~geoattn.hierarchy.Hierarchy` (build it once per batch, e.g. with
    :meth:`Hierarchy.batch <geoattn.hierarchy.Hierarchy.batch>`) or as per-level parent indices
    ``[parent_0, parent_1, ...]`` as PyG pooling produces them (``parent_0[i]`` is the level-1 cluster of
    node ``i``; see :meth:`Hierarchy.from_parent_indices <geoattn.hierarchy.Hierarchy.from_parent_indices>`),
    which are validated and laid out on every call.

    Args:
        in_channels (int): input feature size.
        out_channels (int): output size per head.
        heads (int): number of heads. (default: ``1``)
        concat (bool): concatenate the heads; otherwise average them. (default: ``True``)
        score (str): ``"dot"`` or ``"sqdist"``. (default: ``"dot"``)
        positional (bool): learnable sibling positional terms. (default: ``False``)
        max_offset (int): clipping radius of the positional terms. (default: ``8``)
        root_weight (bool): add the skip term :math:`\mathbf{W}_r \mathbf{x}_i`. (default: ``True``)
        bias (bool): learn the additive bias :math:`\mathbf{b}`. (default: ``True``)

    Shapes:
        - **input:** node features ``[T, F_in]``; a hierarchy over the ``T`` nodes.
        - **output:** ``[T, H * F_out]`` if ``concat`` else ``[T, F_out]``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        *,
        score: HsaScore = "dot",
        positional: bool = False,
        max_offset: int = 8,
        root_weight: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1 or heads < 1:
            raise ValueError(
                f"HierarchicalAttentionConv: in_channels, out_channels and heads must be >= 1, got "
                f"{in_channels}, {out_channels}, {heads}"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.heads = heads
        self.concat = concat
        self.score: HsaScore = score
        self.root_weight = root_weight
        width = heads * out_channels
        out_width = width if concat else out_channels
        self.lin_query = nn.Linear(in_channels, width, bias=False)
        self.lin_key = nn.Linear(in_channels, width, bias=False)
        self.lin_value = nn.Linear(in_channels, width, bias=False)
        self.lin_skip = nn.Linear(in_channels, out_width, bias=False) if root_weight else None
        self.positional = SiblingPositionalBias(heads, max_offset) if positional else None
        self.bias = nn.Parameter(torch.empty(out_width)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot weights, zero bias and zero positional terms."""
        for lin in (self.lin_query, self.lin_key, self.lin_value, self.lin_skip):
            if lin is not None:
                nn.init.xavier_uniform_(lin.weight)
        if self.positional is not None:
            self.positional.reset_parameters()
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, hierarchy: Hierarchy | Sequence[Tensor]) -> Tensor:
        """Attend over the hierarchy; see the class docstring for shapes."""
        if not isinstance(hierarchy, Hierarchy):
            hierarchy = Hierarchy.from_parent_indices(list(hierarchy))
        num, heads, channels = x.shape[0], self.heads, self.out_channels
        q = self.lin_query(x).view(num, heads, channels)
        k = self.lin_key(x).view(num, heads, channels)
        v = self.lin_value(x).view(num, heads, channels)
        out = hierarchical_attention(q, k, v, hierarchy, score=self.score, bias=self.positional)
        out = out.reshape(num, heads * channels) if self.concat else out.mean(dim=1)
        if self.lin_skip is not None:
            out = out + self.lin_skip(x)
        if self.bias is not None:
            out = out + self.bias
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.in_channels}, {self.out_channels}, heads={self.heads})"
