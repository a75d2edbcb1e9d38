r"""A stack of :class:`CATEncoderLayer`, used like :class:`torch.nn.TransformerEncoder`."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .cat_encoder_layer import CATEncoderLayer
from .router import routing_regularizer

__all__ = ["CATEncoder"]


class CATEncoder(nn.Module):
    r"""``num_layers`` copies of a :class:`CATEncoderLayer`, then an optional final norm.

    .. math::
        x^{(l)} = \operatorname{Layer}_l\bigl(x^{(l-1)}\bigr),\quad l = 1..L,\qquad
        y = \operatorname{norm}\bigl(x^{(L)}\bigr)

    Like :class:`torch.nn.TransformerEncoder` the layers are deep copies of ``encoder_layer`` (identical at
    construction; :meth:`reset_parameters` draws each anew). Pre-norm layers leave their output
    un-normalised, so pass ``norm=nn.LayerNorm(d_model)`` for a normalised output.

    Args:
        encoder_layer (CATEncoderLayer): the layer to copy.
        num_layers (int): number of layers :math:`L`.
        norm (nn.Module, optional): final normalisation. (default: ``None``)

    Shapes:
        - **input:** ``src`` ``[B, N, D]``; ``mask`` bool (``True`` = not allowed) or float additive,
          broadcastable to ``[B, H, N, N]``; ``src_key_padding_mask`` ``[B, N]`` bool (``True`` = padding).
        - **output:** ``[B, N, D]``; with ``return_routing=True`` also the routing weights of every layer
          ``[L, B, N, 3]`` (CAT layers only), for :meth:`routing_regularizer` and for inspection.
    """

    def __init__(
        self, encoder_layer: CATEncoderLayer, num_layers: int, norm: nn.Module | None = None
    ) -> None:
        super().__init__()
        if not isinstance(encoder_layer, CATEncoderLayer):
            raise TypeError(
                f"CATEncoder: encoder_layer must be a CATEncoderLayer, got {type(encoder_layer).__name__}"
            )
        if num_layers < 1:
            raise ValueError(f"CATEncoder: num_layers must be >= 1, got {num_layers}")
        self.layers = nn.ModuleList(copy.deepcopy(encoder_layer) for _ in range(num_layers))
        self.num_layers = num_layers
        self.norm = norm

    def reset_parameters(self) -> None:
        """Re-initialise every layer (independently) and the final norm."""
        for layer in self.layers:
            if isinstance(layer, CATEncoderLayer):
                layer.reset_parameters()
        reset = getattr(self.norm, "reset_parameters", None)
        if callable(reset):
            reset()

    def forward(
        self,
        src: torch.Tensor,
        mask: torch.Tensor | None = None,
        src_key_padding_mask: torch.Tensor | None = None,
        is_causal: bool = False,
        *,
        return_routing: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``src`` ``[B, N, D]`` -> ``[B, N, D]`` (and routing ``[L, B, N, 3]``)."""
        x = src
        routings: list[torch.Tensor] = []
        for layer in self.layers:
            if return_routing:
                x, routing = layer(x, mask, src_key_padding_mask, is_causal, return_routing=True)
                routings.append(routing)
            else:
                x = layer(x, mask, src_key_padding_mask, is_causal)
        if self.norm is not None:
            x = self.norm(x)
        return (x, torch.stack(routings)) if return_routing else x

    @staticmethod
    def routing_regularizer(
        routing: torch.Tensor,
        src_key_padding_mask: torch.Tensor | None = None,
        *,
        load_balance_weight: float = 1.0,
        entropy_weight: float = 0.0,
    ) -> torch.Tensor:
        """Auxiliary routing loss over all layers (:func:`geoattn.nn.routing_regularizer`, mean over layers)."""
        return routing_regularizer(
            routing,
            src_key_padding_mask,
            load_balance_weight=load_balance_weight,
            entropy_weight=entropy_weight,
        )
