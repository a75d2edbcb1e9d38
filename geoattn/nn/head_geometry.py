r"""Per-head geometry of geoattn's attention layers: curvature, temperature and bias for every head."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import get_args

import torch
from torch import nn
from torch.nn import functional as F

from geoattn.kernels.backend import Backend
from geoattn.kernels.manifold_attention import Aggregation, Score, manifold_attention
from geoattn.manifolds import CurvatureModule, expmap0, logmap0, project
from geoattn.manifolds.curvature import inverse_softplus

__all__ = ["HeadGeometry"]


class HeadGeometry(nn.Module):
    r"""Curvature :math:`\kappa_h`, temperature :math:`\beta_h` and bias :math:`\gamma_h` for ``G x H`` heads.

    The shared core of :class:`~geoattn.nn.ManifoldAttention` (``G = 1``),
    :class:`~geoattn.nn.CurvatureAdaptiveAttention` (``G = 3`` branches, heads stacked branch-major) and
    the PyG layers. Tangent features :math:`u` become points :math:`\operatorname{proj}(\exp_0^{\kappa_h}(u))`
    and are scored with

    .. math::
        s_{ij} = -\beta_h\, d_{\kappa_h}(q_i, k_j)^2 - \gamma_h
        \quad\text{or}\quad
        s_{ij} = \beta_h \langle \log_0 q_i, \log_0 k_j\rangle / \sqrt{D_h} - \gamma_h,

    with :math:`\beta_h = \operatorname{softplus}(\theta_h) > 0` (Gulcehre et al. 2019, "Hyperbolic
    Attention Networks", arXiv:1805.09786; per-head curvature as in Cho et al. 2023, arXiv:2309.04082).

    Args:
        num_heads (int): heads per group :math:`H`.
        head_dim (int): features per head :math:`D_h`.
        curvatures (Sequence[CurvatureModule]): one curvature module per group, each of shape ``()`` (one
            curvature shared by the group's heads) or ``(H,)`` (one per head).
        score (str): ``"distance"`` or ``"tangent_dot"``. (default: ``"distance"``)
        aggregation (str): ``"midpoint"`` or ``"tangent"``. (default: ``"midpoint"``)
        beta_init (float, optional): initial :math:`\beta`; ``None`` picks :math:`1/\sqrt{D_h}` for
            ``"distance"`` (the scale of dot-product attention) and 1 for ``"tangent_dot"`` (whose score
            already divides by :math:`\sqrt{D_h}`, so it starts as scaled dot-product attention).
            (default: ``None``)

    Shapes:
        - :meth:`curvature`, :meth:`beta`, ``gamma``: ``[G * H]``, group-major.
        - :meth:`attend`: tangent ``q, k, v`` ``[B, G*H, N|M, Dh]`` -> tangent output ``[B, G*H, N, Dh]``.
    """

    def __init__(
        self,
        num_heads: int,
        head_dim: int,
        curvatures: Sequence[CurvatureModule],
        *,
        score: Score = "distance",
        aggregation: Aggregation = "midpoint",
        beta_init: float | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if num_heads < 1 or head_dim < 1:
            raise ValueError(f"{name}: num_heads and head_dim must be >= 1, got {num_heads} and {head_dim}")
        if score not in get_args(Score):
            raise ValueError(f"{name}: score must be one of {get_args(Score)}, got {score!r}")
        if aggregation not in get_args(Aggregation):
            raise ValueError(
                f"{name}: aggregation must be one of {get_args(Aggregation)}, got {aggregation!r}"
            )
        if not curvatures:
            raise ValueError(f"{name}: curvatures must hold at least one curvature module")
        for c in curvatures:
            if not isinstance(c, CurvatureModule) or c.shape not in ((), (num_heads,)):
                shown = c.shape if isinstance(c, CurvatureModule) else type(c).__name__
                raise ValueError(
                    f"{name}: each curvature must be a CurvatureModule of shape () or (num_heads,) = "
                    f"({num_heads},), got {shown}"
                )
        if beta_init is not None and not beta_init > 0:
            raise ValueError(f"{name}: beta_init must be > 0, got {beta_init}")
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.score: Score = score
        self.aggregation: Aggregation = aggregation
        if beta_init is None:
            beta_init = 1.0 / math.sqrt(head_dim) if score == "distance" else 1.0
        self.beta_init = float(beta_init)
        self.curvatures = nn.ModuleList(curvatures)
        if device is not None or dtype is not None:
            self.curvatures.to(device=device, dtype=dtype)
        total = len(curvatures) * num_heads
        self.beta_raw = nn.Parameter(torch.empty(total, device=device, dtype=dtype))
        self.gamma = nn.Parameter(torch.empty(total, device=device, dtype=dtype))
        self.reset_parameters()

    @property
    def num_groups(self) -> int:
        """``G``: the number of curvature groups (branches)."""
        return len(self.curvatures)

    def reset_parameters(self) -> None:
        """Curvatures back to their initial values, ``beta = beta_init``, ``gamma = 0``."""
        for c in self.curvatures:
            if isinstance(c, CurvatureModule):
                c.reset_parameters()
        with torch.no_grad():
            self.beta_raw.fill_(inverse_softplus(self.beta_init))
            self.gamma.zero_()

    def curvature(self) -> torch.Tensor:
        """Signed curvature of every head, ``[G * H]`` (group-major)."""
        return torch.cat([c().expand(self.num_heads) for c in self.curvatures])

    def beta(self) -> torch.Tensor:
        """Temperature of every head, ``[G * H]``, positive."""
        return F.softplus(self.beta_raw)

    @staticmethod
    def to_manifold(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Map tangent vectors at the origin onto the manifold: ``project(expmap0(u))``.

        ``k`` broadcasts against ``u`` with size 1 along the last dimension. ``project`` keeps points of
        the Poincaré ball off its boundary (where ``expmap0`` of a long vector rounds to); it is the
        identity for ``k >= 0``.
        """
        return project(expmap0(u, k=k), k=k)

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        *,
        key_padding_mask: torch.Tensor | None = None,
        attn_mask: torch.Tensor | None = None,
        causal: bool = False,
        dropout_p: float = 0.0,
        need_weights: bool = False,
        backend: Backend = "auto",
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention of tangent heads ``q, k, v`` ``[B, G*H, N|M, Dh]`` on each head's manifold.

        Maps the three onto the manifolds, runs :func:`geoattn.kernels.manifold_attention.manifold_attention`
        and maps the output back with ``logmap0``: returns tangent ``[B, G*H, N, Dh]`` and the weights
        ``[B, G*H, N, M]`` (or ``None``).
        """
        kappa = self.curvature()
        k4 = kappa.view(-1, 1, 1)
        out, attn = manifold_attention(
            self.to_manifold(q, k4),
            self.to_manifold(k, k4),
            self.to_manifold(v, k4),
            curvature=kappa,
            beta=self.beta(),
            gamma=self.gamma,
            score=self.score,
            aggregation=self.aggregation,
            key_padding_mask=key_padding_mask,
            attn_mask=attn_mask,
            causal=causal,
            dropout_p=dropout_p,
            need_weights=need_weights,
            backend=backend,
        )
        return logmap0(out, k=k4), attn

    def extra_repr(self) -> str:
        return (
            f"groups={self.num_groups}, num_heads={self.num_heads}, head_dim={self.head_dim}, "
            f"score={self.score!r}, aggregation={self.aggregation!r}"
        )
