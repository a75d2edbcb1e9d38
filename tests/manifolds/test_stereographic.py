"""Identities of the κ-stereographic functions, agreement with geoopt, and continuity through k = 0."""

from __future__ import annotations

import math

import manifolds_helpers as helpers
import pytest
import torch
from geoopt.manifolds.stereographic import math as gmath

import geoattn.manifolds as gm
from geoattn.manifolds import numerics
from geoattn.manifolds.stereographic import artan_ratio, tan_ratio

CURVATURES, DTYPES, TOLERANCE = helpers.CURVATURES, helpers.DTYPES, helpers.TOLERANCE


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", CURVATURES)
def test_logmap0_inverts_expmap0(seed: int, dtype: torch.dtype, k: float) -> None:
    g = torch.Generator().manual_seed(seed)
    # tangent vectors short enough that sqrt(k)|u| < pi/2 on the sphere (expmap0 is a bijection there)
    u = torch.randn(16, 5, generator=g, dtype=dtype) * 0.3
    y = gm.expmap0(u, k=k)
    torch.testing.assert_close(gm.logmap0(y, k=k), u, rtol=TOLERANCE[dtype] * 10, atol=TOLERANCE[dtype])
    torch.testing.assert_close(
        gm.expmap0(gm.logmap0(y, k=k), k=k), y, rtol=TOLERANCE[dtype] * 10, atol=TOLERANCE[dtype]
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", CURVATURES)
def test_artan_k_inverts_tan_k(dtype: torch.dtype, k: float) -> None:
    x = torch.linspace(-1.2, 1.2, 101, dtype=dtype)
    torch.testing.assert_close(
        gm.artan_k(gm.tan_k(x, k=k), k=k),
        x,
        rtol=1e-5 if dtype == torch.float32 else 1e-12,
        atol=1e-6 if dtype == torch.float32 else 1e-12,
    )


@pytest.mark.parametrize("k", [-1.5, -0.3, 0.0, 0.8, 2.0])
def test_matches_geoopt(k: float) -> None:
    """expmap0, logmap0, mobius_scalar_mul and dist agree with geoopt's implementation in float64."""
    g = torch.Generator().manual_seed(3)
    kt = torch.tensor(k, dtype=torch.float64)
    u = torch.randn(32, 4, generator=g, dtype=torch.float64) * 0.4
    x = helpers.random_points((32, 4), k, torch.float64, generator=g)
    y = helpers.random_points((32, 4), k, torch.float64, generator=g)
    torch.testing.assert_close(gm.expmap0(u, k=k), gmath.expmap0(u, k=kt), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gm.logmap0(x, k=k), gmath.logmap0(x, k=kt), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        gm.mobius_scalar_mul(0.3, x, k=k),
        gmath.mobius_scalar_mul(torch.tensor(0.3, dtype=torch.float64), x, k=kt),
        rtol=1e-10,
        atol=1e-12,
    )
    torch.testing.assert_close(gm.dist(x, y, k=k), gmath.dist(x, y, k=kt), rtol=1e-9, atol=1e-10)


def test_euclidean_limit() -> None:
    """At k = 0 the model is R^d with metric 4<.,.>: expmap0/logmap0 are identities, d = 2||x - y||."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(10, 3, generator=g, dtype=torch.float64)
    y = torch.randn(10, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(gm.expmap0(x, k=0.0), x)
    torch.testing.assert_close(gm.logmap0(x, k=0.0), x)
    torch.testing.assert_close(gm.mobius_add(x, y, k=0.0), x + y)
    torch.testing.assert_close(gm.mobius_scalar_mul(2.5, x, k=0.0), 2.5 * x)
    torch.testing.assert_close(gm.dist(x, y, k=0.0), 2 * (x - y).norm(dim=-1))


@pytest.mark.parametrize("dtype", DTYPES)
def test_values_and_curvature_gradients_continuous_through_zero(dtype: torch.dtype) -> None:
    """dist(x, y) and d dist / d k at k = ±delta converge to their k = 0 values as delta -> 0."""
    g = torch.Generator().manual_seed(5)
    x = helpers.random_points((8, 3), 0.0, dtype, generator=g, radius=0.9)
    y = helpers.random_points((8, 3), 0.0, dtype, generator=g, radius=0.9)

    def value_and_kgrad(k: float) -> tuple[torch.Tensor, torch.Tensor]:
        kt = torch.tensor(k, dtype=dtype, requires_grad=True)
        d = gm.dist(x, y, k=kt)
        (grad,) = torch.autograd.grad(d.sum(), kt)
        return d.detach(), grad

    d0, g0 = value_and_kgrad(0.0)
    # analytic d/dk at k = 0: with s = ||x - y|| and g = <x, y>, d = 2 s A(k s^2) / sqrt(1 + 2kg + ...)
    # gives d'(0) = 2 (-s g - s^3 / 3)
    s = (x - y).norm(dim=-1)
    torch.testing.assert_close(g0, (2 * (-s * (x * y).sum(-1) - s**3 / 3)).sum(), rtol=1e-4, atol=1e-5)
    for delta in (1e-7, 1e-4, 1e-3):
        for sign in (-1.0, 1.0):
            d, grad = value_and_kgrad(sign * delta)
            tol = 10 * delta + (1e-5 if dtype == torch.float32 else 1e-10)
            torch.testing.assert_close(d, d0, rtol=0, atol=tol)
            torch.testing.assert_close(grad, g0, rtol=0, atol=tol * 50)


def _closed_tan(w: torch.Tensor) -> torch.Tensor:
    s = w.abs().sqrt()
    return torch.where(w > 0, s.tan() / s, s.tanh() / s)


def _closed_artan(w: torch.Tensor) -> torch.Tensor:
    s = w.abs().sqrt()
    return torch.where(w > 0, s.atan() / s, s.atanh() / s)


@pytest.mark.parametrize("fn,closed", [(tan_ratio, _closed_tan), (artan_ratio, _closed_artan)])
def test_series_switch_is_seamless(fn, closed) -> None:  # type: ignore[no-untyped-def]
    """Around ±SERIES_THRESHOLD, values match the closed form and gradients match finite differences."""
    t = numerics.SERIES_THRESHOLD
    w = torch.cat([torch.linspace(0.5 * t, 2 * t, 41), -torch.linspace(0.5 * t, 2 * t, 41)]).double()
    torch.testing.assert_close(fn(w), closed(w), rtol=1e-13, atol=1e-13)
    w.requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(w).sum(), w)
    h = 1e-6
    finite_difference = (closed(w.detach() + h) - closed(w.detach() - h)) / (2 * h)
    torch.testing.assert_close(grad, finite_difference, rtol=1e-7, atol=1e-8)


def test_tan_ratio_closed_forms() -> None:
    w = torch.tensor([0.5, -0.5, 2.0, -0.9], dtype=torch.float64)
    torch.testing.assert_close(tan_ratio(w), _closed_tan(w))
    torch.testing.assert_close(artan_ratio(w), _closed_artan(w))
    assert tan_ratio(torch.zeros(1, dtype=torch.float64)).item() == 1.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [-1.0, -4.0])
def test_finite_gradients_near_the_boundary(dtype: torch.dtype, k: float) -> None:
    """Points at 0.999 of the ball radius (and the origin) give finite values and gradients for x, y and k."""
    radius = 1 / math.sqrt(-k)
    g = torch.Generator().manual_seed(6)
    direction = torch.randn(6, 4, generator=g, dtype=dtype)
    direction = direction / direction.norm(dim=-1, keepdim=True)
    x = (direction * 0.999 * radius).requires_grad_()
    y = torch.cat([torch.zeros(1, 4, dtype=dtype), -direction[1:] * 0.999 * radius]).requires_grad_()
    kt = torch.tensor(k, dtype=dtype, requires_grad=True)
    for value in (gm.dist(x, y, k=kt), gm.logmap0(x, k=kt).norm(dim=-1), gm.sqdist(x, x, k=kt)):
        grads = torch.autograd.grad(value.sum(), (x, y, kt), allow_unused=True)
        assert torch.isfinite(value).all()
        assert all(gr is None or torch.isfinite(gr).all() for gr in grads)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_at_the_origin_are_finite(dtype: torch.dtype) -> None:
    u = torch.zeros(3, 4, dtype=dtype, requires_grad=True)
    for k in CURVATURES:
        out = gm.expmap0(u, k=k) + gm.logmap0(u, k=k) + gm.mobius_scalar_mul(0.5, u, k=k)
        (grad,) = torch.autograd.grad(out.sum(), u)
        assert torch.isfinite(grad).all()
        torch.testing.assert_close(grad, torch.full_like(grad, 2.5))


def test_project_keeps_points_inside_the_ball() -> None:
    x = torch.tensor([[2.0, 0.0], [0.1, 0.0]], dtype=torch.float64)
    projected = gm.project(x, k=-1.0)
    assert projected[0].norm() < 1.0
    assert projected[0].norm() == pytest.approx(1 - numerics.ball_eps(torch.float64))
    torch.testing.assert_close(projected[1], x[1])
    torch.testing.assert_close(gm.project(x, k=0.5), x)


def test_curvature_argument_errors() -> None:
    x = torch.zeros(2, 3)
    with pytest.raises(TypeError, match="curvature k must be a float or a tensor"):
        gm.expmap0(x, k="hyperbolic")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="floating tensor"):
        gm.expmap0(x, k=torch.tensor(1))


def test_unsupported_dtype_names_what_is_accepted() -> None:
    with pytest.raises(TypeError, match=r"unsupported dtype torch\.int64; accepted"):
        numerics.min_norm(torch.int64)
