"""The manifold-attention op: reference against independent computations, Euclidean limits, masks, backends."""

from __future__ import annotations

import math

import pytest
import torch
from geoopt.manifolds.stereographic import math as gmath
from torch.nn import functional as F

import geoattn.manifolds as gm
from geoattn.environment import kernel_backend
from geoattn.kernels import KERNELS, triton_implemented
from geoattn.kernels.manifold_attention import (
    TRITON_IMPLEMENTED,
    manifold_attention,
    manifold_attention_reference,
)

CURVATURES = (-1.3, 0.0, 0.7)  # one per head: hyperbolic, Euclidean, spherical in one call


def _points(
    shape: tuple[int, ...], curvature: torch.Tensor, generator: torch.Generator, scale: float = 0.5
) -> torch.Tensor:
    """Points on each head's manifold: expmap0 of small tangent vectors (heads on dim 1)."""
    u = torch.randn(shape, generator=generator, dtype=curvature.dtype) * scale
    return gm.expmap0(u, k=curvature.view(-1, 1, 1))


def _inputs(
    dtype: torch.dtype = torch.float64,
    b: int = 2,
    n: int = 4,
    m: int = 5,
    d: int = 3,
    seed: int = 0,
    scale: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    kappa = torch.tensor(CURVATURES, dtype=dtype)
    h = kappa.numel()
    return (
        _points((b, h, n, d), kappa, g, scale),
        _points((b, h, m, d), kappa, g, scale),
        _points((b, h, m, d), kappa, g, scale),
        kappa,
    )


def test_reference_matches_geoopt_distances_and_midpoints() -> None:
    """Scores from geoopt's dist per pair, softmax, then geoopt's weighted_midpoint per row and head.

    Points stay within one hemisphere for k > 0, where geoopt's midpoint and ours agree (beyond it geoopt
    picks the antipode by summed distances, ours by the embedded mean; see ``gyro_midpoint``).
    """
    q, k, v, kappa = _inputs(scale=0.25)
    assert ((v * v).sum(-1) * kappa.view(-1, 1) < 1).all()
    beta = torch.tensor([0.7, 1.1, 0.4], dtype=torch.float64)
    gamma = torch.tensor([0.3, -0.2, 0.0], dtype=torch.float64)
    out, attn = manifold_attention_reference(
        q, k, v, curvature=kappa, beta=beta, gamma=gamma, need_weights=True
    )
    assert attn is not None
    for h, kh in enumerate(kappa):
        d2 = gmath.dist(q[:, h, :, None, :], k[:, h, None, :, :], k=kh) ** 2  # [B, N, M]
        weights = torch.softmax(-beta[h] * d2 - gamma[h], dim=-1)
        torch.testing.assert_close(attn[:, h], weights)
        for b in range(q.shape[0]):
            for i in range(q.shape[2]):
                expected = gmath.weighted_midpoint(v[b, h], weights[b, i], k=kh, reducedim=[0])
                torch.testing.assert_close(out[b, h, i], expected, rtol=1e-8, atol=1e-10)


def test_tangent_dot_and_tangent_mean_are_sdpa_at_zero_curvature() -> None:
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=g, dtype=torch.float64) for _ in range(3))
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])
    for causal in (False, True):
        out, _ = manifold_attention_reference(
            q,
            k,
            v,
            curvature=0.0,
            beta=1.0,
            gamma=0.0,
            score="tangent_dot",
            aggregation="tangent",
            key_padding_mask=pad,
            causal=causal,
        )
        allowed = ~pad[:, None, None, :]
        if causal:
            allowed = allowed & torch.ones(5, 5, dtype=torch.bool).tril()
        torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, attn_mask=allowed))


def test_distance_score_is_euclidean_distance_attention_at_zero_curvature() -> None:
    """At k = 0: softmax(-beta * 4 ||q - k||^2 - gamma) @ v (the metric is 4x Euclidean; midpoint = mean)."""
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(2, 2, 4, 3, generator=g, dtype=torch.float64) for _ in range(3))
    beta = torch.tensor([0.3, 0.8], dtype=torch.float64)
    out, _ = manifold_attention_reference(q, k, v, curvature=0.0, beta=beta, gamma=0.5)
    weights = torch.softmax(-beta.view(-1, 1, 1) * 4 * torch.cdist(q, k) ** 2 - 0.5, dim=-1)
    torch.testing.assert_close(out, weights @ v)


