"""Pairwise distance matrices from the Gram matrix: agreement with geoopt, metric axioms, per-row curvature."""

from __future__ import annotations

import manifolds_helpers as helpers
import pytest
import torch
from geoopt.manifolds.stereographic import math as gmath

import geoattn.manifolds as gm

# geoopt replaces k by |k| for -1e-8 < k < 0, so compare with it away from that sliver.
GEOOPT_CURVATURES = [-1.5, -0.05, 0.0, 1e-7, 0.8]


def _geoopt_pairwise(x: torch.Tensor, y: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return gmath.dist(x.unsqueeze(-2), y.unsqueeze(-3), k=k)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("k", GEOOPT_CURVATURES)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-8), (torch.float32, 1e-5)])
def test_values_and_gradients_match_geoopt(seed: int, k: float, dtype: torch.dtype, tol: float) -> None:
    """Ours in ``dtype`` against geoopt's broadcast dist in float64 (geoopt's own float32 gradient with
    respect to a tiny k suffers the cancellation our series avoids, so it is no reference there)."""
    g = torch.Generator().manual_seed(seed)
    x64 = helpers.random_points((2, 7, 5), k, torch.float64, generator=g)
    y64 = helpers.random_points((2, 9, 5), k, torch.float64, generator=g)
    weights = torch.randn(2, 7, 9, generator=g, dtype=torch.float64)
    x, y = x64.to(dtype).requires_grad_(), y64.to(dtype).requires_grad_()
    k_ours = torch.tensor(k, dtype=dtype, requires_grad=True)
    x64.requires_grad_()
    y64.requires_grad_()
    k_ref = torch.tensor(k, dtype=torch.float64, requires_grad=True)
    ours = gm.pairwise_dist(x, y, k=k_ours)
    ref = _geoopt_pairwise(x64, y64, k_ref)
    torch.testing.assert_close(ours, ref.to(dtype), rtol=tol, atol=tol)
    grads_ours = torch.autograd.grad((ours * weights.to(dtype)).sum(), (x, y, k_ours))
    grads_ref = torch.autograd.grad((ref * weights).sum(), (x64, y64, k_ref))
    for a, b in zip(grads_ours, grads_ref, strict=True):
        torch.testing.assert_close(a, b.to(dtype), rtol=tol * 10, atol=tol * 10)


@pytest.mark.parametrize("dtype", helpers.DTYPES)
@pytest.mark.parametrize("k", helpers.CURVATURES)
def test_metric_axioms(dtype: torch.dtype, k: float) -> None:
    """Symmetry, zero self-distance (up to the Gram cancellation) and the triangle inequality."""
    g = torch.Generator().manual_seed(7)
    x = helpers.random_points((12, 4), k, dtype, generator=g)
    d = gm.pairwise_dist(x, x, k=k)
    torch.testing.assert_close(d, d.T, rtol=1e-5, atol=1e-5 if dtype == torch.float32 else 1e-10)
    self_tol = 2e-3 if dtype == torch.float32 else 1e-7  # O(sqrt(eps)): see geoattn.manifolds.distance
    assert d.diagonal().abs().max() < self_tol
    slack = 1e-4 if dtype == torch.float32 else 1e-9
    assert (d[:, None, :] <= d[:, :, None] + d[None, :, :] + slack).all()  # d(i,j) <= d(i,m) + d(m,j)


@pytest.mark.parametrize("dtype", helpers.DTYPES)
def test_per_row_curvature_matches_row_by_row(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(8)
    ks = torch.tensor([-2.0, -0.5, 0.0, 0.3, 1.2], dtype=dtype)
    x = torch.stack([helpers.random_points((3,), float(k), dtype, generator=g) for k in ks])
    y = helpers.random_points((6, 3), 0.0, dtype, generator=g) * 0.4
    d = gm.pairwise_dist(x, y, k=ks[:, None])
    for i, k in enumerate(ks):
        torch.testing.assert_close(d[i], gm.pairwise_dist(x[i : i + 1], y, k=k)[0])


@pytest.mark.parametrize("dtype", helpers.DTYPES)
def test_tangent_y_equals_explicit_expmap0_per_row(dtype: torch.dtype) -> None:
    """y_tangent=True maps y onto each row's own manifold; compare with building [N, M, D] explicitly."""
    g = torch.Generator().manual_seed(9)
    ks = torch.tensor([-1.0, -0.1, 0.0, 0.5], dtype=dtype)
    x = torch.stack([helpers.random_points((4,), float(k), dtype, generator=g) for k in ks])
    v = torch.randn(5, 4, generator=g, dtype=dtype) * 0.5
    y_per_row = gm.expmap0(v.unsqueeze(0), k=ks[:, None, None])  # [N, M, D]
    explicit = gm.dist(x.unsqueeze(1), y_per_row, k=ks[:, None, None])
    torch.testing.assert_close(gm.pairwise_dist(x, v, k=ks[:, None], y_tangent=True), explicit)


def test_per_head_curvature_broadcasts() -> None:
    g = torch.Generator().manual_seed(10)
    q = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64) * 0.2
    kv = torch.randn(2, 3, 6, 5, generator=g, dtype=torch.float64) * 0.2
    k = torch.tensor([-1.0, 0.0, 1.0], dtype=torch.float64).view(1, 3, 1, 1)
    d = gm.pairwise_dist(q, kv, k=k)
    assert d.shape == (2, 3, 4, 6)
    for h in range(3):
        torch.testing.assert_close(d[:, h], gm.pairwise_dist(q[:, h], kv[:, h], k=float(k[0, h, 0, 0])))


def test_squared_distance_has_finite_gradient_at_coincident_points() -> None:
    x = torch.tensor([[0.1, 0.2], [0.3, -0.1]], dtype=torch.float64, requires_grad=True)
    for fn in (gm.pairwise_sqdist, gm.pairwise_dist):
        (grad,) = torch.autograd.grad(fn(x, x.detach().clone(), k=-1.0).sum(), x)
        assert torch.isfinite(grad).all()


def test_no_n_m_d_intermediate() -> None:
    """A 2000 x 3000 x 64 problem would need 3 GB as [N, M, D] float64; the Gram path needs ~50 MB."""
    x = torch.randn(2000, 64, dtype=torch.float64) * 0.01
    y = torch.randn(3000, 64, dtype=torch.float64) * 0.01
    assert gm.pairwise_dist(x, y, k=-1.0).shape == (2000, 3000)


@pytest.mark.parametrize(
    "x_shape,y_shape,k,error,match",
    [
        ((3, 4), (5, 3), -1.0, ValueError, "need the same D"),
        ((4,), (5, 4), -1.0, ValueError, r"x must have shape \[..., n, D\]"),
        ((3, 4), (5, 4), torch.zeros(5), ValueError, r"must broadcast to \[..., N, 1\]"),
        ((3, 4), (5, 4), torch.zeros(3, 5), ValueError, r"must broadcast to \[..., N, 1\]"),
    ],
)
def test_bad_inputs_get_clear_errors(x_shape, y_shape, k, error, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=match):
        gm.pairwise_dist(torch.zeros(x_shape), torch.zeros(y_shape), k=k)


def test_dtype_mismatch_is_an_error() -> None:
    with pytest.raises(TypeError, match="share a dtype"):
        gm.pairwise_dist(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float64), k=0.0)
