"""ManifoldAttention: Euclidean limits (SDPA, distance attention), continuity in k, masks, curvature learning."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from geoattn.manifolds import FixedCurvature, HyperbolicCurvature, SignedCurvature, SphericalCurvature
from geoattn.nn import ManifoldAttention

B, N, D, H = 2, 5, 8, 2


def _x(dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    return torch.randn(B, N, D, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _heads(t: torch.Tensor) -> torch.Tensor:
    return t.view(B, N, H, D // H).transpose(1, 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("curvature", [-1.0, 0.0, 0.5])
def test_shapes_dtypes_and_weights(dtype: torch.dtype, curvature: float) -> None:
    torch.manual_seed(0)
    attn = ManifoldAttention(D, H, curvature=curvature, dtype=dtype)
    x = _x(dtype)
    y, w = attn(x, need_weights=True)
    assert y.shape == (B, N, D) and y.dtype == dtype and w.shape == (B, H, N, N)
    torch.testing.assert_close(w.sum(-1), torch.ones(B, H, N, dtype=dtype))
    assert torch.isfinite(y).all()


def test_tangent_dot_at_zero_curvature_is_scaled_dot_product_attention() -> None:
    torch.manual_seed(1)
    attn = ManifoldAttention(D, H, curvature=0.0, score="tangent_dot", aggregation="tangent").double()
    x = _x(torch.float64)
    pad = torch.tensor([[False] * N, [False, False, False, True, True]])
    for causal in (False, True):
        q, k, v = (_heads(p(x)) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
        allowed = ~pad[:, None, None, :]
        if causal:
            allowed = allowed & torch.ones(N, N, dtype=torch.bool).tril()
        sdpa = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        expected = attn.out_proj(sdpa.transpose(1, 2).reshape(B, N, D))
        torch.testing.assert_close(attn(x, pad, is_causal=causal), expected)


def test_distance_score_at_zero_curvature_is_euclidean_distance_attention() -> None:
    """softmax(-beta * 4 ||q - k||^2 - gamma) and the weighted mean, per head."""
    torch.manual_seed(2)
    attn = ManifoldAttention(D, H, curvature=0.0).double()
    with torch.no_grad():
        attn.geometry.beta_raw.copy_(torch.tensor([0.2, -1.0]))
        attn.geometry.gamma.copy_(torch.tensor([0.5, -0.3]))
    x = _x(torch.float64)
    q, k, v = (_heads(p(x)) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
    beta = attn.geometry.beta().view(-1, 1, 1)
    gamma = attn.geometry.gamma.view(-1, 1, 1)
    weights = torch.softmax(-beta * 4 * torch.cdist(q, k) ** 2 - gamma, dim=-1)
    expected = attn.out_proj((weights @ v).transpose(1, 2).reshape(B, N, D))
    torch.testing.assert_close(attn(x), expected)


@pytest.mark.parametrize("score", ["distance", "tangent_dot"])
@pytest.mark.parametrize("aggregation", ["midpoint", "tangent"])
def test_outputs_are_continuous_through_zero_curvature(score: str, aggregation: str) -> None:
    x = _x()
    outs = []
    for k in (-1e-6, 0.0, 1e-6):
        torch.manual_seed(3)
        attn = ManifoldAttention(D, H, curvature=k, score=score, aggregation=aggregation)  # type: ignore[arg-type]
        outs.append(attn(x))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(outs[2], outs[1], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"curvature": 0.0, "learnable_curvature": True},
        {"curvature": -0.5, "learnable_curvature": True},
        {"curvature": HyperbolicCurvature(-1.0, shape=H)},
        {"curvature": SphericalCurvature(0.5)},
    ],
)
def test_curvature_is_learned(kwargs: dict) -> None:  # type: ignore[type-arg]
    torch.manual_seed(4)
    attn = ManifoldAttention(D, H, **kwargs)
    attn(_x()).pow(2).sum().backward()
    theta = dict(attn.named_parameters())["geometry.curvatures.0.theta"]
    assert theta.grad is not None and torch.isfinite(theta.grad).all() and theta.grad.abs().sum() > 0
    beta = attn.geometry.beta_raw.grad
    assert beta is not None and beta.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in attn.parameters())


def test_fixed_curvature_has_no_curvature_parameter() -> None:
    attn = ManifoldAttention(D, H, curvature=-1.0)
    assert not [n for n in dict(attn.named_parameters()) if "curvature" in n]
    torch.testing.assert_close(attn.curvature(), torch.full((H,), -1.0))


@pytest.mark.parametrize("curvature", [-1.0, 0.0, 1.0])
def test_padding_does_not_affect_other_positions(curvature: float) -> None:
    torch.manual_seed(5)
    attn = ManifoldAttention(D, H, curvature=curvature)
    x = _x()
    pad = torch.zeros(B, N, dtype=torch.bool)
    pad[0, 3:] = True
    base = attn(x, pad)
    x2 = x.clone()
    x2[0, 3:] = torch.randn(2, D) * 3
    moved = attn(x2, pad)
    torch.testing.assert_close(moved[0, :3], base[0, :3])
    torch.testing.assert_close(moved[1], base[1])


def test_causal_mask_and_explicit_mask() -> None:
    torch.manual_seed(6)
    attn = ManifoldAttention(D, H, curvature=-1.0)
    x = _x()
    base = attn(x, is_causal=True)
    x2 = x.clone()
    x2[:, 3:] = -x2[:, 3:]
    torch.testing.assert_close(attn(x2, is_causal=True)[:, :3], base[:, :3])
    future = torch.ones(N, N, dtype=torch.bool).triu(1)
    torch.testing.assert_close(attn(x, attn_mask=future), base)
    additive = torch.zeros(N, N).masked_fill(future, float("-inf"))
    torch.testing.assert_close(attn(x, attn_mask=additive), base)


def test_all_keys_masked_gives_the_output_bias_without_nan() -> None:
    torch.manual_seed(7)
    attn = ManifoldAttention(D, H, curvature=-1.0)
    pad = torch.ones(B, N, dtype=torch.bool)
    y = attn(_x(), pad)
    torch.testing.assert_close(y, attn.out_proj.bias.expand(B, N, D))


def test_dropout_only_while_training_and_inputs_untouched() -> None:
    torch.manual_seed(8)
    attn = ManifoldAttention(D, H, curvature=-1.0, dropout=0.5)
    x = _x()
    before, version = x.clone(), x._version
    attn.eval()
    torch.testing.assert_close(attn(x), attn(x))
    attn.train()
    assert not torch.allclose(attn(x), attn(x))
    assert torch.equal(x, before) and x._version == version


def test_reset_parameters_restores_initial_state() -> None:
    attn = ManifoldAttention(D, H, curvature=-0.5, learnable_curvature=True, beta_init=0.3)
    with torch.no_grad():
        attn.geometry.curvatures[0].theta.fill_(2.0)  # type: ignore[operator]
        attn.geometry.beta_raw.fill_(5.0)
        attn.geometry.gamma.fill_(1.0)
    w = attn.q_proj.weight.clone()
    attn.reset_parameters()
    torch.testing.assert_close(attn.curvature(), torch.full((H,), -0.5))
    torch.testing.assert_close(attn.geometry.beta(), torch.full((H,), 0.3))
    assert (attn.geometry.gamma == 0).all() and not torch.equal(attn.q_proj.weight, w)


def test_default_temperature_depends_on_the_score() -> None:
    assert ManifoldAttention(D, H).geometry.beta_init == pytest.approx((D // H) ** -0.5)
    assert ManifoldAttention(D, H, score="tangent_dot").geometry.beta_init == 1.0


def test_bias_false_and_signed_curvature_module() -> None:
    attn = ManifoldAttention(D, H, bias=False, curvature=SignedCurvature(0.2, shape=H))
    assert attn.q_proj.bias is None and attn.out_proj.bias is None
    assert attn(_x()).shape == (B, N, D)


def test_compiles_without_graph_breaks() -> None:
    torch.manual_seed(9)
    attn = ManifoldAttention(D, H, curvature=-1.0, learnable_curvature=True)
    x = _x()
    pad = torch.zeros(B, N, dtype=torch.bool)
    pad[1, -1] = True
    compiled = torch.compile(attn, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x, pad, is_causal=True), attn(x, pad, is_causal=True))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"embed_dim": 7}, ValueError, "multiple of num_heads"),
        ({"dropout": 1.5}, ValueError, "dropout"),
        ({"curvature": FixedCurvature(-1.0), "learnable_curvature": True}, ValueError, "learnable_curvature"),
        ({"curvature": "hyperbolic"}, TypeError, "curvature must be a float"),
        ({"curvature": HyperbolicCurvature(shape=3)}, ValueError, "shape"),
        ({"score": "cosine"}, ValueError, "score must be one of"),
        ({"aggregation": "sum"}, ValueError, "aggregation must be one of"),
        ({"beta_init": 0.0}, ValueError, "beta_init"),
    ],
)
def test_invalid_arguments(kwargs: dict, error: type[Exception], match: str) -> None:  # type: ignore[type-arg]
    args = {"embed_dim": D, "num_heads": H, **kwargs}
    with pytest.raises(error, match=match):
        ManifoldAttention(**args)


def test_wrong_input_shape_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"x must have shape \[B, N, 8\]"):
        ManifoldAttention(D, H)(torch.zeros(N, D))