def test_gamma_cancels_in_the_softmax() -> None:
    q, k, v, kappa = _inputs()
    a, _ = manifold_attention_reference(q, k, v, curvature=kappa, beta=1.0, gamma=0.0)
    b, _ = manifold_attention_reference(
        q, k, v, curvature=kappa, beta=1.0, gamma=torch.tensor([3.0, -2.0, 7.0])
    )
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("score", ["distance", "tangent_dot"])
@pytest.mark.parametrize("aggregation", ["midpoint", "tangent"])
def test_continuous_in_curvature_through_zero(score: str, aggregation: str) -> None:
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(1, 2, 3, 4, generator=g) * 0.5 for _ in range(3))
    outs = [
        manifold_attention_reference(
            q,
            k,
            v,
            curvature=c,
            beta=1.0,
            gamma=0.0,
            score=score,
            aggregation=aggregation,  # type: ignore[arg-type]
        )[0]
        for c in (-1e-6, 0.0, 1e-6)
    ]
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(outs[2], outs[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("score", ["distance", "tangent_dot"])
@pytest.mark.parametrize("aggregation", ["midpoint", "tangent"])
def test_gradcheck_inputs_curvature_and_temperature(score: str, aggregation: str) -> None:
    q, k, v, kappa = _inputs(b=1, n=2, m=3, d=2, seed=4)
    beta = torch.tensor([0.5, 1.0, 0.8], dtype=torch.float64)
    args = tuple(t.clone().requires_grad_() for t in (q, k, v, kappa, beta))

    def f(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, c: torch.Tensor, b: torch.Tensor
    ) -> torch.Tensor:
        return manifold_attention_reference(
            q,
            k,
            v,
            curvature=c,
            beta=b,
            gamma=0.1,
            score=score,
            aggregation=aggregation,  # type: ignore[arg-type]
        )[0]

    assert torch.autograd.gradcheck(f, args)


def test_key_padding_positions_do_not_affect_other_outputs() -> None:
    q, k, v, kappa = _inputs(seed=5)
    pad = torch.zeros(2, 5, dtype=torch.bool)
    pad[1, 3:] = True
    base, attn = manifold_attention_reference(
        q, k, v, curvature=kappa, beta=1.0, gamma=0.0, key_padding_mask=pad, need_weights=True
    )
    k2, v2 = k.clone(), v.clone()
    k2[1, :, 3:] = k2[1, :, 3:] * 0.3
    v2[1, :, 3:] = -v2[1, :, 3:]
    moved, _ = manifold_attention_reference(
        q, k2, v2, curvature=kappa, beta=1.0, gamma=0.0, key_padding_mask=pad
    )
    torch.testing.assert_close(moved, base)
    assert attn is not None and (attn[1, ..., 3:] == 0).all()


def test_causal_outputs_ignore_later_positions() -> None:
    q, k, v, kappa = _inputs(n=5, m=5, seed=6)
    base, _ = manifold_attention_reference(q, k, v, curvature=kappa, beta=1.0, gamma=0.0, causal=True)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 3:] = k2[:, :, 3:] * 0.5
    v2[:, :, 3:] = -v2[:, :, 3:]
    moved, _ = manifold_attention_reference(q, k2, v2, curvature=kappa, beta=1.0, gamma=0.0, causal=True)
    torch.testing.assert_close(moved[:, :, :3], base[:, :, :3])
    assert not torch.allclose(moved[:, :, 3:], base[:, :, 3:])


def test_bool_and_additive_masks_agree() -> None:
    q, k, v, kappa = _inputs(seed=7)
    blocked = torch.rand(4, 5, generator=torch.Generator().manual_seed(0)) < 0.4
    blocked[:, 0] = False
    additive = torch.zeros(4, 5, dtype=torch.float64).masked_fill(blocked, float("-inf"))
    a, _ = manifold_attention_reference(q, k, v, curvature=kappa, beta=1.0, gamma=0.0, attn_mask=blocked)
    b, _ = manifold_attention_reference(q, k, v, curvature=kappa, beta=1.0, gamma=0.0, attn_mask=additive)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("aggregation", ["midpoint", "tangent"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fully_masked_rows_give_the_origin_without_nan(aggregation: str, dtype: torch.dtype) -> None:
    q, k, v, kappa = (t.to(dtype) for t in _inputs(seed=8))
    q, k, v, kappa = (t.requires_grad_() for t in (q, k, v, kappa))
    pad = torch.zeros(2, 5, dtype=torch.bool)
    pad[0] = True  # every key of batch element 0 is padding
    out, attn = manifold_attention_reference(
        q,
        k,
        v,
        curvature=kappa,
        beta=1.0,
        gamma=0.0,
        aggregation=aggregation,  # type: ignore[arg-type]
        key_padding_mask=pad,
        need_weights=True,
    )
    assert attn is not None
    assert (out[0] == 0).all() and (attn[0] == 0).all()
    torch.testing.assert_close(attn[1].sum(-1), torch.ones_like(attn[1].sum(-1)))
    grads = torch.autograd.grad(out.sum(), (q, k, v, kappa))
    assert all(torch.isfinite(gr).all() for gr in grads)


def test_need_weights_rows_sum_to_one_and_dropout_is_applied_after() -> None:
    q, k, v, kappa = _inputs(seed=9)
    plain, none = manifold_attention_reference(q, k, v, curvature=kappa, beta=1.0, gamma=0.0)
    assert none is None
    torch.manual_seed(0)
    dropped, attn = manifold_attention_reference(
        q, k, v, curvature=kappa, beta=1.0, gamma=0.0, dropout_p=0.5, need_weights=True
    )
    assert attn is not None
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 3, 4, dtype=torch.float64))
    assert not torch.allclose(dropped, plain)


def test_public_op_validates_the_backend() -> None:
    q, k, v, kappa = _inputs(seed=10)
    expected, _ = manifold_attention_reference(q, k, v, curvature=kappa, beta=1.0, gamma=0.0)
    for backend in ("auto", "torch"):
        out, _ = manifold_attention(q, k, v, curvature=kappa, beta=1.0, gamma=0.0, backend=backend)  # type: ignore[arg-type]
        torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="backend must be one of"):
        manifold_attention(q, k, v, curvature=kappa, beta=1.0, gamma=0.0, backend="cuda")  # type: ignore[arg-type]


