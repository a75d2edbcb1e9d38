"""CurvatureAdaptiveAttention: routing, branch composition, parameter overhead, regularisers, masks."""

from __future__ import annotations

import math

import pytest
import torch

from geoattn.nn import (
    BRANCHES,
    CurvatureAdaptiveAttention,
    GeometryRouter,
    ManifoldAttention,
    routing_entropy,
    routing_load_balance,
    routing_regularizer,
)

B, N, D, H = 2, 5, 8, 2


def _x(dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    return torch.randn(B, N, D, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _randomise_router(router: GeometryRouter, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        router.lin2.weight.copy_(torch.randn(router.lin2.weight.shape, generator=g))
        router.lin2.bias.copy_(torch.randn(router.lin2.bias.shape, generator=g))


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shapes_and_routing_weights_sum_to_one(shared: bool, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    cat = CurvatureAdaptiveAttention(D, H, shared_projections=shared, dtype=dtype)
    y, alpha = cat(_x(dtype), return_routing=True)
    assert y.shape == (B, N, D) and y.dtype == dtype and alpha.shape == (B, N, 3)
    torch.testing.assert_close(alpha, torch.full_like(alpha, 1 / 3))  # zero-initialised router
    _randomise_router(cat.router)
    y, alpha = cat(_x(dtype), return_routing=True)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(B, N, dtype=dtype))
    assert (alpha >= 0).all() and torch.isfinite(y).all()
    assert BRANCHES == ("euclidean", "hyperbolic", "spherical")


def test_top1_routing_is_one_hot_with_straight_through_gradients() -> None:
    torch.manual_seed(1)
    cat = CurvatureAdaptiveAttention(D, H, routing="top1")
    _randomise_router(cat.router)
    y, alpha = cat(_x(), return_routing=True)
    torch.testing.assert_close(alpha, torch.nn.functional.one_hot(alpha.argmax(-1), 3).float())
    y.pow(2).sum().backward()
    assert cat.router.lin2.weight.grad is not None and cat.router.lin2.weight.grad.abs().sum() > 0


def test_router_temperature_smooths_the_routing() -> None:
    x = _x()
    spreads = []
    for temperature in (0.1, 1.0, 10.0):
        router = GeometryRouter(D, temperature=temperature)
        torch.manual_seed(2)
        router.reset_parameters()
        _randomise_router(router)
        spreads.append(float(router(x).detach().amax(-1).mean()))
    assert spreads[0] > spreads[1] > spreads[2] > 1 / 3


def _force_branch(cat: CurvatureAdaptiveAttention, branch: int) -> None:
    """Route every token to one branch (a large bias on its logit)."""
    with torch.no_grad():
        cat.router.lin2.bias.copy_(torch.nn.functional.one_hot(torch.tensor(branch), 3) * 100.0)


@pytest.mark.parametrize("branch", [0, 1, 2])
@pytest.mark.parametrize("shared", [True, False])
def test_a_fully_routed_token_gets_that_branchs_manifold_attention(branch: int, shared: bool) -> None:
    """Routing weight 1 on branch b: the output is ManifoldAttention at b's curvature with b's weights."""
    torch.manual_seed(3)
    cat = CurvatureAdaptiveAttention(D, H, shared_projections=shared, learnable_curvature=False).double()
    with torch.no_grad():
        cat.geometry.beta_raw.copy_(torch.randn(3 * H))
    _force_branch(cat, branch)
    curvature = (0.0, -1.0, 1.0)[branch]
    single = ManifoldAttention(D, H, curvature=curvature).double()
    rows = slice(0, D) if shared else slice(branch * D, (branch + 1) * D)
    with torch.no_grad():
        for name in ("q_proj", "k_proj", "v_proj"):
            getattr(single, name).weight.copy_(getattr(cat, name).weight[rows])
            getattr(single, name).bias.copy_(getattr(cat, name).bias[rows])
        single.out_proj.weight.copy_(cat.out_proj.weight[:, rows])
        single.out_proj.bias.copy_(cat.out_proj.bias)
        single.geometry.beta_raw.copy_(cat.geometry.beta_raw[branch * H : (branch + 1) * H])
    x = _x(torch.float64)
    torch.testing.assert_close(cat(x), single(x))


def test_parameter_overhead_shared_versus_per_branch() -> None:
    """Exact counts for D = 64, H = 4 (router hidden 16): 6.7% shared, 206% per-branch projections."""
    d, h, hidden = 64, 4, 16
    linear = d * d + d
    baseline = 4 * linear + 2 * h  # projections + beta, gamma per head
    router = d * hidden + hidden + hidden * 3 + 3
    geometry = 3 * 2 * h + 2 * h  # beta, gamma per branch and head + learnable hyperbolic/spherical k
    shared = CurvatureAdaptiveAttention(d, h).parameter_report()
    assert (shared.baseline, shared.router, shared.geometry) == (baseline, router, geometry)
    assert shared.total == 4 * linear + router + geometry
    assert shared.overhead == pytest.approx(1091 / 16648 + 32 / 16648 - 8 / 16648)
    assert 0.05 < shared.overhead < 0.07
    per_branch = CurvatureAdaptiveAttention(d, h, shared_projections=False).parameter_report()
    projections = 3 * (3 * d * d + 3 * d) + (3 * d * d + d)
    assert per_branch.projections == projections
    assert per_branch.total == projections + router + geometry
    assert per_branch.overhead == pytest.approx(per_branch.total / baseline - 1)
    assert 2.0 < per_branch.overhead < 2.1
    fixed = CurvatureAdaptiveAttention(d, h, learnable_curvature=False).parameter_report()
    assert fixed.geometry == 3 * 2 * h
    assert fixed.total == sum(
        p.numel() for p in CurvatureAdaptiveAttention(d, h, learnable_curvature=False).parameters()
    )


def test_curvatures_are_learned_with_their_signs() -> None:
    torch.manual_seed(4)
    cat = CurvatureAdaptiveAttention(D, H, hyperbolic_curvature=-0.5, spherical_curvature=2.0)
    _randomise_router(cat.router)
    kappa = cat.curvature()
    assert kappa.shape == (3, H)
    torch.testing.assert_close(kappa, torch.tensor([[0.0] * H, [-0.5] * H, [2.0] * H]))
    cat(_x()).pow(2).sum().backward()
    params = dict(cat.named_parameters())
    for name in ("geometry.curvatures.1.theta", "geometry.curvatures.2.theta"):
        grad = params[name].grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert "geometry.curvatures.0.theta" not in params  # the Euclidean branch stays flat
    frozen = CurvatureAdaptiveAttention(D, H, learnable_curvature=False)
    assert not [n for n, _ in frozen.named_parameters() if "curvatures" in n]


@pytest.mark.parametrize("score,aggregation", [("tangent_dot", "tangent"), ("distance", "tangent")])
def test_score_and_aggregation_options(score: str, aggregation: str) -> None:
    torch.manual_seed(5)
    cat = CurvatureAdaptiveAttention(D, H, score=score, aggregation=aggregation)  # type: ignore[arg-type]
    y = cat(_x())
    assert y.shape == (B, N, D) and torch.isfinite(y).all()
    assert cat.geometry.score == score and cat.geometry.aggregation == aggregation


def test_padding_and_causal_masks() -> None:
    torch.manual_seed(6)
    cat = CurvatureAdaptiveAttention(D, H)
    _randomise_router(cat.router)
    x = _x()
    pad = torch.zeros(B, N, dtype=torch.bool)
    pad[1, 2:] = True
    base = cat(x, pad)
    x2 = x.clone()
    x2[1, 2:] = torch.randn(3, D)
    torch.testing.assert_close(cat(x2, pad)[1, :2], base[1, :2])
    causal = cat(x, is_causal=True)
    x3 = x.clone()
    x3[:, 4] = 10.0
    torch.testing.assert_close(cat(x3, is_causal=True)[:, :4], causal[:, :4])
    torch.testing.assert_close(cat(x, attn_mask=torch.ones(N, N, dtype=torch.bool).triu(1)), causal)


def test_dropout_only_while_training() -> None:
    torch.manual_seed(7)
    cat = CurvatureAdaptiveAttention(D, H, dropout=0.5).eval()
    x = _x()
    torch.testing.assert_close(cat(x), cat(x))
    cat.train()
    assert not torch.allclose(cat(x), cat(x))


def test_routing_regularisers() -> None:
    uniform = torch.full((B, N, 3), 1 / 3)
    one_branch = torch.zeros(B, N, 3)
    one_branch[..., 1] = 1.0
    assert routing_load_balance(uniform).item() == pytest.approx(0.0, abs=1e-6)
    assert routing_load_balance(one_branch).item() == pytest.approx(2.0)
    assert routing_entropy(uniform).item() == pytest.approx(math.log(3))
    assert routing_entropy(one_branch).item() == pytest.approx(0.0, abs=1e-6)
    # balanced on average although every token is decisive
    mixed = torch.cat([torch.eye(3), torch.eye(3)])[None]  # [1, 6, 3]: tokens cycle through the branches
    assert routing_load_balance(mixed).item() == pytest.approx(0.0, abs=1e-6)
    # padded tokens are left out
    pad = torch.zeros(B, N, dtype=torch.bool)
    pad[:, 1:] = True
    skewed = uniform.clone()
    skewed[:, 1:] = one_branch[:, 1:]
    assert routing_load_balance(skewed, pad).item() == pytest.approx(0.0, abs=1e-6)
    assert routing_entropy(skewed, pad).item() == pytest.approx(math.log(3))
    # leading (layer) dimensions are averaged; graph-node routing [N, 3] works without a mask
    stacked = torch.stack([uniform, one_branch])
    assert routing_load_balance(stacked).item() == pytest.approx(1.0)
    assert routing_load_balance(one_branch[0]).item() == pytest.approx(2.0)
    combined = routing_regularizer(one_branch, load_balance_weight=0.5, entropy_weight=2.0)
    assert combined.item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="key_padding_mask must have shape"):
        routing_load_balance(uniform, torch.zeros(N, B, dtype=torch.bool))


def test_regulariser_trains_the_router() -> None:
    torch.manual_seed(8)
    cat = CurvatureAdaptiveAttention(D, H)
    _randomise_router(cat.router)
    _, alpha = cat(_x(), return_routing=True)
    loss = cat.routing_regularizer(alpha, entropy_weight=0.1)
    loss.backward()
    assert cat.router.lin1.weight.grad is not None and cat.router.lin1.weight.grad.abs().sum() > 0


def test_reset_parameters_restores_uniform_routing() -> None:
    cat = CurvatureAdaptiveAttention(D, H)
    _randomise_router(cat.router)
    with torch.no_grad():
        cat.geometry.curvatures[1].theta.fill_(3.0)  # type: ignore[operator]
    cat.reset_parameters()
    _, alpha = cat(_x(), return_routing=True)
    torch.testing.assert_close(alpha, torch.full_like(alpha, 1 / 3))
    torch.testing.assert_close(cat.curvature()[1], torch.full((H,), -1.0))


def test_compiles_without_graph_breaks() -> None:
    torch.manual_seed(9)
    cat = CurvatureAdaptiveAttention(D, H, routing="top1")
    _randomise_router(cat.router)
    x = _x()
    pad = torch.zeros(B, N, dtype=torch.bool)
    pad[0, -1] = True
    compiled = torch.compile(cat, fullgraph=True, backend="eager")
    y, alpha = compiled(x, pad, return_routing=True)
    y_ref, alpha_ref = cat(x, pad, return_routing=True)
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(alpha, alpha_ref)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"hyperbolic_curvature": 0.0}, "hyperbolic_curvature must be < 0"),
        ({"spherical_curvature": -1.0}, "spherical_curvature must be > 0"),
        ({"routing": "top2"}, "routing must be one of"),
        ({"router_temperature": 0.0}, "temperature must be > 0"),
        ({"router_hidden": 0}, "hidden must be >= 1"),
        ({"num_heads": 3}, "multiple of num_heads"),
        ({"dropout": -0.1}, "dropout"),
    ],
)
def test_invalid_arguments(kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    args = {"embed_dim": D, "num_heads": H, **kwargs}
    with pytest.raises(ValueError, match=match):
        CurvatureAdaptiveAttention(**args)


@pytest.mark.parametrize("causal", [False, True])
def test_shared_core_equals_the_general_path(causal: bool) -> None:
    """Shared projections + distance + midpoint go through cat_attention; an all-False attn_mask forces the
    general path (three branches as 3H heads, mixed after out_proj's input): outputs and gradients agree."""
    torch.manual_seed(0)
    layer = CurvatureAdaptiveAttention(12, 3).double()
    x = torch.randn(2, 7, 12, dtype=torch.float64)
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[1, 5:] = True
    assert layer._shared_core(None) and not layer._shared_core(torch.zeros(7, 7, dtype=torch.bool))
    outs, grads = [], []
    for mask in (None, torch.zeros(7, 7, dtype=torch.bool)):
        layer.zero_grad()
        y = layer(x, key_padding_mask=padding, attn_mask=mask, is_causal=causal)
        y.square().sum().backward()
        outs.append(y)
        grads.append([p.grad.clone() for p in layer.parameters() if p.grad is not None])
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-10, atol=1e-12)
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
