"""Dtype-dependent eps and clamp constants: the one place numerics guards are defined.

Every guard in geoattn (torch code and Triton kernels alike) reads its constant from here, so that a
float32 path and a float64 path differ only by these numbers and a change is made once.

Constants
---------
``MIN_NORM``
    Smallest vector norm used as a divisor (``x / ||x||``); below it a direction is taken as zero.
``BALL_EPS``
    Relative margin kept from the boundary of the Poincaré ball by :func:`geoattn.manifolds.project`
    (a point is kept at norm ``<= (1 - BALL_EPS) / sqrt(-k)``).
``ARTANH_CLAMP``
    ``artanh`` arguments are clamped to ``[-1 + ARTANH_CLAMP, 1 - ARTANH_CLAMP]``.
``SERIES_THRESHOLD``
    The curvature-scaled functions ``tan_k``/``artan_k`` are written as ``x * f(k x^2)``; for
    ``|k x^2| < SERIES_THRESHOLD`` the truncated Taylor series of ``f`` is used, so values *and* their
    derivatives (also with respect to ``k``) are continuous through ``k = 0`` instead of suffering the
    cancellation of ``tan(sqrt(k) x) / sqrt(k)`` for tiny ``k``. Truncation error of the 6-term series is
    below ``SERIES_THRESHOLD**6 / 13``, i.e. < 1e-12, negligible in both dtypes.
``MIN_DENOM``
    Smallest magnitude of a denominator that can vanish only at an ill-posed input (antipodal points on
    the sphere, a midpoint of weights summing to zero).
"""

from __future__ import annotations

import torch

__all__ = [
    "ARTANH_CLAMP",
    "BALL_EPS",
    "MIN_DENOM",
    "MIN_NORM",
    "SERIES_THRESHOLD",
    "artanh_clamp",
    "ball_eps",
    "min_denom",
    "min_norm",
]

MIN_NORM: dict[torch.dtype, float] = {
    torch.float16: 1e-4,
    torch.bfloat16: 1e-4,
    torch.float32: 1e-15,
    torch.float64: 1e-15,
}
BALL_EPS: dict[torch.dtype, float] = {
    torch.float16: 1e-2,
    torch.bfloat16: 1e-2,
    torch.float32: 4e-3,
    torch.float64: 1e-5,
}
ARTANH_CLAMP: dict[torch.dtype, float] = {
    torch.float16: 1e-3,
    torch.bfloat16: 1e-2,
    torch.float32: 1e-7,
    torch.float64: 1e-15,
}
MIN_DENOM: dict[torch.dtype, float] = {
    torch.float16: 1e-4,
    torch.bfloat16: 1e-4,
    torch.float32: 1e-10,
    torch.float64: 1e-20,
}
SERIES_THRESHOLD = 1e-2


def _lookup(table: dict[torch.dtype, float], dtype: torch.dtype, name: str) -> float:
    try:
        return table[dtype]
    except KeyError:
        accepted = ", ".join(str(d) for d in table)
        raise TypeError(f"{name}: unsupported dtype {dtype}; accepted floating dtypes: {accepted}") from None


def min_norm(dtype: torch.dtype) -> float:
    """``MIN_NORM`` for ``dtype``."""
    return _lookup(MIN_NORM, dtype, "min_norm")


def ball_eps(dtype: torch.dtype) -> float:
    """``BALL_EPS`` for ``dtype``."""
    return _lookup(BALL_EPS, dtype, "ball_eps")


def artanh_clamp(dtype: torch.dtype) -> float:
    """``ARTANH_CLAMP`` for ``dtype``."""
    return _lookup(ARTANH_CLAMP, dtype, "artanh_clamp")


def min_denom(dtype: torch.dtype) -> float:
    """``MIN_DENOM`` for ``dtype``."""
    return _lookup(MIN_DENOM, dtype, "min_denom")
