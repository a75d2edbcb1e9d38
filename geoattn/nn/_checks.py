r"""Constructor and input checks shared by geoattn's attention modules, with their exact error messages.

Every function takes ``owner``, the name of the calling class, and starts its message with it.
"""

from __future__ import annotations

import torch

from geoattn.manifolds import CurvatureModule, FixedCurvature, SignedCurvature

__all__ = ["check_dropout", "check_heads", "check_tokens", "head_curvature"]


def check_heads(owner: str, embed_dim: int, num_heads: int) -> None:
    """``ValueError`` unless ``embed_dim`` is a positive multiple of ``num_heads`` (both positive)."""
    if embed_dim < 1 or num_heads < 1 or embed_dim % num_heads:
        raise ValueError(
            f"{owner}: embed_dim must be a positive multiple of num_heads, got {embed_dim} and {num_heads}"
        )


def check_dropout(owner: str, dropout: float) -> None:
    """``ValueError`` unless ``0 <= dropout < 1``."""
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{owner}: dropout must be in [0, 1), got {dropout}")


def check_tokens(owner: str, x: torch.Tensor, embed_dim: int) -> None:
    """``ValueError`` unless ``x`` has shape ``[B, N, embed_dim]``."""
    if x.dim() != 3 or x.shape[-1] != embed_dim:
        raise ValueError(f"{owner}: x must have shape [B, N, {embed_dim}], got {tuple(x.shape)}")


def head_curvature(
    owner: str, curvature: float | CurvatureModule, learnable: bool, num_heads: int
) -> CurvatureModule:
    """The curvature module of a single-geometry layer with ``num_heads`` heads.

    A :class:`CurvatureModule` is used as given (``learnable`` must then be ``False``: the module decides
    itself whether it is learnable). A float ``k`` of any sign becomes one curvature per head starting at
    ``k``: :class:`SignedCurvature` (learnable, free to change sign) with ``learnable``, otherwise
    :class:`FixedCurvature`. Anything else (``bool`` included) raises ``TypeError``.
    """
    if isinstance(curvature, CurvatureModule):
        if learnable:
            raise ValueError(
                f"{owner}: learnable_curvature=True applies to a float curvature; a curvature module "
                "decides itself whether it is learnable"
            )
        return curvature
    if isinstance(curvature, int | float) and not isinstance(curvature, bool):
        if learnable:
            return SignedCurvature(float(curvature), shape=num_heads)
        return FixedCurvature(float(curvature), shape=num_heads)
    raise TypeError(
        f"{owner}: curvature must be a float or a CurvatureModule, got {type(curvature).__name__}"
    )
