r"""The query/key/value/output projections around a :class:`HeadGeometry`, shared by the dense modules."""

from __future__ import annotations

import torch
from torch import nn

from geoattn.kernels.backend import Backend

from .head_geometry import HeadGeometry

__all__ = ["ProjectedAttention"]


class ProjectedAttention(nn.Module):
    r"""Base of :class:`~geoattn.nn.ManifoldAttention` and :class:`~geoattn.nn.CurvatureAdaptiveAttention`.

    Holds ``q_proj``, ``k_proj``, ``v_proj`` (``D -> P * D``, ``P`` projection groups) and ``out_proj``
    (``P * D -> D``), and runs the projected heads through ``geometry``. A subclass sets ``dropout``,
    ``backend`` and ``geometry``, calls :meth:`_build_projections` where the projections are to be
    registered (so that their parameters are drawn and named as if it built them itself), and defines
    :meth:`_heads`.
    """

    dropout: float
    backend: Backend
    geometry: HeadGeometry
    q_proj: nn.Linear
    k_proj: nn.Linear
    v_proj: nn.Linear
    out_proj: nn.Linear

    def _build_projections(
        self,
        embed_dim: int,
        groups: int,
        *,
        bias: bool,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> None:
        """Create the four projections for ``groups`` projection groups."""
        width = groups * embed_dim
        self.q_proj = nn.Linear(embed_dim, width, bias=bias, device=device, dtype=dtype)
        self.k_proj = nn.Linear(embed_dim, width, bias=bias, device=device, dtype=dtype)
        self.v_proj = nn.Linear(embed_dim, width, bias=bias, device=device, dtype=dtype)
        self.out_proj = nn.Linear(width, embed_dim, bias=bias, device=device, dtype=dtype)

    def _projections(self) -> tuple[nn.Linear, nn.Linear, nn.Linear, nn.Linear]:
        """``(q_proj, k_proj, v_proj, out_proj)``."""
        return self.q_proj, self.k_proj, self.v_proj, self.out_proj

    def _reset_projections(self) -> None:
        """Default ``nn.Linear`` init for the four projections, in that order."""
        for lin in self._projections():
            lin.reset_parameters()

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """``[B, N, P * H * Dh]`` projections -> ``[B, G * H, N, Dh]`` heads of ``geometry`` (per subclass)."""
        raise NotImplementedError

    def _attend(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
        attn_mask: torch.Tensor | None,
        *,
        causal: bool,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Project ``x`` ``[B, N, D]`` into heads and attend (attention-weight dropout while training).

        Returns the tangent output ``[B, G*H, N, Dh]`` and the weights ``[B, G*H, N, N]`` (or ``None``), as
        :meth:`HeadGeometry.attend`.
        """
        return self.geometry.attend(
            self._heads(self.q_proj(x)),
            self._heads(self.k_proj(x)),
            self._heads(self.v_proj(x)),
            key_padding_mask=key_padding_mask,
            attn_mask=attn_mask,
            causal=causal,
            dropout_p=self.dropout if self.training else 0.0,
            need_weights=need_weights,
            backend=self.backend,
        )
