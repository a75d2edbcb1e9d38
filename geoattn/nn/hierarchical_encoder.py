r"""Pre-norm transformer encoder layers whose attention is hierarchical self-attention."""

from __future__ import annotations

import copy
from typing import Literal

import torch
from torch import Tensor, nn

from geoattn.hierarchy import Hierarchy

from ._checks import check_dropout
from ._pre_norm import ACTIVATIONS, PreNormFeedForward
from .hierarchical_attention import HierarchicalSelfAttention, HsaScore

__all__ = ["HierarchicalTransformerEncoder", "HierarchicalTransformerEncoderLayer"]


class HierarchicalTransformerEncoderLayer(PreNormFeedForward):
    r"""A pre-norm residual transformer layer over a nested signal.

    .. math::
        x' = x + \operatorname{Dropout}\bigl(\operatorname{HSA}(\operatorname{LN}_1(x); \mathcal T)\bigr),\qquad
        y = x' + \operatorname{Dropout}\bigl(W_2\, \sigma(W_1 \operatorname{LN}_2(x') + b_1) + b_2\bigr)

    with :math:`\operatorname{HSA}` the :class:`~geoattn.nn.hierarchical_attention.HierarchicalSelfAttention`
    over the hierarchy :math:`\mathcal T`. Padding tokens take no part in attention; their outputs carry no
    meaning.

    Args:
        d_model (int): model dimension :math:`D`.
        nhead (int): attention heads. (default: ``1``)
        dim_feedforward (int, optional): hidden width of the FFN; ``None``: ``4 * d_model``. (default: ``None``)
        dropout (float): dropout on both residual branches and inside the FFN. (default: ``0.0``)
        activation (str): ``"gelu"``, ``"relu"`` or ``"silu"``. (default: ``"gelu"``)
        layer_norm_eps (float): LayerNorm epsilon. (default: ``1e-5``)
        score (str): HSA score, ``"dot"`` or ``"sqdist"``. (default: ``"dot"``)
        positional (bool): learnable sibling positional terms. (default: ``False``)
        max_offset (int): clipping radius of the positional terms. (default: ``8``)
        bias (bool): biases in the linear layers. (default: ``True``)
        device, dtype: factory arguments for the parameters. (default: ``None``)

    Shapes:
        - **input:** ``x`` ``[B, N, D]`` or flat ``[T, D]``, and a hierarchy over its tokens (see
          :class:`~geoattn.nn.hierarchical_attention.HierarchicalSelfAttention`).
        - **output:** same shape as ``x``.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int = 1,
        dim_feedforward: int | None = None,
        dropout: float = 0.0,
        activation: Literal["gelu", "relu", "silu"] = "gelu",
        layer_norm_eps: float = 1e-5,
        *,
        score: HsaScore = "dot",
        positional: bool = False,
        max_offset: int = 8,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if activation not in ACTIVATIONS:
            raise ValueError(f"{name}: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        check_dropout(name, dropout)
        self.d_model = d_model
        self.nhead = nhead
        self.dim_feedforward = 4 * d_model if dim_feedforward is None else dim_feedforward
        self.activation = activation
        self.self_attn = HierarchicalSelfAttention(
            d_model,
            nhead,
            score=score,
            positional=positional,
            max_offset=max_offset,
            bias=bias,
            device=device,
            dtype=dtype,
        )
        self._build_feed_forward(
            d_model,
            self.dim_feedforward,
            layer_norm_eps=layer_norm_eps,
            bias=bias,
            device=device,
            dtype=dtype,
        )
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise every sub-module."""
        self.self_attn.reset_parameters()
        self._reset_feed_forward()

    def forward(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:
        """One layer; see the class docstring."""
        x = x + self.dropout(self.self_attn(self.norm1(x), hierarchy))
        return self._feed_forward_residual(x, ACTIVATIONS[self.activation], self.dropout, self.dropout)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, nhead={self.nhead}, dim_feedforward={self.dim_feedforward}"


class HierarchicalTransformerEncoder(nn.Module):
    r"""A stack of :class:`HierarchicalTransformerEncoderLayer`\ s (independent copies) and a final LayerNorm.

    Args:
        layer (HierarchicalTransformerEncoderLayer): the layer to copy.
        num_layers (int): number of copies.
        final_norm (bool): apply a LayerNorm after the last layer (pre-norm stacks need it). (default: ``True``)

    Shapes:
        - **input:** ``x`` ``[B, N, D]`` or ``[T, D]`` and a hierarchy over its tokens.
        - **output:** same shape as ``x``.
    """

    def __init__(
        self, layer: HierarchicalTransformerEncoderLayer, num_layers: int, final_norm: bool = True
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"HierarchicalTransformerEncoder: num_layers must be >= 1, got {num_layers}")
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))
        for copied in self.layers:
            copied.reset_parameters()  # type: ignore[operator]
        self.num_layers = num_layers
        self.norm = nn.LayerNorm(layer.d_model, eps=layer.norm1.eps) if final_norm else None

    def forward(self, x: Tensor, hierarchy: Hierarchy) -> Tensor:
        """All layers, then the final norm."""
        for layer in self.layers:
            x = layer(x, hierarchy)
        return x if self.norm is None else self.norm(x)
