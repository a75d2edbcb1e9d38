r"""The κ-stereographic model: one signed curvature ``k`` for hyperbolic, Euclidean and spherical geometry.

Points live in :math:`\mathfrak{st}^d_k = \{x \in \mathbb{R}^d : k\|x\|^2 > -1\}`: the Poincaré ball of
radius :math:`1/\sqrt{-k}` for ``k < 0``, all of :math:`\mathbb{R}^d` for ``k = 0`` (Euclidean) and the
stereographically projected sphere for ``k > 0``. The gyrovector algebra (Möbius addition, conformal
factor, projection) comes from geoopt's ``geoopt.manifolds.stereographic.math``; this module adds the
curvature-scaled trigonometry in a form whose values *and gradients* (with respect to inputs and ``k``) stay
accurate through ``k = 0``.

Why not geoopt's ``tan_k``/``artan_k``: geoopt switches to its Taylor series only when ``k`` is within
``1e-8`` of zero. For ``1e-8 < |k| < 1e-3`` the exact branch ``tan(sqrt(k) x) / sqrt(k)`` differentiates
with catastrophic cancellation in float32 (``d/dk`` is a difference of terms of size ``x / |k|``), and for
``-1e-8 < k < 0`` its series uses ``|k|``, flipping the sign of ``d/dk``. Both matter for learnable
curvature initialised at or crossing zero. We write

.. math::
    \tan_k(x) = x\,T(kx^2),\qquad \operatorname{artan}_k(y) = y\,A(ky^2),

with :math:`T(w) = \tan\sqrt{w}/\sqrt{w}` (``w > 0``), :math:`\tanh\sqrt{-w}/\sqrt{-w}` (``w < 0``) and
:math:`A(w) = \arctan\sqrt{w}/\sqrt{w}`, :math:`\operatorname{artanh}\sqrt{-w}/\sqrt{-w}`, and use their
Taylor series for ``|w| < SERIES_THRESHOLD``. Both are smooth in ``w`` so no division by a norm is needed:
``expmap0(u) = u T(k|u|^2)`` is smooth even at ``u = 0``.

All functions take keyword-only ``k`` (a float or a tensor that broadcasts against the inputs, with size 1
along the vector dimension) and an explicit ``dim``.
"""

from __future__ import annotations

import torch
from geoopt.manifolds.stereographic import math as _geoopt_math

from .numerics import SERIES_THRESHOLD, artanh_clamp, ball_eps, min_denom, min_norm

__all__ = [
    "artan_k",
    "artan_ratio",
    "as_curvature",
    "dist",
    "expmap0",
    "gyro_sqnorm_diff",
    "lambda_x",
    "logmap0",
    "mobius_add",
    "mobius_scalar_mul",
    "project",
    "sqdist",
    "sqdist_from_gyro_sqnorm",
    "sqrt_guarded",
    "tan_k",
    "tan_ratio",
]

CurvatureLike = float | torch.Tensor

# Taylor coefficients of T(w) = tan(sqrt w)/sqrt w and A(w) = arctan(sqrt w)/sqrt w, lowest order first.
_TAN_SERIES = (1.0, 1 / 3, 2 / 15, 17 / 315, 62 / 2835, 1382 / 155925)
_ARTAN_SERIES = (1.0, -1 / 3, 1 / 5, -1 / 7, 1 / 9, -1 / 11)


def as_curvature(k: CurvatureLike, like: torch.Tensor) -> torch.Tensor:
    """Return ``k`` as a tensor with the dtype and device of ``like`` (no copy when it already is one)."""
    if isinstance(k, torch.Tensor):
        if not k.is_floating_point():
            raise TypeError(f"curvature k must be a floating tensor or a float, got a tensor of {k.dtype}")
        return k.to(dtype=like.dtype, device=like.device)
    if isinstance(k, bool) or not isinstance(k, int | float):
        raise TypeError(f"curvature k must be a float or a tensor, got {type(k).__name__}")
    return torch.tensor(float(k), dtype=like.dtype, device=like.device)


