"""CurvatureAdaptiveConv: PyG conventions, routing per node, branch composition, compile."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.testing import assert_module
from torch_geometric.utils import scatter

from geoattn.nn import CurvatureAdaptiveConv, GeometryRouter, ManifoldAttentionConv

pytestmark = pytest.mark.filterwarnings(r"ignore:Sparse (CSC tensor support|invariant checks):UserWarning")
SPARSE_LAYOUTS = [torch.sparse_csc, torch.sparse_coo]
EDGE_INDEX = torch.tensor([[0, 1, 2, 3, 0, 2, 3], [1, 0, 1, 2, 3, 3, 0]])


def _x(n: int = 4, f: int = 8, dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, f, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _randomise_router(router: GeometryRouter, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        router.lin2.weight.copy_(torch.randn(router.lin2.weight.shape, generator=g))
        router.lin2.bias.copy_(torch.randn(router.lin2.bias.shape, generator=g))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"heads": 2, "shared_projections": False},
        {"heads": 2, "concat": False, "routing": "top1"},
        {"score": "tangent_dot", "aggregation": "tangent", "add_self_loops": False, "root_weight": False},
    ],
)
def test_pyg_module_conventions(kwargs: dict) -> None:  # type: ignore[type-arg]
    torch.manual_seed(0)
    conv = CurvatureAdaptiveConv(8, 4, **kwargs).double()
    _randomise_router(conv.router)
    heads = kwargs.get("heads", 1)
    out_size = 4 * heads if kwargs.get("concat", True) else 4
    assert_module(
        conv,
        _x(dtype=torch.float64),
        EDGE_INDEX,
        expected_size=(4, out_size),
        test_sparse_layouts=SPARSE_LAYOUTS,
    )


def test_repr() -> None:
    assert (
        repr(CurvatureAdaptiveConv(8, 4, heads=2))
        == "CurvatureAdaptiveConv(8, 4, heads=2, shared_projections=True)"
    )
    assert (
        repr(CurvatureAdaptiveConv((8, 6), 4, shared_projections=False))
        == "CurvatureAdaptiveConv((8, 6), 4, heads=1, shared_projections=False)"
    )


def test_routing_attention_weights_and_their_order() -> None:
    torch.manual_seed(1)
    conv = CurvatureAdaptiveConv(8, 4, heads=2)
    x = _x()
    out, routing = conv(x, EDGE_INDEX, return_routing=True)
    torch.testing.assert_close(routing, torch.full((4, 3), 1 / 3))
    _randomise_router(conv.router)
    out, (edge_index, alpha), routing = conv(
        x, EDGE_INDEX, return_attention_weights=True, return_routing=True
    )
    assert out.shape == (4, 8) and routing.shape == (4, 3) and alpha.shape == (edge_index.shape[1], 3, 2)
    torch.testing.assert_close(routing.sum(-1), torch.ones(4))
    torch.testing.assert_close(
        scatter(alpha, edge_index[1], 0, dim_size=4, reduce="sum"), torch.ones(4, 3, 2)
    )
    out2, _ = conv(x, EDGE_INDEX, return_attention_weights=True)
    torch.testing.assert_close(out2, out)


def test_top1_routing_is_one_hot() -> None:
    torch.manual_seed(2)
    conv = CurvatureAdaptiveConv(8, 4, routing="top1")
    _randomise_router(conv.router)
    out, routing = conv(_x(), EDGE_INDEX, return_routing=True)
    torch.testing.assert_close(routing, torch.nn.functional.one_hot(routing.argmax(-1), 3).float())
    out.sum().backward()
    assert conv.router.lin2.weight.grad is not None and conv.router.lin2.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("branch", [0, 1, 2])
@pytest.mark.parametrize("shared", [True, False])
def test_a_fully_routed_node_gets_that_branchs_conv(branch: int, shared: bool) -> None:
    torch.manual_seed(3)
    heads, c = 2, 4
    cat = CurvatureAdaptiveConv(8, c, heads, shared_projections=shared, learnable_curvature=False).double()
    with torch.no_grad():
        cat.router.lin2.bias.copy_(torch.nn.functional.one_hot(torch.tensor(branch), 3) * 100.0)
        cat.geometry.beta_raw.copy_(torch.randn(3 * heads))
    single = ManifoldAttentionConv(8, c, heads, curvature=(0.0, -1.0, 1.0)[branch]).double()
    rows = slice(0, heads * c) if shared else slice(branch * heads * c, (branch + 1) * heads * c)
    with torch.no_grad():
        for name in ("lin_query", "lin_key", "lin_value"):
            getattr(single, name).weight.copy_(getattr(cat, name).weight[rows])
            getattr(single, name).bias.copy_(getattr(cat, name).bias[rows])
        single.lin_skip.load_state_dict(cat.lin_skip.state_dict())  # type: ignore[union-attr]
        single.geometry.beta_raw.copy_(cat.geometry.beta_raw[branch * heads : (branch + 1) * heads])
    x = _x(dtype=torch.float64)
    torch.testing.assert_close(cat(x, EDGE_INDEX), single(x, EDGE_INDEX))


def test_bipartite_and_empty_graph() -> None:
    torch.manual_seed(4)
    conv = CurvatureAdaptiveConv((8, 6), 4, heads=2, add_self_loops=False)
    x_src, x_dst = _x(5, 8, seed=1), _x(3, 6, seed=2)
    out, routing = conv((x_src, x_dst), torch.tensor([[1, 4, 3, 0], [0, 0, 1, 2]]), return_routing=True)
    assert out.shape == (3, 8) and routing.shape == (3, 3)
    empty = conv((x_src, x_dst), torch.empty(2, 0, dtype=torch.long))
    assert conv.lin_skip is not None
    torch.testing.assert_close(empty, conv.lin_skip(x_dst))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_finite_and_curvatures_learned(dtype: torch.dtype) -> None:
    torch.manual_seed(5)
    conv = CurvatureAdaptiveConv(8, 4, heads=2).to(dtype)
    _randomise_router(conv.router)
    conv(_x(dtype=dtype), EDGE_INDEX).pow(2).sum().backward()
    grads = {n: p.grad for n, p in conv.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    for name in ("geometry.curvatures.1.theta", "geometry.curvatures.2.theta"):
        assert grads[name].abs().sum() > 0  # type: ignore[union-attr]


def test_out_of_range_edge_index_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="source indices in"):
        CurvatureAdaptiveConv(8, 4)(_x(), torch.tensor([[0, 9], [1, 0]]))


def test_compiles_without_graph_breaks() -> None:
    torch.manual_seed(6)
    conv = CurvatureAdaptiveConv(8, 4, heads=2, shared_projections=False)
    _randomise_router(conv.router)
    x = _x()
    compiled = torch.compile(conv, fullgraph=True, backend="eager")
    out, routing = compiled(x, EDGE_INDEX, return_routing=True)
    ref_out, ref_routing = conv(x, EDGE_INDEX, return_routing=True)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(routing, ref_routing)


def test_reset_parameters_and_invalid_arguments() -> None:
    conv = CurvatureAdaptiveConv(8, 4, router_hidden=3, router_temperature=2.0)
    assert conv.router.hidden == 3 and conv.router.temperature == 2.0
    _randomise_router(conv.router)
    conv.reset_parameters()
    assert (conv.router.lin2.weight == 0).all()
    with pytest.raises(ValueError, match="hyperbolic_curvature must be < 0"):
        CurvatureAdaptiveConv(8, 4, hyperbolic_curvature=1.0)
    with pytest.raises(ValueError, match="routing must be one of"):
        CurvatureAdaptiveConv(8, 4, routing="hard")  # type: ignore[arg-type]
