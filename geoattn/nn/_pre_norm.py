r"""The LayerNorms and feed-forward block shared by geoattn's pre-norm transformer encoder layers.

A pre-norm layer (Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture",
arXiv:2002.04745) computes

.. math::
    h = x + \operatorname{Dropout}\bigl(\operatorname{Attn}(\operatorname{LN}_1(x))\bigr),\qquad
    y = h + \operatorname{Dropout}\bigl(W_2\,\operatorname{Dropout}(\sigma(W_1 \operatorname{LN}_2(h) + b_1)) + b_2\bigr).

:class:`PreNormFeedForward` holds :math:`\operatorname{LN}_1, \operatorname{LN}_2, W_1, W_2` and the second
residual step; the layers add their own attention and dropout modules.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["ACTIVATIONS", "PreNormFeedForward"]

#: Feed-forward activations by name (each layer accepts a subset, and says which).
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu}


class PreNormFeedForward(nn.Module):
    """Base of the pre-norm encoder layers: ``norm1``, ``norm2``, ``linear1``, ``linear2``.

    A subclass builds its attention first and then calls :meth:`_build_feed_forward`, so that the
    parameters are drawn, registered and named as if the layer built them itself.
    """

    norm1: nn.LayerNorm
    norm2: nn.LayerNorm
    linear1: nn.Linear
    linear2: nn.Linear

    def _build_feed_forward(
        self,
        d_model: int,
        dim_feedforward: int,
        *,
        layer_norm_eps: float,
        bias: bool,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> None:
        """Create ``norm1``, ``norm2`` (``[d_model]``), ``linear1`` and ``linear2`` (``d_model <-> dim_feedforward``)."""
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, device=device, dtype=dtype)
        self.linear1 = nn.Linear(d_model, dim_feedforward, bias=bias, device=device, dtype=dtype)
        self.linear2 = nn.Linear(dim_feedforward, d_model, bias=bias, device=device, dtype=dtype)

    def _reset_feed_forward(self) -> None:
        """Re-initialise the two LayerNorms and the two linear maps, in that order."""
        for module in (self.norm1, self.norm2, self.linear1, self.linear2):
            module.reset_parameters()

    def _feed_forward_residual(
        self,
        x: Tensor,
        activation: Callable[[Tensor], Tensor],
        inner_dropout: nn.Module,
        outer_dropout: nn.Module,
    ) -> Tensor:
        r""":math:`x + \operatorname{outer}(W_2\,\operatorname{inner}(\sigma(W_1 \operatorname{LN}_2(x))))`."""
        hidden = inner_dropout(activation(self.linear1(self.norm2(x))))
        return x + outer_dropout(self.linear2(hidden))