def test_triton_flag_registry_and_environment_report_agree() -> None:
    assert "manifold_attention" in KERNELS
    assert TRITON_IMPLEMENTED is True
    assert triton_implemented("manifold_attention") is TRITON_IMPLEMENTED
    assert kernel_backend("manifold_attention", cuda=False) == "torch reference (no CUDA device)"
    assert kernel_backend("manifold_attention", cuda=True).startswith("triton (CUDA tensors)")


def test_compiles_without_graph_breaks() -> None:
    q, k, v, kappa = _inputs(dtype=torch.float32, seed=11)
    pad = torch.zeros(2, 5, dtype=torch.bool)
    pad[0, -1] = True

    def f(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return manifold_attention(
            q, k, v, curvature=c, beta=0.5, gamma=0.0, key_padding_mask=pad, causal=True
        )[0]

    compiled = torch.compile(f, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(q, k, v, kappa), f(q, k, v, kappa))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"q": torch.zeros(2, 3, 4)}, ValueError, "q must be a floating tensor"),
        ({"k": torch.zeros(2, 3, 5, 2, dtype=torch.float64)}, ValueError, "expected q"),
        ({"v": torch.zeros(2, 3, 5, 3)}, TypeError, "share dtype"),
        ({"curvature": torch.zeros(2)}, ValueError, "curvature must be"),
        ({"beta": torch.zeros(3, 1)}, ValueError, "beta must be"),
        ({"score": "cosine"}, ValueError, "score must be one of"),
        ({"aggregation": "max"}, ValueError, "aggregation must be one of"),
        ({"key_padding_mask": torch.zeros(2, 4, dtype=torch.bool)}, ValueError, "key_padding_mask"),
        ({"key_padding_mask": torch.zeros(2, 5)}, ValueError, "key_padding_mask"),
        ({"attn_mask": torch.zeros(3, 5, dtype=torch.bool)}, ValueError, "attn_mask of shape"),
        ({"attn_mask": torch.zeros(4, 5, dtype=torch.int64)}, TypeError, "attn_mask must be bool"),
        ({"dropout_p": 1.0}, ValueError, "dropout_p"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs: dict, error: type[Exception], match: str) -> None:  # type: ignore[type-arg]
    q, k, v, kappa = _inputs()
    args = {"q": q, "k": k, "v": v, "curvature": kappa, "beta": 1.0, "gamma": 0.0, **kwargs}
    with pytest.raises(error, match=match):
        manifold_attention(**args)


def test_beta_scales_distance_scores() -> None:
    """A larger temperature sharpens the weights towards the nearest key."""
    q, k, v, kappa = _inputs(seed=12)
    _, soft = manifold_attention_reference(q, k, v, curvature=kappa, beta=0.1, gamma=0.0, need_weights=True)
    _, sharp = manifold_attention_reference(q, k, v, curvature=kappa, beta=50.0, gamma=0.0, need_weights=True)
    assert soft is not None and sharp is not None
    assert (sharp.amax(-1) > soft.amax(-1)).all()
    assert math.isclose(float(sharp.amax(-1).min()), 1.0, abs_tol=0.2) or (sharp.amax(-1) > 0.5).all()