def _horner(w: torch.Tensor, coefficients: tuple[float, ...]) -> torch.Tensor:
    out = torch.full_like(w, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        out = out * w + c
    return out


def _split(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Masks and branch-safe square roots for ``w``: (series, positive, sqrt(w+), sqrt(-w-)).

    Each branch sees only arguments valid for it (the double-``where`` pattern), so no branch produces a
    NaN or inf whose gradient would leak through ``torch.where``.
    """
    series = w.abs() < SERIES_THRESHOLD
    positive = w > 0
    one = torch.ones_like(w)
    sqrt_pos = torch.where(positive & ~series, w, one).sqrt()
    sqrt_neg = torch.where(~positive & ~series, -w, one).sqrt()
    return series, positive, sqrt_pos, sqrt_neg


def tan_ratio(w: torch.Tensor) -> torch.Tensor:
    r""":math:`T(w)`: ``tan(sqrt w)/sqrt w`` for ``w > 0``, ``tanh(sqrt -w)/sqrt -w`` for ``w < 0``, ``T(0) = 1``."""
    series, positive, sqrt_pos, sqrt_neg = _split(w)
    exact = torch.where(positive, sqrt_pos.tan() / sqrt_pos, sqrt_neg.tanh() / sqrt_neg)
    return torch.where(series, _horner(torch.where(series, w, torch.zeros_like(w)), _TAN_SERIES), exact)


def artan_ratio(w: torch.Tensor) -> torch.Tensor:
    r""":math:`A(w)`: ``arctan(sqrt w)/sqrt w`` for ``w > 0``, ``artanh(sqrt -w)/sqrt -w`` for ``w < 0``, ``A(0) = 1``.

    The ``artanh`` argument is clamped below 1 by ``ARTANH_CLAMP`` (a point on the ball's boundary has
    infinite distance to the origin; this keeps it finite).
    """
    series, positive, sqrt_pos, sqrt_neg = _split(w)
    bound = 1.0 - artanh_clamp(w.dtype)
    artanh = sqrt_neg.clamp(max=bound).atanh()
    exact = torch.where(positive, sqrt_pos.atan() / sqrt_pos, artanh / sqrt_neg)
    return torch.where(series, _horner(torch.where(series, w, torch.zeros_like(w)), _ARTAN_SERIES), exact)


def tan_k(x: torch.Tensor, *, k: CurvatureLike) -> torch.Tensor:
    r"""Curvature-scaled tangent :math:`\tan_k(x)`: ``tanh`` for ``k < 0``, identity at 0, ``tan`` for ``k > 0``.

    :math:`\tan_k(x) = \tan(\sqrt{k}\,x)/\sqrt{k}`, continuous (with all derivatives) in ``k``. Elementwise.
    """
    kt = as_curvature(k, x)
    return x * tan_ratio(kt * x * x)


def artan_k(y: torch.Tensor, *, k: CurvatureLike) -> torch.Tensor:
    r"""Inverse of :func:`tan_k`: :math:`\operatorname{artan}_k(\tan_k(x)) = x`. Elementwise."""
    kt = as_curvature(k, y)
    return y * artan_ratio(kt * y * y)


def _sqnorm(x: torch.Tensor, dim: int) -> torch.Tensor:
    return (x * x).sum(dim=dim, keepdim=True)


def expmap0(u: torch.Tensor, *, k: CurvatureLike, dim: int = -1) -> torch.Tensor:
    r"""Exponential map at the origin: :math:`\exp_0^k(u) = \tan_k(\|u\|)\,u/\|u\| = u\,T(k\|u\|^2)`.

    Shapes: ``u`` is ``[..., D, ...]`` with the vector along ``dim``; ``k`` broadcasts against ``u`` with
    ``dim`` of size 1. Identity: ``logmap0(expmap0(u)) = u`` (for ``k > 0`` while ``sqrt(k)||u|| < pi/2``).
    """
    kt = as_curvature(k, u)
    return u * tan_ratio(kt * _sqnorm(u, dim))


def logmap0(y: torch.Tensor, *, k: CurvatureLike, dim: int = -1) -> torch.Tensor:
    r"""Logarithmic map at the origin: :math:`\log_0^k(y) = \operatorname{artan}_k(\|y\|)\,y/\|y\| = y\,A(k\|y\|^2)`.

    Shapes as :func:`expmap0`. Identity: ``expmap0(logmap0(y)) = y``.
    """
    kt = as_curvature(k, y)
    return y * artan_ratio(kt * _sqnorm(y, dim))


def mobius_scalar_mul(
    r: torch.Tensor | float, x: torch.Tensor, *, k: CurvatureLike, dim: int = -1
) -> torch.Tensor:
    r"""Möbius scalar multiplication :math:`r \otimes_k x = \tan_k(r\,\operatorname{artan}_k\|x\|)\,x/\|x\|`.

    Written without dividing by ``||x||``: with :math:`a = A(k\|x\|^2)`,
    :math:`r\otimes_k x = r\,a\,T(k\,r^2 a^2 \|x\|^2)\,x`. Identities: ``1 ⊗ x = x``, ``r ⊗ (s ⊗ x) = (rs) ⊗ x``;
    at ``k = 0`` it is ``r * x``. ``r`` broadcasts against ``x`` with ``dim`` of size 1.
    """
    kt = as_curvature(k, x)
    x2 = _sqnorm(x, dim)
    a = artan_ratio(kt * x2)
    r_a = r * a
    return r_a * tan_ratio(kt * r_a * r_a * x2) * x


def mobius_add(x: torch.Tensor, y: torch.Tensor, *, k: CurvatureLike, dim: int = -1) -> torch.Tensor:
    r"""Möbius addition :math:`x \oplus_k y` (geoopt's implementation).

    .. math::
        x \oplus_k y = \frac{(1 - 2k\langle x,y\rangle - k\|y\|^2)\,x + (1 + k\|x\|^2)\,y}
        {1 - 2k\langle x,y\rangle + k^2\|x\|^2\|y\|^2}

    Identities: ``0 ⊕ y = y``, ``(-x) ⊕ x = 0``; at ``k = 0`` it is ``x + y``.
    """
    return _geoopt_math.mobius_add(x, y, k=as_curvature(k, x), dim=dim)


def lambda_x(x: torch.Tensor, *, k: CurvatureLike, dim: int = -1, keepdim: bool = False) -> torch.Tensor:
    r"""Conformal factor :math:`\lambda_x^k = 2 / (1 + k\|x\|^2)` (geoopt's implementation)."""
    return _geoopt_math.lambda_x(x, k=as_curvature(k, x), dim=dim, keepdim=keepdim)


def project(x: torch.Tensor, *, k: CurvatureLike, dim: int = -1) -> torch.Tensor:
    """Pull points of the Poincaré ball (``k < 0``) inside radius ``(1 - BALL_EPS) / sqrt(-k)``.

    Identity for ``k >= 0`` (every point of the projected sphere and of R^d is valid). Uses geoopt's
    projection with geoattn's ``BALL_EPS`` for the dtype.
    """
    return _geoopt_math.project(x, k=as_curvature(k, x), dim=dim, eps=ball_eps(x.dtype))


def gyro_sqnorm_diff(gram: torch.Tensor, x2: torch.Tensor, y2: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    r""":math:`\|(-x)\oplus_k y\|^2` from the inner product and squared norms alone.

    .. math::
        \|(-x)\oplus_k y\|^2 = \frac{\|x\|^2 + \|y\|^2 - 2\langle x,y\rangle}
        {1 + 2k\langle x,y\rangle + k^2\|x\|^2\|y\|^2}

    The numerator is ``||x - y||^2`` (clamped at 0 against rounding); the denominator is
    :math:`\ge (1 - |k|\,\|x\|\|y\|)^2 \ge 0` and vanishes only for antipodal points of the sphere, where
    it is held at ``MIN_DENOM``. All arguments broadcast elementwise.
    """
    numerator = (x2 + y2 - 2.0 * gram).clamp_min(0.0)
    denominator = 1.0 + 2.0 * k * gram + k * k * x2 * y2
    return numerator / denominator.clamp_min(min_denom(gram.dtype))


def sqdist_from_gyro_sqnorm(u: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    r"""Squared distance from :math:`u = \|(-x)\oplus_k y\|^2`: :math:`d^2 = 4\,u\,A(k u)^2`.

    Smooth at ``u = 0`` (no square root), so gradients of squared distances are finite at ``x = y``.
    """
    a = artan_ratio(k * u)
    return 4.0 * u * a * a


def sqrt_guarded(d2: torch.Tensor) -> torch.Tensor:
    """``sqrt`` whose gradient is 0 (not inf/NaN) where ``d2 < MIN_NORM**2``, e.g. the distance of x to x."""
    tiny = min_norm(d2.dtype) ** 2
    positive = d2 > tiny
    return torch.where(positive, torch.where(positive, d2, torch.ones_like(d2)).sqrt(), torch.zeros_like(d2))


def sqdist(
    x: torch.Tensor, y: torch.Tensor, *, k: CurvatureLike, dim: int = -1, keepdim: bool = False
) -> torch.Tensor:
    r"""Squared geodesic distance :math:`d_k(x,y)^2`, broadcasting ``x`` against ``y``.

    :math:`d_k(x, y) = 2\operatorname{artan}_k\|(-x)\oplus_k y\|`. At ``k = 0`` the model is
    :math:`\mathbb{R}^d` with its metric scaled by 4 (conformal factor 2), so ``sqdist = 4 ||x - y||^2``.
    Smooth everywhere, including at ``x = y``.
    """
    kt = as_curvature(k, x)
    gram = (x * y).sum(dim=dim, keepdim=True)
    u = gyro_sqnorm_diff(gram, _sqnorm(x, dim), _sqnorm(y, dim), kt)
    d2 = sqdist_from_gyro_sqnorm(u, kt)
    return d2 if keepdim else d2.squeeze(dim)


def dist(
    x: torch.Tensor, y: torch.Tensor, *, k: CurvatureLike, dim: int = -1, keepdim: bool = False
) -> torch.Tensor:
    r"""Geodesic distance :math:`d_k(x, y) = 2\operatorname{artan}_k\|(-x)\oplus_k y\|`, broadcasting.

    Equals geoopt's ``dist``; symmetric; ``dist(x, x) = 0`` with gradient 0 there; satisfies the triangle
    inequality. At ``k = 0`` it is ``2 ||x - y||`` (the κ-stereographic model's Euclidean metric is scaled by
    4, i.e. the conformal factor ``lambda = 2``).
    """
    return sqrt_guarded(sqdist(x, y, k=k, dim=dim, keepdim=keepdim))
