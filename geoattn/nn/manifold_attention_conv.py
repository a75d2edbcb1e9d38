r"""Graph attention over neighbours on the κ-stereographic manifold of one curvature per head."""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torch_geometric.typing import Adj, PairTensor

from geoattn.kernels.manifold_attention import Aggregation, Score
from geoattn.manifolds import CurvatureModule

from ._checks import head_curvature
from ._conv_base import ManifoldConvBase

__all__ = ["ManifoldAttentionConv"]


class ManifoldAttentionConv(ManifoldConvBase):
    r"""Graph attention on the κ-stereographic manifold: distance scores, gyro-midpoint aggregation.

    Hyperbolic attention (Gulcehre et al. 2019, "Hyperbolic Attention Networks", arXiv:1805.09786) over
    graph neighbourhoods, for any sign of curvature with one (optionally learnable) curvature per head (Cho
    et al. 2023, arXiv:2309.04082), in the style of :class:`torch_geometric.nn.conv.TransformerConv`:

    .. math::
        q_i = \operatorname{proj}\exp_0^{\kappa_h}(W_Q x_i),\quad
        k_j = \operatorname{proj}\exp_0^{\kappa_h}(W_K x_j),\quad
        v_j = \operatorname{proj}\exp_0^{\kappa_h}(W_V x_j),

        \alpha_{ij} = \operatorname{softmax}_{j \in \mathcal{N}(i)}
        \bigl(-\beta_h\, d_{\kappa_h}(q_i, k_j)^2 - \gamma_h\bigr),

        m_i = \tfrac12 \otimes_{\kappa_h}
        \frac{\sum_{j} \alpha_{ij}\,\lambda_{v_j} v_j}{\sum_{j} \alpha_{ij}\,(\lambda_{v_j} - 1)},\qquad
        x'_i = \big\Vert_{h=1}^{H} \log_0^{\kappa_h}(m_i) + W_{\text{skip}}\, x_i,

    with :math:`\lambda_v = 2/(1 + \kappa\|v\|^2)` and :math:`\beta_h = \operatorname{softplus}(\theta_h)`.
    The two sums are scatter sums over each target's incoming edges; a node without incoming edges gets the
    origin (0) plus its root weight. ``score="tangent_dot"`` scores
    :math:`\beta_h\langle\log_0 q_i, \log_0 k_j\rangle/\sqrt{C} - \gamma_h`; ``aggregation="tangent"``
    aggregates :math:`\exp_0(\sum_j \alpha_{ij}\log_0 v_j)`. The defaults are compared with the alternatives
    in ``benchmarks/node_classification.py --cat-variants`` (results in benchmarks/RESULTS.md). On a complete
    graph with self-loops the layer equals :func:`geoattn.kernels.manifold_attention.manifold_attention` on
    the projected nodes.

    Args:
        in_channels (int or tuple): size of each input sample, or a pair ``(source, target)`` for
            bipartite graphs (positive; lazy ``-1`` is not supported).
        out_channels (int): size :math:`C` of each head's output.
        heads (int): number of heads :math:`H`. (default: ``1``)
        concat (bool): concatenate the heads (``H * C`` outputs); otherwise average them. (default: ``True``)
        curvature (float or CurvatureModule): a float ``k`` of any sign, or a curvature module of shape
            ``()`` or ``(heads,)``. (default: ``0.0``)
        learnable_curvature (bool): learn one curvature per head starting at the float ``curvature``
            (:class:`~geoattn.manifolds.SignedCurvature`); must be ``False`` with a module.
            (default: ``False``)
        score (str): ``"distance"`` or ``"tangent_dot"``. (default: ``"distance"``)
        aggregation (str): ``"midpoint"`` or ``"tangent"``. (default: ``"midpoint"``)
        beta_init (float, optional): initial temperature; ``None``: :math:`1/\sqrt{C}` for ``"distance"``, 1
            for ``"tangent_dot"``. (default: ``None``)
        dropout (float): dropout on the normalised attention coefficients while training. (default: ``0.0``)
        add_self_loops (bool): add a self-loop to every node (existing ones are replaced; for bipartite
            inputs, nodes ``0..min(N_src, N_dst)-1``). (default: ``True``)
        root_weight (bool): add the transformed target features :math:`W_{\text{skip}} x_i`.
            (default: ``True``)
        bias (bool): biases in the linear maps. (default: ``True``)
        **kwargs (optional): additional arguments of :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})` or
          :math:`((|\mathcal{V}_s|, F_s), (|\mathcal{V}_t|, F_t))` if bipartite; edge indices
          :math:`(2, |\mathcal{E}|)` or a sparse adjacency (``SparseTensor`` or a transposed torch sparse
          matrix ``adj_t`` of shape :math:`(|\mathcal{V}_t|, |\mathcal{V}_s|)`).
        - **output:** node features :math:`(|\mathcal{V}_t|, H \cdot C)` (or :math:`C` without ``concat``);
          with ``return_attention_weights=True`` also ``(edge_index, alpha)`` with ``alpha``
          :math:`(|\mathcal{E}'|, H)` over the edges after self-loops (a sparse adjacency with ``alpha`` as
          values for sparse inputs).
    """

    def __init__(
        self,
        in_channels: int | tuple[int, int],
        out_channels: int,
        heads: int = 1,
        concat: bool = True,
        *,
        curvature: float | CurvatureModule = 0.0,
        learnable_curvature: bool = False,
        score: Score = "distance",
        aggregation: Aggregation = "midpoint",
        beta_init: float | None = None,
        dropout: float = 0.0,
        add_self_loops: bool = True,
        root_weight: bool = True,
        bias: bool = True,
        **kwargs: Any,
    ) -> None:
        module = head_curvature(type(self).__name__, curvature, learnable_curvature, heads)
        super().__init__(
            in_channels,
            out_channels,
            heads,
            concat,
            [module],
            projection_groups=1,
            score=score,
            aggregation=aggregation,
            beta_init=beta_init,
            dropout=dropout,
            add_self_loops=add_self_loops,
            root_weight=root_weight,
            bias=bias,
            **kwargs,
        )
        self.reset_parameters()

    def forward(
        self,
        x: Tensor | PairTensor,
        edge_index: Adj,
        return_attention_weights: bool | None = None,
    ) -> Tensor | tuple[Tensor, Any]:
        r"""Runs the layer.

        Args:
            x (torch.Tensor or (torch.Tensor, torch.Tensor)): node features, or ``(x_src, x_dst)``.
            edge_index (torch.Tensor or SparseTensor): edge indices ``[2, E]`` (source row, target row) or a
                sparse adjacency ``adj_t``. Indices outside the node range raise ``ValueError`` (checked
                eagerly, skipped under ``torch.compile``).
            return_attention_weights (bool, optional): also return ``(edge_index, alpha)``.
                (default: ``None``)
        """
        out, alpha, edge_index, x_dst = self._attend(x, edge_index)
        y = self._combine_heads(out, x_dst)
        if return_attention_weights:
            return y, self._attention_weights(edge_index, alpha)
        return y

    def __repr__(self) -> str:
        curvature = type(self.geometry.curvatures[0]).__name__
        return (
            f"{type(self).__name__}({self.in_channels}, {self.out_channels}, heads={self.heads}, "
            f"curvature={curvature})"
        )
