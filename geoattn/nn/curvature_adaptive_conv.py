r"""Curvature-Adaptive graph attention: Euclidean, hyperbolic and spherical neighbour attention, routed per node."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch_geometric.typing import Adj, PairTensor

from geoattn.kernels.manifold_attention import Aggregation, Score

from ._conv_base import ManifoldConvBase
from .curvature_adaptive_attention import BRANCHES, _branch_curvatures
from .router import GeometryRouter, Routing

__all__ = ["CurvatureAdaptiveConv"]


class CurvatureAdaptiveConv(ManifoldConvBase):
    r"""CAT routing per node over three graph-attention branches of different curvature.

    Lin, Ojha, Bai 2025, "CAT: Curvature-Adaptive Transformers for Geometry-Aware Learning"
    (arXiv:2510.01634) route every token across Euclidean, hyperbolic and spherical attention; here the
    tokens are target nodes and each branch attends over the node's neighbours as
    :class:`ManifoldAttentionConv` does (distance scores, gyro-midpoint aggregation; Gulcehre et al. 2019,
    arXiv:1805.09786; per-head learnable curvature, Cho et al. 2023, arXiv:2309.04082):

    .. math::
        \rho_i = \operatorname{softmax}\bigl(\operatorname{MLP}(x_i)/T\bigr) \in \Delta^2,\qquad
        x'_i = \big\Vert_{h=1}^{H} \sum_{b \in \{E, H, S\}} \rho_{i,b}\,
        \log_0^{\kappa_{b,h}}\bigl(m^{(b)}_{i,h}\bigr) + W_{\text{skip}}\, x_i,

    where :math:`m^{(b)}_{i,h}` is branch ``b``'s (head ``h``'s) weighted gyro-midpoint of the neighbours'
    values with :math:`\alpha^{(b)}_{ij} = \operatorname{softmax}_{j \in \mathcal{N}(i)}(-\beta_{b,h}
    d_{\kappa_{b,h}}(q_i, k_j)^2 - \gamma_{b,h})`, :math:`\kappa_E = 0` (fixed), :math:`\kappa_{H,h} < 0` and
    :math:`\kappa_{S,h} > 0` (learnable, sign-constrained). The branches share the query/key/value
    projections (default) or have their own; all run in one message-passing call over :math:`3H` heads.
    The defaults are compared with the alternatives in ``benchmarks/node_classification.py --cat-variants``
    (results in benchmarks/RESULTS.md).

    Args:
        in_channels (int or tuple): size of each input sample, or ``(source, target)`` sizes (positive).
        out_channels (int): size :math:`C` of each head's output.
        heads (int): heads per branch :math:`H`. (default: ``1``)
        concat (bool): concatenate the heads; otherwise average them. (default: ``True``)
        shared_projections (bool): one set of query/key/value projections for all branches.
            (default: ``True``)
        learnable_curvature (bool): learn the hyperbolic and spherical curvature per head.
            (default: ``True``)
        hyperbolic_curvature (float): (initial) hyperbolic curvature, ``< 0``. (default: ``-1.0``)
        spherical_curvature (float): (initial) spherical curvature, ``> 0``. (default: ``1.0``)
        score (str): ``"distance"`` or ``"tangent_dot"``, every branch. (default: ``"distance"``)
        aggregation (str): ``"midpoint"`` or ``"tangent"``, every branch. (default: ``"midpoint"``)
        router_hidden (int, optional): router MLP width; ``None``: ``max(1, F_t // 4)``. (default: ``None``)
        router_temperature (float): router softmax temperature. (default: ``1.0``)
        routing (str): ``"soft"`` or ``"top1"`` (straight-through one-hot). (default: ``"soft"``)
        beta_init (float, optional): initial temperature, see :class:`ManifoldAttentionConv`.
            (default: ``None``)
        dropout (float): dropout on the attention coefficients while training. (default: ``0.0``)
        add_self_loops (bool): add self-loops (see :class:`ManifoldAttentionConv`). (default: ``True``)
        root_weight (bool): add :math:`W_{\text{skip}} x_i`. (default: ``True``)
        bias (bool): biases in the linear maps. (default: ``True``)
        **kwargs (optional): additional arguments of :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** as :class:`ManifoldAttentionConv`.
        - **output:** node features :math:`(|\mathcal{V}_t|, H \cdot C)` (or :math:`C`); with
          ``return_attention_weights=True`` also ``(edge_index, alpha)`` with ``alpha``
          :math:`(|\mathcal{E}'|, 3, H)`; with ``return_routing=True`` (last) the routing weights
          :math:`(|\mathcal{V}_t|, 3)` in the order Euclidean, hyperbolic, spherical.
    """

    def __init__(
        self,
        in_channels: int | tuple[int, int],
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        *,
        shared_projections: bool = True,
        learnable_curvature: bool = True,
        hyperbolic_curvature: float = -1.0,
        spherical_curvature: float = 1.0,
        score: Score = "distance",
        aggregation: Aggregation = "midpoint",
        router_hidden: int | None = None,
        router_temperature: float = 1.0,
        routing: Routing = "soft",
        beta_init: float | None = None,
        dropout: float = 0.0,
        add_self_loops: bool = True,
        root_weight: bool = True,
        bias: bool = True,
        **kwargs: Any,
    ) -> None:
        name = type(self).__name__
        curvatures = _branch_curvatures(
            heads, learnable_curvature, hyperbolic_curvature, spherical_curvature, name
        )
        super().__init__(
            in_channels,
            out_channels,
            heads,
            concat,
            curvatures,
            projection_groups=1 if shared_projections else len(BRANCHES),
            score=score,
            aggregation=aggregation,
            beta_init=beta_init,
            dropout=dropout,
            add_self_loops=add_self_loops,
            root_weight=root_weight,
            bias=bias,
            **kwargs,
        )
        self.shared_projections = shared_projections
        in_dst = in_channels if isinstance(in_channels, int) else in_channels[1]
        self.router = GeometryRouter(
            in_dst, len(BRANCHES), router_hidden, temperature=router_temperature, routing=routing
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.router.reset_parameters()

    def forward(
        self,
        x: Tensor | PairTensor,
        edge_index: Adj,
        return_attention_weights: bool | None = None,
        return_routing: bool = False,
    ) -> Tensor | tuple[Any, ...]:
        r"""Runs the layer.

        Args:
            x (torch.Tensor or (torch.Tensor, torch.Tensor)): node features, or ``(x_src, x_dst)``.
            edge_index (torch.Tensor or SparseTensor): edge indices or a sparse adjacency ``adj_t``.
            return_attention_weights (bool, optional): also return ``(edge_index, alpha [E', 3, H])``.
                (default: ``None``)
            return_routing (bool): also return the routing weights ``[N_dst, 3]`` (last).
                (default: ``False``)
        """
        out, alpha, edge_index, x_dst = self._attend(x, edge_index)  # out: [N, 3H, C]
        rho = self.router(x_dst)  # [N, 3]
        mixed = (out.unflatten(1, (len(BRANCHES), self.heads)) * rho[:, :, None, None]).sum(1)  # [N, H, C]
        y = self._combine_heads(mixed, x_dst)
        extras: list[Any] = []
        if return_attention_weights:
            extras.append(
                self._attention_weights(edge_index, alpha.unflatten(1, (len(BRANCHES), self.heads)))
            )
        if return_routing:
            extras.append(rho)
        return (y, *extras) if extras else y

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.in_channels}, {self.out_channels}, heads={self.heads}, "
            f"shared_projections={self.shared_projections})"
        )
