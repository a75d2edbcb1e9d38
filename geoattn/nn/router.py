r"""The per-token geometry router of Curvature-Adaptive attention, and regularisers for its routing weights.

CAT (Lin, Ojha, Bai 2025, "CAT: Curvature-Adaptive Transformers for Geometry-Aware Learning",
arXiv:2510.01634) mixes the outputs of attention branches of different curvature with per-token weights

.. math::
    \alpha = \operatorname{softmax}\bigl(\operatorname{MLP}(x) / T\bigr) \in \Delta^{G-1}.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn
from torch.nn import functional as F

from geoattn.manifolds.numerics import min_denom

__all__ = [
    "GeometryRouter",
    "Routing",
    "routing_entropy",
    "routing_load_balance",
    "routing_regularizer",
]

Routing = Literal["soft", "top1"]


class GeometryRouter(nn.Module):
    r"""Per-token routing weights over ``G`` geometry branches (Lin et al. 2025, arXiv:2510.01634).

    .. math::
        \alpha = \operatorname{softmax}\Bigl(\frac{W_2\,\operatorname{GELU}(W_1 x + b_1) + b_2}{T}\Bigr)

    The output layer starts at zero, so every token starts with uniform weights :math:`1/G` (an equal
    mixture of the geometries). With ``routing="top1"`` the forward value is the one-hot vector of the
    largest weight and the gradient is that of the soft weights (straight-through; Bengio et al. 2013,
    "Estimating or Propagating Gradients Through Stochastic Neurons", arXiv:1308.3432); ties (e.g. at
    initialisation) go to the first branch.

    Args:
        in_features (int): input features :math:`D`.
        num_branches (int): number of branches :math:`G`. (default: ``3``)
        hidden (int, optional): hidden width; ``None`` picks ``max(1, in_features // 4)``.
            (default: ``None``)
        temperature (float): softmax temperature :math:`T > 0`; larger is smoother. (default: ``1.0``)
        routing (str): ``"soft"`` or ``"top1"``. (default: ``"soft"``)

    Shapes:
        - **input:** ``[..., D]``
        - **output:** ``[..., G]``, non-negative, summing to 1 over the last dimension.
    """

    def __init__(
        self,
        in_features: int,
        num_branches: int = 3,
        hidden: int | None = None,
        *,
        temperature: float = 1.0,
        routing: Routing = "soft",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if in_features < 1 or num_branches < 1:
            raise ValueError(
                f"{name}: in_features and num_branches must be >= 1, got {in_features}, {num_branches}"
            )
        hidden = max(1, in_features // 4) if hidden is None else hidden
        if hidden < 1:
            raise ValueError(f"{name}: hidden must be >= 1, got {hidden}")
        if not temperature > 0:
            raise ValueError(f"{name}: temperature must be > 0, got {temperature}")
        if routing not in get_args(Routing):
            raise ValueError(f"{name}: routing must be one of {get_args(Routing)}, got {routing!r}")
        self.in_features = in_features
        self.num_branches = num_branches
        self.hidden = hidden
        self.temperature = float(temperature)
        self.routing: Routing = routing
        self.lin1 = nn.Linear(in_features, hidden, device=device, dtype=dtype)
        self.lin2 = nn.Linear(hidden, num_branches, device=device, dtype=dtype)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Default init for the hidden layer; zeros for the output layer (uniform initial routing)."""
        self.lin1.reset_parameters()
        nn.init.zeros_(self.lin2.weight)
        nn.init.zeros_(self.lin2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.lin2(F.gelu(self.lin1(x)))
        alpha = torch.softmax(logits / self.temperature, dim=-1)
        if self.routing == "top1":
            hard = F.one_hot(alpha.argmax(dim=-1), self.num_branches).to(alpha.dtype)
            alpha = hard - alpha.detach() + alpha
        return alpha

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_branches={self.num_branches}, hidden={self.hidden}, "
            f"temperature={self.temperature}, routing={self.routing!r}"
        )


def _token_weights(
    alpha: torch.Tensor, key_padding_mask: torch.Tensor | None
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Weights of valid tokens, broadcastable to ``alpha[..., 0]``, and the token dimensions to reduce."""
    token_dims = (-3, -2) if alpha.dim() >= 3 else (-2,)
    if key_padding_mask is None:
        return torch.ones_like(alpha[..., :1]), token_dims
    if key_padding_mask.shape != alpha.shape[-3:-1]:
        raise ValueError(
            f"routing regulariser: key_padding_mask must have shape [B, N] = {tuple(alpha.shape[-3:-1])} "
            f"matching alpha [..., B, N, G], got {tuple(key_padding_mask.shape)}"
        )
    return (~key_padding_mask).to(alpha.dtype).unsqueeze(-1), token_dims


def routing_load_balance(alpha: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Load-balance penalty :math:`G \sum_e \bar\alpha_e^2 - 1 \in [0, G - 1]`, 0 iff branches are used equally.

    :math:`\bar\alpha_e` is the mean routing weight of branch ``e`` over the (valid) tokens; the penalty
    is the differentiable squared form of the Switch Transformer's balance loss (Fedus et al. 2022,
    arXiv:2101.03961) and is averaged over any leading dimensions (e.g. layers).

    Args:
        alpha: ``[..., B, N, G]`` routing weights of tokens (or ``[N, G]`` of graph nodes).
        key_padding_mask: ``[B, N]`` bool, ``True`` = padding, left out. (default: ``None``)
    """
    weights, dims = _token_weights(alpha, key_padding_mask)
    count = weights.sum(dim=dims).clamp_min(1.0)  # [..., 1]
    mean = (alpha * weights).sum(dim=dims) / count  # [..., G]
    return (alpha.shape[-1] * (mean * mean).sum(-1) - 1.0).mean()


def routing_entropy(alpha: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Mean per-token routing entropy :math:`-\sum_e \alpha_e \log\alpha_e \in [0, \log G]`.

    Small when every token commits to one geometry. Same arguments as :func:`routing_load_balance`.
    """
    weights, dims = _token_weights(alpha, key_padding_mask)
    # The clamp keeps log finite (and its gradient) at exact zeros, e.g. of top-1 routing.
    entropy = -(alpha * alpha.clamp_min(min_denom(alpha.dtype)).log()).sum(-1, keepdim=True)  # [..., B, N, 1]
    total = (entropy * weights).sum(dim=dims) / weights.sum(dim=dims).clamp_min(1.0)
    return total.mean()


def routing_regularizer(
    alpha: torch.Tensor,
    key_padding_mask: torch.Tensor | None = None,
    *,
    load_balance_weight: float = 1.0,
    entropy_weight: float = 0.0,
) -> torch.Tensor:
    r"""Auxiliary loss on routing weights: ``load_balance_weight * balance + entropy_weight * entropy``.

    Add it (scaled by a small coefficient) to the training loss: the balance term keeps every geometry in
    use, a positive ``entropy_weight`` pushes tokens towards decisive (interpretable) routing.

    Args:
        alpha: ``[..., B, N, G]`` (or ``[N, G]``) routing weights.
        key_padding_mask: ``[B, N]`` bool, ``True`` = padding. (default: ``None``)
        load_balance_weight: weight of :func:`routing_load_balance`. (default: ``1.0``)
        entropy_weight: weight of :func:`routing_entropy`. (default: ``0.0``)
    """
    loss = load_balance_weight * routing_load_balance(alpha, key_padding_mask)
    if entropy_weight != 0.0:
        loss = loss + entropy_weight * routing_entropy(alpha, key_padding_mask)
    return loss
