r"""Machinery shared by geoattn's PyG attention layers: projections, per-edge scores, manifold aggregation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.typing import Adj, PairTensor, SparseTensor, torch_sparse
from torch_geometric.utils import add_self_loops, is_torch_sparse_tensor, remove_self_loops, softmax
from torch_geometric.utils.sparse import set_sparse_value

from geoattn.kernels.manifold_attention import Aggregation, Score
from geoattn.manifolds import (
    CurvatureModule,
    expmap0,
    logmap0,
    midpoint_from_sums,
    midpoint_summands,
    sqdist,
)

from ._checks import check_dropout
from .head_geometry import HeadGeometry

__all__ = ["ManifoldConvBase"]


class ManifoldConvBase(MessagePassing):  # type: ignore[misc]  # torch_geometric ships no type information
    r"""Base of :class:`~geoattn.nn.ManifoldAttentionConv` and :class:`~geoattn.nn.CurvatureAdaptiveConv`.

    Holds the query/key/value projections (``projection_groups`` copies, one per branch, or one shared),
    the :class:`HeadGeometry` of ``G x H`` heads, the optional root weight, and the message passing:
    per-edge scores in :meth:`message`, normalised by :func:`torch_geometric.utils.softmax` over each target
    node's incoming edges, and an ``"add"`` aggregation of the per-edge gyro-midpoint terms
    :math:`a_{ij}(\lambda_j v_j,\ \lambda_j - 1)` finished by :func:`geoattn.manifolds.midpoint_from_sums`
    (or of the tangent terms :math:`a_{ij}\log_0 v_j`, finished by :math:`\exp_0`).
    """

    _alpha: Tensor | None

    def __init__(
        self,
        in_channels: int | tuple[int, int],
        out_channels: int,
        heads: int,
        concat: bool,
        curvatures: Sequence[CurvatureModule],
        *,
        projection_groups: int,
        score: Score,
        aggregation: Aggregation,
        beta_init: float | None,
        dropout: float,
        add_self_loops: bool,
        root_weight: bool,
        bias: bool,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("aggr", "add")
        super().__init__(node_dim=0, **kwargs)
        name = type(self).__name__
        pair = (in_channels, in_channels) if isinstance(in_channels, int) else tuple(in_channels)
        if len(pair) != 2 or any(not isinstance(c, int) or c < 1 for c in pair):
            raise ValueError(
                f"{name}: in_channels must be a positive int or a pair of them (lazy -1 is not supported), "
                f"got {in_channels!r}"
            )
        if out_channels < 1 or heads < 1:
            raise ValueError(f"{name}: out_channels and heads must be >= 1, got {out_channels} and {heads}")
        check_dropout(name, dropout)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.heads = heads
        self.concat = concat
        self.dropout = float(dropout)
        self.add_self_loops = add_self_loops
        self.root_weight = root_weight
        self.projection_groups = projection_groups
        self._alpha = None
        width = projection_groups * heads * out_channels
        self.lin_query = Linear(pair[1], width, bias=bias)
        self.lin_key = Linear(pair[0], width, bias=bias)
        self.lin_value = Linear(pair[0], width, bias=bias)
        self.lin_skip: Linear | None = (
            Linear(pair[1], heads * out_channels if concat else out_channels, bias=bias)
            if root_weight
            else None
        )
        self.geometry = HeadGeometry(
            heads, out_channels, curvatures, score=score, aggregation=aggregation, beta_init=beta_init
        )

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for lin in (self.lin_query, self.lin_key, self.lin_value, self.lin_skip):
            if lin is not None:
                lin.reset_parameters()
        self.geometry.reset_parameters()

    # ---- helpers for forward --------------------------------------------------------------------------

    def _heads(self, t: Tensor) -> Tensor:
        """``[n, P * H * C]`` -> ``[n, G * H, C]`` (group-major; one shared projection is repeated)."""
        heads = t.unflatten(-1, (-1, self.out_channels))
        groups = self.geometry.num_groups
        return heads.repeat(1, groups, 1) if self.projection_groups == 1 and groups > 1 else heads

    def _check_edge_index(self, edge_index: Adj, num_src: int, num_dst: int) -> None:
        """A clear ``ValueError`` for an ``edge_index`` outside the node range (skipped under ``torch.compile``,
        where it would need a device sync and a graph break)."""
        if (
            not isinstance(edge_index, Tensor)
            or is_torch_sparse_tensor(edge_index)
            or torch.compiler.is_compiling()
            or edge_index.numel() == 0
        ):
            return
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(
                f"{type(self).__name__}: edge_index must have shape [2, num_edges], got {tuple(edge_index.shape)}"
            )
        low, high_src, high_dst = torch.stack(
            [edge_index.min(), edge_index[0].max(), edge_index[1].max()]
        ).tolist()
        if low < 0 or high_src >= num_src or high_dst >= num_dst:
            raise ValueError(
                f"{type(self).__name__}: edge_index must hold source indices in [0, {num_src}) and target "
                f"indices in [0, {num_dst}); got minimum {low}, largest source {high_src}, largest target "
                f"{high_dst}"
            )

    def _with_self_loops(self, edge_index: Adj, num_src: int, num_dst: int) -> Adj:
        if not self.add_self_loops:
            return edge_index
        if isinstance(edge_index, SparseTensor):
            return torch_sparse.set_diag(edge_index)
        # Self-loops only for nodes that exist on both sides (as GATConv does for bipartite inputs).
        edge_index, _ = remove_self_loops(edge_index)
        edge_index, _ = add_self_loops(edge_index, num_nodes=min(num_src, num_dst))
        return edge_index

    def _attend(self, x: Tensor | PairTensor, edge_index: Adj) -> tuple[Tensor, Tensor, Adj, Tensor]:
        """Project, attend over incoming edges on each head's manifold, map back.

        Returns the tangent outputs ``[N_dst, G*H, C]``, the attention weights ``[E', G*H]`` (``E'``: edges
        after self-loops), the edge index they belong to, and ``x_dst``.
        """
        x_src, x_dst = (x, x) if isinstance(x, Tensor) else x
        num_src, num_dst = x_src.size(0), x_dst.size(0)
        self._check_edge_index(edge_index, num_src, num_dst)
        geometry = self.geometry
        kappa = geometry.curvature()  # [G*H]
        kv = kappa.view(-1, 1)  # broadcasts against [n, G*H, C]
        query = geometry.to_manifold(self._heads(self.lin_query(x_dst)), kv)
        key = geometry.to_manifold(self._heads(self.lin_key(x_src)), kv)
        points = geometry.to_manifold(self._heads(self.lin_value(x_src)), kv)
        if geometry.score == "tangent_dot":  # per node, so `message` only takes dot products
            query, key = logmap0(query, k=kv), logmap0(key, k=kv)
        if geometry.aggregation == "midpoint":  # per-node midpoint terms (lambda_j v_j, lambda_j - 1)
            value = torch.cat(midpoint_summands(points, k=kv), dim=-1)
        else:
            value = logmap0(points, k=kv)
        edge_index = self._with_self_loops(edge_index, num_src, num_dst)
        # propagate_type: (query: Tensor, key: Tensor, value: Tensor, curvature: Tensor, beta: Tensor,
        #                  gamma: Tensor)
        summed = self.propagate(
            edge_index,
            query=query,
            key=key,
            value=value,
            curvature=kappa,
            beta=geometry.beta(),
            gamma=geometry.gamma,
            size=(num_src, num_dst),
        )
        if geometry.aggregation == "midpoint":
            c = self.out_channels
            out = midpoint_from_sums(summed[..., :c], summed[..., c:], k=kv)
        else:
            out = expmap0(summed, k=kv)
        alpha = self._alpha
        self._alpha = None
        assert alpha is not None
        return logmap0(out, k=kv), alpha, edge_index, x_dst

    def message(
        self,
        query_i: Tensor,
        key_j: Tensor,
        value_j: Tensor,
        curvature: Tensor,
        beta: Tensor,
        gamma: Tensor,
        index: Tensor,
        ptr: Tensor | None,
        size_i: int | None,
    ) -> Tensor:
        r"""Per-edge score, softmax over each target's incoming edges, weighted aggregation terms.

        ``-beta_h d_k(q_i, k_j)^2 - gamma_h`` with :func:`geoattn.manifolds.sqdist` on the gathered pairs
        (per-head curvature), or ``beta_h <q_i, k_j> / sqrt(C) - gamma_h`` of tangent vectors.
        """
        if self.geometry.score == "distance":
            scores = -beta * sqdist(query_i, key_j, k=curvature.view(-1, 1)) - gamma  # [E, G*H]
        else:
            scores = beta * (query_i * key_j).sum(-1) / math.sqrt(self.out_channels) - gamma
        alpha = softmax(scores, index, ptr, size_i)
        self._alpha = alpha
        alpha = F.dropout(alpha, p=self.dropout, training=self.training)
        return value_j * alpha.unsqueeze(-1)

    def _combine_heads(self, out: Tensor, x_dst: Tensor) -> Tensor:
        """``[N, H, C]`` -> ``[N, H*C]`` (concat) or ``[N, C]`` (mean), plus the root weight."""
        y = out.flatten(1) if self.concat else out.mean(dim=1)
        if self.lin_skip is not None:
            y = y + self.lin_skip(x_dst)
        return y

    @staticmethod
    def _attention_weights(edge_index: Adj, alpha: Tensor) -> Any:
        """``(edge_index, alpha)`` (or the sparse adjacency with ``alpha`` as values), as GATConv returns."""
        if isinstance(edge_index, SparseTensor):
            return edge_index.set_value(alpha, layout="coo")
        if is_torch_sparse_tensor(edge_index):
            return set_sparse_value(edge_index, alpha), alpha
        return edge_index, alpha
