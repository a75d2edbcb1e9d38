r"""A pre-norm transformer encoder layer whose attention is CAT or a single geometry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

import torch
from torch import nn

from geoattn.manifolds import FixedCurvature, HyperbolicCurvature, SignedCurvature, SphericalCurvature

from ._checks import check_dropout
from ._pre_norm import ACTIVATIONS, PreNormFeedForward
from .curvature_adaptive_attention import CurvatureAdaptiveAttention
from .manifold_attention import ManifoldAttention

__all__ = ["AttentionKind", "CATEncoderLayer"]

AttentionKind = Literal["cat", "euclidean", "hyperbolic", "spherical", "signed"]
_ACTIVATIONS = ("relu", "gelu")


class CATEncoderLayer(PreNormFeedForward):
    r"""Pre-norm transformer encoder layer with Curvature-Adaptive (or single-geometry) attention.

    .. math::
        h = x + \operatorname{Dropout}\bigl(\operatorname{Attn}(\operatorname{LN}_1(x))\bigr),\qquad
        y = h + \operatorname{Dropout}\bigl(W_2\,\operatorname{Dropout}(\sigma(W_1 \operatorname{LN}_2(h)))\bigr)

    (pre-norm residual blocks as in Xiong et al. 2020, "On Layer Normalization in the Transformer
    Architecture", arXiv:2002.04745). Used like :class:`torch.nn.TransformerEncoderLayer` with
    ``batch_first=True, norm_first=True``. ``attention`` chooses the attention:

    - ``"cat"``: :class:`CurvatureAdaptiveAttention` (Lin et al. 2025, arXiv:2510.01634);
    - ``"euclidean"``: :class:`ManifoldAttention` at fixed ``k = 0``;
    - ``"hyperbolic"`` / ``"spherical"``: :class:`ManifoldAttention` with learnable per-head ``k < 0``
      (initially -1) / ``k > 0`` (initially 1);
    - ``"signed"``: :class:`ManifoldAttention` with learnable per-head curvature of any sign, initially 0
      (mixed-curvature heads, Cho et al. 2023, arXiv:2309.04082).

    Args:
        d_model (int): model dimension :math:`D`.
        nhead (int): attention heads (per branch for ``"cat"``).
        dim_feedforward (int, optional): feed-forward width; ``None``: ``4 * d_model``. (default: ``None``)
        dropout (float): dropout on both residual branches, inside the feed-forward block and on the
            attention weights. (default: ``0.1``)
        activation (str): ``"relu"`` or ``"gelu"``. (default: ``"gelu"``)
        attention (str): ``"cat"``, ``"euclidean"``, ``"hyperbolic"``, ``"spherical"`` or ``"signed"``.
            (default: ``"cat"``)
        attention_kwargs (Mapping, optional): extra keyword arguments for the attention module (e.g.
            ``{"score": "tangent_dot"}``; ``{"dropout": 0.0}`` overrides the attention-weight dropout).
            (default: ``None``)
        layer_norm_eps (float): LayerNorm epsilon. (default: ``1e-5``)
        bias (bool): biases in linear layers and LayerNorms. (default: ``True``)
        device, dtype: factory arguments. (default: ``None``)

    Shapes:
        - **input:** ``src`` ``[B, N, D]``; ``src_mask`` bool (``True`` = not allowed) or float additive,
          broadcastable to ``[B, H, N, N]``; ``src_key_padding_mask`` ``[B, N]`` bool (``True`` = padding).
        - **output:** ``[B, N, D]``; with ``return_routing=True`` (``"cat"`` only) also ``[B, N, 3]``.
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int | None = None,
        dropout: float = 0.1,
        activation: Literal["relu", "gelu"] = "gelu",
        *,
        attention: AttentionKind = "cat",
        attention_kwargs: Mapping[str, Any] | None = None,
        layer_norm_eps: float = 1e-5,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if attention not in get_args(AttentionKind):
            raise ValueError(f"{name}: attention must be one of {get_args(AttentionKind)}, got {attention!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"{name}: activation must be one of {_ACTIVATIONS}, got {activation!r}")
        check_dropout(name, dropout)
        dim_feedforward = 4 * d_model if dim_feedforward is None else dim_feedforward
        if dim_feedforward < 1:
            raise ValueError(f"{name}: dim_feedforward must be >= 1, got {dim_feedforward}")
        self.d_model = d_model
        self.nhead = nhead
        self.dim_feedforward = dim_feedforward
        self.dropout_p = float(dropout)
        self.activation = activation
        self.attention = attention
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        kwargs: dict[str, Any] = {"dropout": dropout, "bias": bias, **factory, **(attention_kwargs or {})}
        self.self_attn: CurvatureAdaptiveAttention | ManifoldAttention
        if attention == "cat":
            self.self_attn = CurvatureAdaptiveAttention(d_model, nhead, **kwargs)
        else:
            curvature = {
                "euclidean": lambda: FixedCurvature(0.0, shape=nhead),
                "hyperbolic": lambda: HyperbolicCurvature(-1.0, shape=nhead),
                "spherical": lambda: SphericalCurvature(1.0, shape=nhead),
                "signed": lambda: SignedCurvature(0.0, shape=nhead),
            }[attention]()
            kwargs.setdefault("curvature", curvature)
            self.self_attn = ManifoldAttention(d_model, nhead, **kwargs)
        self._build_feed_forward(
            d_model, dim_feedforward, layer_norm_eps=layer_norm_eps, bias=bias, device=device, dtype=dtype
        )
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise attention, LayerNorms and the feed-forward block."""
        self.self_attn.reset_parameters()
        self._reset_feed_forward()

    def forward(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        *,
        return_routing: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``src`` ``[B, N, D]`` -> ``[B, N, D]`` (and the routing weights ``[B, N, 3]`` for CAT)."""
        if return_routing and self.attention != "cat":
            raise ValueError(
                f"{type(self).__name__}: return_routing=True needs attention='cat', got {self.attention!r}"
            )
        h = self.norm1(src)
        routing: torch.Tensor | None = None
        if isinstance(self.self_attn, CurvatureAdaptiveAttention):
            attended, routing = self.self_attn(
                h, src_key_padding_mask, src_mask, is_causal=is_causal, return_routing=True
            )
        else:
            attended = self.self_attn(h, src_key_padding_mask, src_mask, is_causal=is_causal)
        x = src + self.dropout1(attended)
        x = self._feed_forward_residual(x, ACTIVATIONS[self.activation], self.dropout, self.dropout2)
        if return_routing:
            assert routing is not None
            return x, routing
        return x

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, nhead={self.nhead}, dim_feedforward={self.dim_feedforward}, "
            f"dropout={self.dropout_p}, activation={self.activation!r}, attention={self.attention!r}"
        )
