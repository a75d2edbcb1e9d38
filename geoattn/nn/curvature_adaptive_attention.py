r"""Curvature-Adaptive attention (CAT): Euclidean, hyperbolic and spherical branches mixed per token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from geoattn.kernels.backend import Backend
from geoattn.kernels.manifold_attention import Aggregation, Score, cat_attention
from geoattn.manifolds import CurvatureModule, FixedCurvature, HyperbolicCurvature, SphericalCurvature

from ._checks import check_dropout, check_heads, check_tokens
from ._projected_attention import ProjectedAttention
from .head_geometry import HeadGeometry
from .manifold_attention import ManifoldAttention
from .router import GeometryRouter, Routing, routing_regularizer

__all__ = ["BRANCHES", "CurvatureAdaptiveAttention", "ParameterReport"]

# Branch order of routing weights `[..., 3]` everywhere in geoattn.
BRANCHES = ("euclidean", "hyperbolic", "spherical")


@dataclass(frozen=True)
class ParameterReport:
    """Parameter counts of a CAT module against a plain Euclidean :class:`ManifoldAttention` of the same size.

    ``overhead = total / baseline - 1`` (e.g. ``0.067`` = 6.7% more parameters).
    """

    total: int
    router: int
    geometry: int
    projections: int
    baseline: int

    @property
    def overhead(self) -> float:
        """Relative parameter overhead over the baseline."""
        return self.total / self.baseline - 1.0


def _branch_curvatures(
    num_heads: int, learnable: bool, hyperbolic: float, spherical: float, owner: str
) -> list[CurvatureModule]:
    if not hyperbolic < 0:
        raise ValueError(f"{owner}: hyperbolic_curvature must be < 0, got {hyperbolic}")
    if not spherical > 0:
        raise ValueError(f"{owner}: spherical_curvature must be > 0, got {spherical}")
    if learnable:
        return [
            FixedCurvature(0.0, shape=num_heads),
            HyperbolicCurvature(hyperbolic, shape=num_heads),
            SphericalCurvature(spherical, shape=num_heads),
        ]
    return [
        FixedCurvature(0.0, shape=num_heads),
        FixedCurvature(hyperbolic, shape=num_heads),
        FixedCurvature(spherical, shape=num_heads),
    ]


class CurvatureAdaptiveAttention(ProjectedAttention):
    r"""Curvature-Adaptive attention: three attention branches of different geometry, mixed per token.

    From Lin, Ojha, Bai 2025, "CAT: Curvature-Adaptive Transformers for Geometry-Aware Learning"
    (arXiv:2510.01634): a lightweight router gives every token weights over a Euclidean, a hyperbolic and a
    spherical attention branch,

    .. math::
        \alpha_i = \operatorname{softmax}\bigl(\operatorname{MLP}(x_i)/T\bigr) \in \Delta^2,\qquad
        y_i = \sum_{b \in \{E, H, S\}} \alpha_{i,b}\, \operatorname{Attn}_b(x)_i .

    The paper publishes the routing only; the branches here are built from published parts. Every branch is
    the manifold attention of :class:`ManifoldAttention` (distance scores and gyro-midpoint aggregation,
    Gulcehre et al. 2019, arXiv:1805.09786; per-head learnable curvature, Cho et al. 2023,
    arXiv:2309.04082) with its own curvature per head, temperature :math:`\beta` and bias :math:`\gamma`:
    Euclidean :math:`\kappa = 0` (fixed), hyperbolic :math:`\kappa_h < 0` and spherical :math:`\kappa_h > 0`
    (learnable, sign-constrained). All three use the same ``score`` and ``aggregation``, so the router
    chooses a geometry, not a scoring rule. The defaults are compared with the alternatives in
    ``benchmarks/node_classification.py --cat-variants`` (results in benchmarks/RESULTS.md).

    With ``shared_projections=True`` (default; the paper's ~5% parameter overhead implies shared
    projections) the branches share :math:`W_Q, W_K, W_V, W_O`:

    .. math::
        y_i = W_O \sum_b \alpha_{i,b}\, \log_0^{\kappa_b}\bigl(\operatorname{midpoint}_{\kappa_b}(\dots)\bigr)_i
        + b_O,

    which equals mixing the three projected outputs because :math:`\sum_b \alpha_{i,b} = 1`. With
    ``shared_projections=False`` each branch has its own :math:`W_Q, W_K, W_V, W_O` (one shared output
    bias). All branches run as one batched attention over :math:`3H` heads; with shared projections, distance
    scores and midpoint aggregation (the defaults) through :func:`geoattn.kernels.manifold_attention.cat_attention`
    (its one-pass kernel, slower on an H200 than the :math:`3H`-head call, is not used here). :meth:`parameter_report` gives
    the counts and the overhead against a plain Euclidean :class:`ManifoldAttention`.

    Args:
        embed_dim (int): model dimension :math:`D` (a multiple of ``num_heads``).
        num_heads (int): heads per branch :math:`H`. (default: ``1``)
        shared_projections (bool): share Q/K/V/O projections across branches. (default: ``True``)
        learnable_curvature (bool): learn the hyperbolic and spherical curvatures per head (sign kept).
            (default: ``True``)
        hyperbolic_curvature (float): (initial) curvature of the hyperbolic branch, ``< 0``.
            (default: ``-1.0``)
        spherical_curvature (float): (initial) curvature of the spherical branch, ``> 0``. (default: ``1.0``)
        score (str): ``"distance"`` or ``"tangent_dot"``, for every branch. (default: ``"distance"``)
        aggregation (str): ``"midpoint"`` or ``"tangent"``, for every branch. (default: ``"midpoint"``)
        router_hidden (int, optional): router MLP width; ``None``: ``max(1, embed_dim // 4)``.
            (default: ``None``)
        router_temperature (float): router softmax temperature. (default: ``1.0``)
        routing (str): ``"soft"`` or ``"top1"`` (one-hot forward, straight-through gradient; all branches
            are still computed). (default: ``"soft"``)
        beta_init (float, optional): initial temperature of every branch (see :class:`ManifoldAttention`).
            (default: ``None``)
        dropout (float): attention-weight dropout while training. (default: ``0.0``)
        bias (bool): biases in the projections. (default: ``True``)
        backend (str): backend of the attention core. (default: ``"auto"``)
        device, dtype: factory arguments. (default: ``None``)

    Shapes:
        - **input:** ``x`` ``[B, N, D]``; ``key_padding_mask`` ``[B, N]`` bool (``True`` = padding);
          ``attn_mask`` bool (``True`` = not allowed) or float additive, broadcastable to ``[B, H, N, N]``.
        - **output:** ``[B, N, D]``; with ``return_routing=True`` also the routing weights ``[B, N, 3]``
          in the order of :data:`BRANCHES` (Euclidean, hyperbolic, spherical).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int = 1,
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
        bias: bool = True,
        backend: Backend = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        check_heads(name, embed_dim, num_heads)
        check_dropout(name, dropout)
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.shared_projections = shared_projections
        self.dropout = float(dropout)
        self.bias = bias
        self.backend: Backend = backend
        self.score: Score = score
        self.aggregation: Aggregation = aggregation
        factory: dict[str, Any] = {"device": device, "dtype": dtype}
        groups = 1 if shared_projections else len(BRANCHES)
        self.router = GeometryRouter(
            embed_dim,
            len(BRANCHES),
            router_hidden,
            temperature=router_temperature,
            routing=routing,
            **factory,
        )
        self._build_projections(embed_dim, groups, bias=bias, **factory)
        curvatures = _branch_curvatures(
            num_heads, learnable_curvature, hyperbolic_curvature, spherical_curvature, name
        )
        self.geometry = HeadGeometry(
            num_heads,
            self.head_dim,
            curvatures,
            score=score,
            aggregation=aggregation,
            beta_init=beta_init,
            **factory,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initialise projections, router (uniform routing), curvatures, beta and gamma."""
        self._reset_projections()
        self.router.reset_parameters()
        self.geometry.reset_parameters()

    def curvature(self) -> torch.Tensor:
        """Curvature per branch and head, ``[3, H]`` (rows in the order of :data:`BRANCHES`)."""
        return self.geometry.curvature().view(len(BRANCHES), self.num_heads)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """``[B, N, P * H * Dh]`` -> ``[B, 3H, N, Dh]`` (branch-major; shared projections repeated)."""
        heads = t.unflatten(-1, (-1, self.head_dim)).transpose(1, 2)  # [B, P*H, N, Dh]
        return heads.repeat(1, len(BRANCHES), 1, 1) if self.shared_projections else heads

    def _shared_heads(self, t: torch.Tensor) -> torch.Tensor:
        """``[B, N, H * Dh]`` -> ``[B, H, N, Dh]`` (the heads every branch shares)."""
        return t.unflatten(-1, (-1, self.head_dim)).transpose(1, 2)

    def _shared_core(self, attn_mask: torch.Tensor | None) -> bool:
        """Whether :func:`~geoattn.kernels.manifold_attention.cat_attention` computes this call: shared
        projections, distance scores, midpoint aggregation, no ``attn_mask`` and no active dropout (the same
        math as the general path, which also serves ``attn_mask``, dropout and separate projections)."""
        return (
            self.shared_projections
            and self.score == "distance"
            and self.aggregation == "midpoint"
            and attn_mask is None
            and (self.dropout == 0.0 or not self.training)
        )

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        *,
        is_causal: bool = False,
        return_routing: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Self-attention of ``x`` ``[B, N, D]``: ``[B, N, D]`` (and routing ``[B, N, 3]``)."""
        check_tokens(type(self).__name__, x, self.embed_dim)
        alpha = self.router(x)  # [B, N, 3]
        if self._shared_core(attn_mask):
            mixed = cat_attention(
                *(self._shared_heads(proj(x)) for proj in (self.q_proj, self.k_proj, self.v_proj)),
                curvature=self.geometry.curvature(),
                beta=self.geometry.beta(),
                gamma=self.geometry.gamma,
                alpha=alpha,
                key_padding_mask=key_padding_mask,
                causal=is_causal,
                backend=self.backend,
            )  # [B, H, N, Dh]: the three branches mixed in the tangent space
            y = self.out_proj(mixed.transpose(1, 2).flatten(-2))
            return (y, alpha) if return_routing else y
        out, _ = self._attend(x, key_padding_mask, attn_mask, causal=is_causal)  # [B, 3H, N, Dh] tangent
        branches = (
            out.transpose(1, 2).unflatten(2, (len(BRANCHES), self.num_heads)).flatten(-2)
        )  # [B, N, 3, D]
        mixed = branches * alpha.unsqueeze(-1)
        y = self.out_proj(mixed.sum(2) if self.shared_projections else mixed.flatten(-2))
        return (y, alpha) if return_routing else y

    @staticmethod
    def routing_regularizer(
        alpha: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        *,
        load_balance_weight: float = 1.0,
        entropy_weight: float = 0.0,
    ) -> torch.Tensor:
        """Auxiliary routing loss for the trainer: :func:`geoattn.nn.routing_regularizer`."""
        return routing_regularizer(
            alpha,
            key_padding_mask,
            load_balance_weight=load_balance_weight,
            entropy_weight=entropy_weight,
        )

    def parameter_report(self) -> ParameterReport:
        """Parameter counts and the overhead over a plain Euclidean :class:`ManifoldAttention`.

        The baseline has the same ``embed_dim``, ``num_heads``, ``bias``, ``score`` and ``aggregation`` and a
        fixed curvature 0 (built on the ``meta`` device, so it allocates nothing).
        """
        baseline = ManifoldAttention(
            self.embed_dim,
            self.num_heads,
            curvature=0.0,
            score=self.score,
            aggregation=self.aggregation,
            bias=self.bias,
            device="meta",
        )

        def count(module: nn.Module) -> int:
            return sum(p.numel() for p in module.parameters())

        projections = sum(count(m) for m in self._projections())
        return ParameterReport(
            total=count(self),
            router=count(self.router),
            geometry=count(self.geometry),
            projections=projections,
            baseline=count(baseline),
        )

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
            f"shared_projections={self.shared_projections}, dropout={self.dropout}"
        )
