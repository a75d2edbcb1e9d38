r"""Multi-head attention in one geometry of constant curvature (hyperbolic, Euclidean or spherical)."""

from __future__ import annotations

from typing import Any

import torch

from geoattn.kernels.backend import Backend
from geoattn.kernels.manifold_attention import Aggregation, Score
from geoattn.manifolds import CurvatureModule

from ._checks import check_dropout, check_heads, check_tokens, head_curvature
from ._projected_attention import ProjectedAttention
from .head_geometry import HeadGeometry

__all__ = ["ManifoldAttention"]


class ManifoldAttention(ProjectedAttention):
    r"""Multi-head attention on the κ-stereographic manifold of curvature :math:`\kappa_h` per head.

    Hyperbolic attention with distance scores and gyro-midpoint aggregation (Gulcehre et al. 2019,
    "Hyperbolic Attention Networks", arXiv:1805.09786), for any sign of curvature with one (optionally
    learnable) curvature per head (Cho et al. 2023, "Curve Your Attention: Mixed-Curvature Transformers for
    Graph Representation Learning", arXiv:2309.04082). For Euclidean input features :math:`x_i`:

    .. math::
        q_i = \operatorname{proj}\,\exp_0^{\kappa_h}(W_Q x_i),\quad
        k_j = \operatorname{proj}\,\exp_0^{\kappa_h}(W_K x_j),\quad
        v_j = \operatorname{proj}\,\exp_0^{\kappa_h}(W_V x_j)

        a_{ij} = \operatorname{softmax}_j\bigl(-\beta_h\, d_{\kappa_h}(q_i, k_j)^2 - \gamma_h\bigr),\qquad
        y_i = W_O \bigl[\log_0^{\kappa_h}\bigl(\operatorname{midpoint}_{\kappa_h}(\{v_j\}, \{a_{ij}\})\bigr)\bigr]_h

    per head :math:`h` (heads concatenated before :math:`W_O`), with :math:`\beta_h = \operatorname{softplus}
    (\theta_h) > 0` learnable and :math:`\gamma_h` a learnable bias (it cancels in the softmax; kept to state
    the score exactly). ``score="tangent_dot"`` uses :math:`\beta_h\langle\log_0 q_i, \log_0 k_j\rangle
    /\sqrt{D_h} - \gamma_h` instead, and ``aggregation="tangent"`` the tangent mean
    :math:`\exp_0(\sum_j a_{ij}\log_0 v_j)`.

    Euclidean limits (``k = 0``, where :math:`\exp_0` and :math:`\log_0` are the identity): with
    ``score="distance"`` the weights are :math:`\operatorname{softmax}_j(-4\beta_h\|q_i - k_j\|^2 - \gamma_h)`
    (the κ-stereographic metric at ``k = 0`` is 4 times the Euclidean one: :math:`d = 2\|x - y\|`) and the
    midpoint is the weighted mean; with ``score="tangent_dot"``, ``aggregation="tangent"`` and
    :math:`\beta = 1` (the default ``beta_init`` for that score) the module is standard multi-head attention,
    :func:`torch.nn.functional.scaled_dot_product_attention` between the projections. Outputs are continuous
    in :math:`\kappa` through 0.

    Args:
        embed_dim (int): model dimension :math:`D` (a multiple of ``num_heads``).
        num_heads (int): number of heads :math:`H`; :math:`D_h = D / H`. (default: ``1``)
        curvature (float or CurvatureModule): a float ``k`` (any sign), or a curvature module of shape
            ``()`` or ``(num_heads,)`` from :mod:`geoattn.manifolds` (:class:`FixedCurvature`,
            :class:`SignedCurvature`, :class:`HyperbolicCurvature`, :class:`SphericalCurvature`).
            (default: ``0.0``)
        learnable_curvature (bool): with a float ``curvature``, learn one curvature per head starting there
            (:class:`SignedCurvature`, free to change sign); otherwise it is fixed. Must be ``False`` when a
            module is given. (default: ``False``)
        score (str): ``"distance"`` or ``"tangent_dot"``. (default: ``"distance"``)
        aggregation (str): ``"midpoint"`` or ``"tangent"``. (default: ``"midpoint"``)
        beta_init (float, optional): initial temperature; ``None``: :math:`1/\sqrt{D_h}` for ``"distance"``,
            1 for ``"tangent_dot"``. (default: ``None``)
        dropout (float): dropout on the attention weights while training. (default: ``0.0``)
        bias (bool): biases in the four projections. (default: ``True``)
        backend (str): backend of the attention core, ``"auto"``, ``"torch"`` or ``"triton"``.
            (default: ``"auto"``)
        device, dtype: factory arguments for the parameters. (default: ``None``)

    Shapes:
        - **input:** ``x`` ``[B, N, D]``; ``key_padding_mask`` ``[B, N]`` bool (``True`` = padding);
          ``attn_mask`` bool (``True`` = not allowed) or float additive, broadcastable to ``[B, H, N, N]``.
        - **output:** ``[B, N, D]``; with ``need_weights=True`` also the weights ``[B, H, N, N]``.
          Queries whose keys are all masked get the origin, i.e. ``W_O 0 + b_O``.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int = 1,
        *,
        curvature: float | CurvatureModule = 0.0,
        learnable_curvature: bool = False,
        score: Score = "distance",
        aggregation: Aggregation = "midpoint",
        beta_init: float | None = None,
        dropout: float = 0.0,
        bias: bool = True,
        backend: Backend = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        check_heads(name, embed_dim, num_heads)
        check_dropout(name, dropout)
        curvature_module = head_curvature(name, curvature, learnable_curvature, num_heads)
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = float(dropout)
        self.backend: Backend = backend
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        self._build_projections(embed_dim, 1, bias=bias, **factory)
        self.geometry = HeadGeometry(
            num_heads,
            self.head_dim,
            [curvature_module],
            score=score,
            aggregation=aggregation,
            beta_init=beta_init,
            **factory,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Default ``nn.Linear`` init for the projections; curvature, beta, gamma back to their initial values."""
        self._reset_projections()
        self.geometry.reset_parameters()

    def curvature(self) -> torch.Tensor:
        """The signed curvature of every head, ``[H]``."""
        return self.geometry.curvature()

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """``[B, N, H * Dh]`` -> ``[B, H, N, Dh]``."""
        return t.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        *,
        is_causal: bool = False,
        need_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Self-attention of ``x`` ``[B, N, D]``; returns ``[B, N, D]`` (and ``[B, H, N, N]`` weights)."""
        check_tokens(type(self).__name__, x, self.embed_dim)
        out, attn = self._attend(x, key_padding_mask, attn_mask, causal=is_causal, need_weights=need_weights)
        y = self.out_proj(out.transpose(1, 2).flatten(-2))
        if need_weights:
            assert attn is not None
            return y, attn
        return y

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"
