# Triton-jitted functions are untyped by nature (their arguments are blocks, pointers or constexprs).
# mypy: disable-error-code="no-untyped-def, untyped-decorator"
r"""Elementary functions for Triton kernels, built from core ops (valid on GPU and in the interpreter).

Triton's interpreter has no libdevice and core Triton has no ``atan``/``atanh``/``tan``, so they are written
with ``log``/``exp``/``floor`` and Cephes polynomials. Shared by every kernel folder that needs the
curvature-scaled ratios of :mod:`geoattn.manifolds.stereographic`:

.. math::
    A(w) = \frac{\arctan\sqrt{w}}{\sqrt{w}},\qquad T(w) = \frac{\tan\sqrt{w}}{\sqrt{w}}

(``artanh``/``tanh`` for ``w < 0``, Taylor series for ``|w| <`` ``SERIES_THRESHOLD``) and their derivatives
:math:`A'`, :math:`T'`. Arguments are float32 blocks.
"""

from __future__ import annotations

import math

import triton
import triton.language as tl

from ..manifolds.numerics import SERIES_THRESHOLD

__all__ = [
    "artan_ratio",
    "artan_ratio_grad",
    "artan_ratio_of_sign",
    "atan_nonneg",
    "tan_nonneg",
    "tan_ratio",
    "tan_ratio_grad",
]

_SERIES: tl.constexpr = tl.constexpr(SERIES_THRESHOLD)
# The derivatives A'(w), T'(w) switch to their series further out than the values do (see artan_ratio_grad).
_GRAD_SERIES: tl.constexpr = tl.constexpr(0.2)
_HALF_PI: tl.constexpr = tl.constexpr(math.pi / 2)
_LN2: tl.constexpr = tl.constexpr(math.log(2.0))


@triton.jit
def atan_nonneg(z):
    """atan(z) for z >= 0, Cephes ``atanf``: reduce to |r| <= tan(pi/8) with atan(z) = pi/2 + atan(-1/z)
    (z > tan(3pi/8)) or pi/4 + atan((z-1)/(z+1)) (z > tan(pi/8)), then a degree-9 odd minimax polynomial
    (relative error < 2e-7). One division, no sqrt."""
    big = z > 2.414213562373095
    mid = z > 0.4142135623730950
    num = tl.where(big, -1.0, tl.where(mid, z - 1.0, z))
    den = tl.where(big, z, tl.where(mid, z + 1.0, 1.0))
    r = num / den
    r2 = r * r
    p = 8.05374449538e-2 * r2 - 1.38776856032e-1
    p = p * r2 + 1.99777106478e-1
    p = p * r2 - 3.33329491539e-1
    a = p * r2 * r + r
    return tl.where(big, _HALF_PI + a, tl.where(mid, _HALF_PI * 0.5 + a, a))


@triton.jit
def _artan_series(w, series):
    """The Taylor series of A: 1 - w/3 + w^2/5 - w^3/7 + w^4/9 - w^5/11 (lanes off ``series`` get A(0))."""
    ws = tl.where(series, w, 0.0)  # dead lanes get 0, not an overflowing power of w
    p = 1.0 / 9.0 - ws * (1.0 / 11.0)
    p = -1.0 / 7.0 + ws * p
    p = 1.0 / 5.0 + ws * p
    p = -1.0 / 3.0 + ws * p
    return 1.0 + ws * p


@triton.jit
def _log(x, FAST: tl.constexpr):
    """Natural log; ``FAST``: the hardware ``lg2.approx.f32`` (one MUFU op, absolute error < 2^-22 in log2
    units) times ln 2 instead of the ~20-instruction accurate ``log``. Compiled kernels only: the
    interpreter runs no inline PTX."""
    if FAST:
        lg2 = tl.inline_asm_elementwise(
            "lg2.approx.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True, pack=1
        )
        return lg2 * _LN2
    return tl.log(x)


@triton.jit
def _artanh_ratio(s, inv_s, artanh_bound, FAST_LOG: tl.constexpr):
    """artanh(min(s, bound)) / s for s = sqrt(-w) > 0, given inv_s = 1 / s."""
    z = tl.minimum(s, artanh_bound)
    return 0.5 * _log((1.0 + z) / (1.0 - z), FAST_LOG) * inv_s


@triton.jit
def artan_ratio(w, artanh_bound):
    """A(w) = atan(sqrt w)/sqrt w (w > 0), artanh(min(sqrt(-w), bound))/sqrt(-w) (w < 0), series near 0."""
    series = tl.abs(w) < _SERIES
    s = tl.sqrt(tl.maximum(tl.abs(w), _SERIES))  # safe in every lane; only used off the series branch
    inv_s = 1.0 / s
    exact = tl.where(w > 0, atan_nonneg(s) * inv_s, _artanh_ratio(s, inv_s, artanh_bound, False))
    return tl.where(series, _artan_series(w, series), exact)


@triton.jit
def artan_ratio_of_sign(w, k, artanh_bound, FAST_LOG: tl.constexpr):
    """:func:`artan_ratio` where every lane of ``w`` has the sign of the scalar ``k`` (``w = k u`` with
    ``u >= 0``, as in a distance epilogue with one curvature per program): the same values, but only the
    ``atan`` or the ``artanh`` branch is evaluated (a branch on a uniform scalar), about half the work.
    ``FAST_LOG`` (compiled kernels only) uses the hardware ``log2`` in the ``artanh`` branch, relative error
    < 1e-6 of ``A`` off the series range."""
    series = tl.abs(w) < _SERIES
    x = tl.maximum(tl.abs(w), _SERIES)
    inv_s = tl.rsqrt(x)  # one MUFU op for both sqrt(x) and its reciprocal
    s = x * inv_s
    if k > 0:  # noqa: SIM108 (a runtime branch in the kernel, kept as a statement)
        exact = atan_nonneg(s) * inv_s
    else:  # k < 0; for k = 0 every lane is on the series branch
        exact = _artanh_ratio(s, inv_s, artanh_bound, FAST_LOG)
    return tl.where(series, _artan_series(w, series), exact)


