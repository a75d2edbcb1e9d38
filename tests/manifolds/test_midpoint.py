"""Weighted gyro-midpoints: identities, the Euclidean limit, agreement with geoopt, finite gradients."""

from __future__ import annotations

import pytest
import torch
from geoopt.manifolds.stereographic import math as gmath

import geoattn.manifolds as gm


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [-1.5, -1e-7, 0.0, 1e-7, 0.8])
def test_midpoint_of_identical_points_is_that_point(dtype: torch.dtype, k: float) -> None:
    g = torch.Generator().manual_seed(0)
    point = gm.expmap0(torch.randn(1, 4, generator=g, dtype=dtype) * 0.5, k=k)
    values = point.expand(6, 4)
    weights = torch.rand(3, 6, generator=g, dtype=dtype)
    torch.testing.assert_close(
        gm.gyro_midpoint(weights, values, k=k), point.expand(3, 4), rtol=1e-5, atol=1e-6
    )


def test_euclidean_limit_is_the_weighted_mean() -> None:
    g = torch.Generator().manual_seed(1)
    values = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    weights = torch.rand(2, 4, 5, generator=g, dtype=torch.float64)
    expected = weights @ values / weights.sum(-1, keepdim=True)
    torch.testing.assert_close(gm.gyro_midpoint(weights, values, k=0.0), expected)


@pytest.mark.parametrize("k", [-1.0, -0.2, 0.0, 0.5])
def test_one_hot_weights_select_a_point(k: float) -> None:
    g = torch.Generator().manual_seed(2)
    values = gm.expmap0(torch.randn(5, 3, generator=g, dtype=torch.float64) * 0.6, k=k)
    weights = torch.eye(5, dtype=torch.float64)
    torch.testing.assert_close(gm.gyro_midpoint(weights, values, k=k), values)


@pytest.mark.parametrize("k", [-2.0, -0.5, 0.0, 0.5, 1.5])
def test_matches_geoopt_weighted_midpoint(k: float) -> None:
    """Row by row, the matrix form equals geoopt's weighted_midpoint (points in one hemisphere for k > 0)."""
    g = torch.Generator().manual_seed(3)
    values = gm.expmap0(torch.randn(7, 4, generator=g, dtype=torch.float64) * 0.4, k=k)
    weights = torch.rand(3, 7, generator=g, dtype=torch.float64)
    ours = gm.gyro_midpoint(weights, values, k=k)
    kt = torch.tensor(k, dtype=torch.float64)
    for i in range(3):
        ref = gmath.weighted_midpoint(values, weights[i], k=kt, reducedim=[0])
        torch.testing.assert_close(ours[i], ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_are_finite_near_the_boundary(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(4)
    direction = torch.nn.functional.normalize(torch.randn(5, 3, generator=g, dtype=dtype), dim=-1)
    values = (direction * 0.999).requires_grad_()
    weights = torch.softmax(torch.randn(2, 5, generator=g, dtype=dtype), -1).requires_grad_()
    k = torch.tensor(-1.0, dtype=dtype, requires_grad=True)
    out = gm.gyro_midpoint(weights, values, k=k)
    grads = torch.autograd.grad(out.sum(), (weights, values, k))
    assert torch.isfinite(out).all() and all(torch.isfinite(gr).all() for gr in grads)
    assert (out.norm(dim=-1) < 1.0).all()


def test_mismatched_sizes_are_an_error() -> None:
    with pytest.raises(ValueError, match="need the same M"):
        gm.gyro_midpoint(torch.rand(2, 3), torch.rand(4, 5), k=-1.0)


def test_spherical_midpoint_beyond_the_equator_is_the_embedded_mean() -> None:
    """For k > 0, points past the equator (||y||^2 > 1/k) average to the sphere point nearest their mean in
    R^{d+1}, not to its antipode."""
    k = 1.0
    angles = torch.tensor([2.2, 2.6], dtype=torch.float64)  # both beyond pi/2 from the origin's pole
    values = torch.stack([torch.tan(angles / 2) / k**0.5, torch.zeros(2, dtype=torch.float64)], dim=-1)
    out = gm.gyro_midpoint(torch.ones(1, 2, dtype=torch.float64), values, k=k)
    expected_angle = angles.mean()  # equal weights on a great circle: the arc midpoint
    torch.testing.assert_close(
        out[0], torch.stack([torch.tan(expected_angle / 2), torch.tensor(0.0).double()])
    )


@pytest.mark.parametrize("k", [-1.0, 0.0, 0.6])
def test_scatter_sums_of_the_summands_give_the_midpoint(k: float) -> None:
    """Graph layers sum midpoint_summands over edges and finish with midpoint_from_sums: same as the matrix form."""
    g = torch.Generator().manual_seed(5)
    values = gm.expmap0(torch.randn(6, 3, generator=g, dtype=torch.float64) * 0.5, k=k)
    weights = torch.rand(4, 6, generator=g, dtype=torch.float64)
    target, source = weights.nonzero(as_tuple=True)
    scaled, lam_minus_one = gm.midpoint_summands(values, k=k)
    w = weights[target, source].unsqueeze(-1)
    numerator = torch.zeros(4, 3, dtype=torch.float64).index_add(0, target, w * scaled[source])
    denominator = torch.zeros(4, 1, dtype=torch.float64).index_add(0, target, w * lam_minus_one[source])
    torch.testing.assert_close(
        gm.midpoint_from_sums(numerator, denominator, k=k), gm.gyro_midpoint(weights, values, k=k)
    )


@pytest.mark.parametrize("k", [-1.0, 0.0, 0.6])
def test_all_zero_weights_give_the_origin_with_finite_gradients(k: float) -> None:
    values = gm.expmap0(torch.randn(3, 2, dtype=torch.float64) * 0.5, k=k).requires_grad_()
    weights = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    out = gm.gyro_midpoint(weights, values, k=k)
    assert (out == 0).all()
    grads = torch.autograd.grad(out.sum(), (weights, values))
    assert all(torch.isfinite(gr).all() for gr in grads)
