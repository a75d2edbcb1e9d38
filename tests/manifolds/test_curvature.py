"""Curvature parametrisations: signs, initial values, per-head shapes, gradients and errors."""

from __future__ import annotations

import pytest
import torch

from geoattn.manifolds import FixedCurvature, HyperbolicCurvature, SignedCurvature, SphericalCurvature


@pytest.mark.parametrize(
    "module,expected",
    [
        (FixedCurvature(-0.5), -0.5),
        (SignedCurvature(), 0.0),
        (SignedCurvature(0.3), 0.3),
        (HyperbolicCurvature(), -1.0),
        (HyperbolicCurvature(-2.5), -2.5),
        (SphericalCurvature(0.7), 0.7),
    ],
)
def test_initial_value_and_c(module: torch.nn.Module, expected: float) -> None:
    assert module().item() == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert module.c.item() == pytest.approx(-expected, rel=1e-6, abs=1e-7)  # type: ignore[union-attr]


def test_per_head_shape_and_gradients() -> None:
    k = HyperbolicCurvature(-1.0, shape=4)
    assert k().shape == (4,)
    (k().sum() * 2).backward()
    assert k.theta.grad is not None and torch.isfinite(k.theta.grad).all()


def test_sign_constraints_hold_after_large_steps() -> None:
    hyperbolic, spherical = HyperbolicCurvature(), SphericalCurvature()
    with torch.no_grad():
        hyperbolic.theta.fill_(-50.0)
        spherical.theta.fill_(-50.0)
    assert hyperbolic().item() < 0 and spherical().item() > 0


def test_signed_curvature_can_cross_zero() -> None:
    k = SignedCurvature(1e-3)
    optimizer = torch.optim.SGD(k.parameters(), lr=1.0)
    (k() * 1.0).backward()  # d/dtheta = 1: one step moves k to 1e-3 - 1
    optimizer.step()
    assert k().item() < 0


def test_fixed_curvature_has_no_parameters_and_follows_dtype() -> None:
    k = FixedCurvature(0.25, shape=(2,)).double()
    assert list(k.parameters()) == []
    assert k().dtype == torch.float64


def test_repr_shows_values() -> None:
    assert repr(HyperbolicCurvature(-2.0)) == "HyperbolicCurvature(k=[-2], shape=())"


@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda: HyperbolicCurvature(0.5), "init must be < 0"),
        (lambda: SphericalCurvature(-1.0), "init must be > 0"),
        (lambda: SignedCurvature(shape=(0,)), "positive sizes"),
    ],
)
def test_invalid_arguments(factory, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match):
        factory()


@pytest.mark.parametrize(
    "module,expected",
    [
        (FixedCurvature(-0.5, shape=2), -0.5),
        (SignedCurvature(0.3, shape=2), 0.3),
        (HyperbolicCurvature(-2.0, shape=2), -2.0),
        (SphericalCurvature(0.7, shape=2), 0.7),
    ],
)
def test_reset_parameters_restores_the_initial_curvature(module: torch.nn.Module, expected: float) -> None:
    with torch.no_grad():
        for t in (*module.parameters(), *module.buffers()):
            t.fill_(5.0)
    module.reset_parameters()  # type: ignore[operator]
    torch.testing.assert_close(module(), torch.full((2,), expected))