@triton.jit
def artan_ratio_grad(w, a, artanh_bound):
    """A'(w) given a = A(w): (R - A)/(2w) with R = 1/(1 + w), R = 0 where the artanh argument is clamped
    (A is then const/sqrt(-w)). R - A cancels for small |w| (relative error ~ 3 eps/|w|), so the series
    of A' is used up to |w| < _GRAD_SERIES (13 terms, truncation < 1e-9 relative)."""
    series = tl.abs(w) < _GRAD_SERIES
    clamped = (w < 0) & (tl.sqrt(tl.maximum(-w, 0.0)) > artanh_bound)
    w_safe = tl.where(series, 1.0, w)
    r = tl.where(clamped, 0.0, 1.0 / (1.0 + tl.where(clamped, 0.0, w_safe)))
    exact = (r - a) / (2.0 * w_safe)
    # sum_{n=1..13} (-1)^n n w^(n-1) / (2n + 1)
    ws = tl.where(series, w, 0.0)  # dead lanes get 0, not an overflowing power of w
    p = -13.0 / 27.0
    p = 12.0 / 25.0 + ws * p
    p = -11.0 / 23.0 + ws * p
    p = 10.0 / 21.0 + ws * p
    p = -9.0 / 19.0 + ws * p
    p = 8.0 / 17.0 + ws * p
    p = -7.0 / 15.0 + ws * p
    p = 6.0 / 13.0 + ws * p
    p = -5.0 / 11.0 + ws * p
    p = 4.0 / 9.0 + ws * p
    p = -3.0 / 7.0 + ws * p
    p = 2.0 / 5.0 + ws * p
    p = -1.0 / 3.0 + ws * p
    return tl.where(series, p, exact)


@triton.jit
def tan_nonneg(s):
    """tan(s) for s >= 0, Cephes ``tanf``: s = j pi/4 + z with even j and |z| <= pi/4 (pi/4 split in three
    parts for an exact reduction), a degree-13 odd minimax polynomial for tan(z) (relative error < 3e-7),
    and tan(s) = -1/tan(z) when j = 2 mod 4. Much less code than the accurate ``tl.sin``/``tl.cos``."""
    j = tl.floor(s * (4.0 / 3.141592653589793))
    j = j + (j - 2.0 * tl.floor(0.5 * j))  # round odd j up to even
    z = ((s - j * 0.78515625) - j * 2.4187564849853515625e-4) - j * 3.77489497744594108e-8
    zz = z * z
    p = 9.38540185543e-3 * zz + 3.11992232697e-3
    p = p * zz + 2.44301354525e-2
    p = p * zz + 5.34112807005e-2
    p = p * zz + 1.33387994085e-1
    p = p * zz + 3.33331568548e-1
    t = p * zz * z + z
    flip = (j - 4.0 * tl.floor(0.25 * j)) > 1.0  # j = 2 mod 4
    return tl.where(flip, -1.0 / tl.where(flip, t, 1.0), t)


@triton.jit
def tan_ratio(w):
    """T(w) = tan(sqrt w)/sqrt w (w > 0), tanh(sqrt(-w))/sqrt(-w) (w < 0), series near 0."""
    series = tl.abs(w) < _SERIES
    s = tl.sqrt(tl.maximum(tl.abs(w), _SERIES))
    pos = tan_nonneg(s) / s
    e = tl.exp(-2.0 * s)  # s >= 0.1 here, so no overflow and only mild cancellation in 1 - e
    neg = (1.0 - e) / ((1.0 + e) * s)
    # 1 + w/3 + 2w^2/15 + 17w^3/315 + 62w^4/2835 + 1382w^5/155925
    ws = tl.where(series, w, 0.0)  # dead lanes get 0, not an overflowing power of w
    p = 62.0 / 2835.0 + ws * (1382.0 / 155925.0)
    p = 17.0 / 315.0 + ws * p
    p = 2.0 / 15.0 + ws * p
    p = 1.0 / 3.0 + ws * p
    p = 1.0 + ws * p
    return tl.where(series, p, tl.where(w > 0, pos, neg))


@triton.jit
def tan_ratio_grad(w, t):
    """T'(w) given t = T(w): (1 + w T^2 - T)/(2w); as for A', the series (9 terms, truncation < 1e-9
    relative) is used for |w| < _GRAD_SERIES."""
    series = tl.abs(w) < _GRAD_SERIES
    w_safe = tl.where(series, 1.0, w)
    exact = (1.0 + w_safe * t * t - t) / (2.0 * w_safe)
    # d/dw of T's Taylor series: 1/3 + 4w/15 + 17w^2/105 + 248w^3/2835 + 1382w^4/31185 + ...
    ws = tl.where(series, w, 0.0)  # dead lanes get 0, not an overflowing power of w
    p = 443861162.0 / 206239658625.0
    p = 51236656.0 / 10854718875.0 + ws * p
    p = 929569.0 / 91216125.0 + ws * p
    p = 43688.0 / 2027025.0 + ws * p
    p = 1382.0 / 31185.0 + ws * p
    p = 248.0 / 2835.0 + ws * p
    p = 17.0 / 105.0 + ws * p
    p = 4.0 / 15.0 + ws * p
    p = 1.0 / 3.0 + ws * p
    return tl.where(series, p, exact)
