r"""Additive pointer attention: a distribution over input positions (Vinyals et al. 2015)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = ["PointerAttention", "masked_log_softmax"]


def masked_log_softmax(logits: torch.Tensor, allowed: torch.Tensor | None, dim: int = -1) -> torch.Tensor:
    r"""``log_softmax`` over the allowed entries of ``logits``; masked entries get :math:`-\infty`.

    .. math::
        \log p_j = u_j - \log\sum_{l \in A} e^{u_l}\ (j \in A),\qquad \log p_j = -\infty\ (j \notin A).

    A row with no allowed entry (:math:`A = \emptyset`) is all :math:`-\infty`: every probability is 0 and
    the row sums to 0, not 1. Gradients stay finite everywhere: masked entries and fully masked rows are
    constants (their gradient is 0), also where ``logits`` themselves are infinite there.

    Args:
        logits: scores :math:`u`, any shape.
        allowed: bool, broadcastable to ``logits``; ``True`` marks entries that may be chosen. ``None``
            allows everything (plain ``log_softmax``).
        dim: the dimension to normalise over. (default: ``-1``)

    Returns:
        Log-probabilities, the shape and dtype of ``logits``.
    """
    if allowed is None:
        return torch.log_softmax(logits, dim=dim)
    allowed = allowed.expand_as(logits)
    any_allowed = allowed.any(dim=dim, keepdim=True)
    # Masked entries become -inf before the softmax; fully masked rows compute a harmless 0-row instead.
    safe = torch.where(allowed | ~any_allowed, logits, torch.full_like(logits, -math.inf))
    safe = torch.where(any_allowed, safe, torch.zeros_like(logits))
    out = torch.log_softmax(safe, dim=dim)
    return torch.where(allowed, out, torch.full_like(out, -math.inf))


class PointerAttention(nn.Module):
    r"""Additive attention that points at input positions (Vinyals, Fortunato, Jaitly 2015, "Pointer
    Networks", NeurIPS, arXiv:1506.03134; logit clipping from Kool, van Hoof, Welling 2019, "Attention,
    Learn to Solve Routing Problems!", ICLR, arXiv:1803.08475).

    For a query :math:`d_i` (a decoder state) and keys :math:`e_j` (encoder states):

    .. math::
        u_{ij} = v^\top \tanh(W_1 e_j + W_2 d_i),\qquad
        \tilde u_{ij} = C \tanh(u_{ij})\ \text{(with clipping)},\qquad
        \log p(j \mid i) = \tilde u_{ij} - \log \sum_{l \in A_i} e^{\tilde u_{il}}

    over the allowed positions :math:`A_i`; positions outside :math:`A_i` get probability 0
    (log-probability :math:`-\infty`). A query with no allowed position gets an all-:math:`-\infty` row
    (see :func:`masked_log_softmax`). :math:`W_1 e_j` does not depend on the query: compute it once with
    :meth:`project_keys` and pass it as ``projected_keys`` to every decoding step.

    Args:
        query_dim (int): features of the queries :math:`d_i`.
        key_dim (int, optional): features of the keys :math:`e_j`; ``None``: ``query_dim``.
            (default: ``None``)
        hidden_dim (int, optional): width :math:`H` of :math:`W_1, W_2, v`; ``None``: ``query_dim``.
            (default: ``None``)
        clip (float, optional): :math:`C > 0`, bound the logits to :math:`(-C, C)` with :math:`C\tanh`
            (Kool et al. use 10); ``None`` leaves them unbounded. (default: ``None``)
        bias (bool): biases in :math:`W_1` and :math:`W_2` (the paper has none). (default: ``False``)
        device, dtype: factory arguments for the parameters. (default: ``None``)

    Shapes:
        - **input:** ``query`` ``[B, T, query_dim]`` (``T`` queries per instance, e.g. decoding steps or
          beams) or ``[B, query_dim]``; ``keys`` ``[B, n, key_dim]``; ``allowed`` bool broadcastable to
          ``[B, T, n]`` (or ``[B, n]`` for a 2-D query), ``True`` = may be pointed at.
        - **output:** log-probabilities ``[B, T, n]`` (or ``[B, n]``); :meth:`scores` returns the clipped
          logits :math:`\tilde u` before masking, same shape.

    Memory: the :math:`\tanh` argument is a ``[B, T, n, H]`` tensor.
    """

    def __init__(
        self,
        query_dim: int,
        key_dim: int | None = None,
        hidden_dim: int | None = None,
        *,
        clip: float | None = None,
        bias: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        key_dim = query_dim if key_dim is None else key_dim
        hidden_dim = query_dim if hidden_dim is None else hidden_dim
        for arg, value in (("query_dim", query_dim), ("key_dim", key_dim), ("hidden_dim", hidden_dim)):
            if value < 1:
                raise ValueError(f"{name}: {arg} must be >= 1, got {value}")
        if clip is not None and not clip > 0:
            raise ValueError(f"{name}: clip must be None or > 0, got {clip}")
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self.query_dim = query_dim
        self.key_dim = key_dim
        self.hidden_dim = hidden_dim
        self.clip = None if clip is None else float(clip)
        self.key_proj = nn.Linear(key_dim, hidden_dim, bias=bias, **factory)  # W_1
        self.query_proj = nn.Linear(query_dim, hidden_dim, bias=bias, **factory)  # W_2
        self.v = nn.Parameter(torch.empty(hidden_dim, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Default ``nn.Linear`` init for :math:`W_1, W_2`; :math:`v \\sim U(-1/\\sqrt{H}, 1/\\sqrt{H})`."""
        self.key_proj.reset_parameters()
        self.query_proj.reset_parameters()
        bound = 1.0 / math.sqrt(self.hidden_dim)
        nn.init.uniform_(self.v, -bound, bound)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """:math:`W_1 e_j`: ``[B, n, key_dim]`` -> ``[B, n, H]``, reusable across queries."""
        return self.key_proj(keys)

    def scores(
        self,
        query: torch.Tensor,
        keys: torch.Tensor | None = None,
        *,
        projected_keys: torch.Tensor | None = None,
    ) -> torch.Tensor:
        r"""The (clipped) logits :math:`\tilde u`, ``[B, T, n]`` (or ``[B, n]`` for a ``[B, query_dim]`` query)."""
        if projected_keys is None:
            if keys is None:
                raise ValueError(f"{type(self).__name__}: pass keys or projected_keys")
            projected_keys = self.project_keys(keys)
        squeeze = query.dim() == 2
        q = self.query_proj(query[:, None] if squeeze else query)  # [B, T, H]
        u = torch.tanh(projected_keys[:, None, :, :] + q[:, :, None, :]) @ self.v  # [B, T, n]
        if self.clip is not None:
            u = self.clip * torch.tanh(u)
        return u[:, 0] if squeeze else u

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor | None = None,
        allowed: torch.Tensor | None = None,
        *,
        projected_keys: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Log-probabilities over key positions, ``-inf`` where ``allowed`` is ``False``."""
        return masked_log_softmax(self.scores(query, keys, projected_keys=projected_keys), allowed)

    def extra_repr(self) -> str:
        return (
            f"query_dim={self.query_dim}, key_dim={self.key_dim}, hidden_dim={self.hidden_dim}, "
            f"clip={self.clip}"
        )
