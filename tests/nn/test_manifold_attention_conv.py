"""ManifoldAttentionConv: PyG conventions (sparse layouts, bipartite, empty graphs, compile) and its math."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.testing import assert_module
from torch_geometric.utils import scatter, to_torch_csc_tensor

from geoattn.kernels.manifold_attention import manifold_attention_reference
from geoattn.manifolds import HyperbolicCurvature, SignedCurvature, logmap0
from geoattn.nn import ManifoldAttentionConv

SPARSE_LAYOUTS = [torch.sparse_csc, torch.sparse_coo]  # torch_sparse (SparseTensor) is tested when installed
pytestmark = pytest.mark.filterwarnings(r"ignore:Sparse (CSC tensor support|invariant checks):UserWarning")
EDGE_INDEX = torch.tensor([[0, 1, 2, 3, 0, 2, 3], [1, 0, 1, 2, 3, 3, 0]])


def _x(n: int = 4, f: int = 8, dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, f, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"curvature": -1.0, "heads": 2},
        {"curvature": 0.7, "heads": 2, "concat": False},
        {"curvature": -0.5, "score": "tangent_dot", "aggregation": "tangent", "heads": 2},
        {"curvature": 1.0, "add_self_loops": False, "root_weight": False},
    ],
)
def test_pyg_module_conventions(kwargs: dict) -> None:  # type: ignore[type-arg]
    """Output size, invariance to edge order and to the sparse layout of the adjacency (float64: the
    summation order differs between layouts)."""
    torch.manual_seed(0)
    conv = ManifoldAttentionConv(8, 4, **kwargs).double()
    heads = kwargs.get("heads", 1)
    out_size = 4 * heads if kwargs.get("concat", True) else 4
    x = _x(dtype=torch.float64)
    assert_module(conv, x, EDGE_INDEX, expected_size=(4, out_size), test_sparse_layouts=SPARSE_LAYOUTS)


def test_repr() -> None:
    assert (
        repr(ManifoldAttentionConv(8, 4, heads=2))
        == "ManifoldAttentionConv(8, 4, heads=2, curvature=FixedCurvature)"
    )
    conv = ManifoldAttentionConv((8, 6), 4, curvature=-1.0, learnable_curvature=True)
    assert repr(conv) == "ManifoldAttentionConv((8, 6), 4, heads=1, curvature=SignedCurvature)"


@pytest.mark.parametrize("score,aggregation", [("distance", "midpoint"), ("tangent_dot", "tangent")])
def test_complete_graph_equals_the_dense_attention_op(score: str, aggregation: str) -> None:
    """With every edge (self-loops included), the layer is the dense op on the projected nodes."""
    torch.manual_seed(1)
    n, heads, c = 5, 3, 4
    curvature = SignedCurvature(0.0, shape=heads)
    with torch.no_grad():
        curvature.theta.copy_(torch.tensor([-1.2, 0.0, 0.6]))
    conv = ManifoldAttentionConv(
        6,
        c,
        heads,
        curvature=curvature,
        score=score,
        aggregation=aggregation,
        root_weight=False,  # type: ignore[arg-type]
    ).double()
    with torch.no_grad():
        conv.geometry.beta_raw.copy_(torch.tensor([0.3, -0.5, 1.0]))
    x = _x(n, 6, torch.float64)
    full = torch.cartesian_prod(torch.arange(n), torch.arange(n)).t()  # all (source, target) pairs
    out, (edge_index, alpha) = conv(x, full, return_attention_weights=True)
    geometry = conv.geometry
    kappa = geometry.curvature()

    def points(lin: torch.nn.Module) -> torch.Tensor:
        return geometry.to_manifold(lin(x).view(n, heads, c).transpose(0, 1)[None], kappa.view(-1, 1, 1))

    dense, weights = manifold_attention_reference(
        points(conv.lin_query),
        points(conv.lin_key),
        points(conv.lin_value),
        curvature=kappa,
        beta=geometry.beta(),
        gamma=geometry.gamma,
        score=score,  # type: ignore[arg-type]
        aggregation=aggregation,  # type: ignore[arg-type]
        need_weights=True,
    )
    expected = logmap0(dense, k=kappa.view(-1, 1, 1))[0].transpose(0, 1).reshape(n, heads * c)
    torch.testing.assert_close(out, expected)
    assert weights is not None
    dense_alpha = weights[0].permute(1, 2, 0)[edge_index[1], edge_index[0]]  # [E, H] by (target, source)
    torch.testing.assert_close(alpha, dense_alpha)


def test_attention_weights_sum_to_one_per_target_and_existing_self_loops_are_replaced() -> None:
    torch.manual_seed(2)
    conv = ManifoldAttentionConv(8, 4, heads=2, curvature=-1.0)
    x = _x()
    out, (edge_index, alpha) = conv(x, EDGE_INDEX, return_attention_weights=True)
    assert edge_index.shape == (2, EDGE_INDEX.shape[1] + 4) and alpha.shape == (edge_index.shape[1], 2)
    torch.testing.assert_close(scatter(alpha, edge_index[1], 0, dim_size=4, reduce="sum"), torch.ones(4, 2))
    with_loops = torch.cat([EDGE_INDEX, torch.tensor([[1, 2], [1, 2]])], dim=1)
    torch.testing.assert_close(conv(x, with_loops), out)


def test_sparse_adjacency_returns_its_attention_weights_as_values() -> None:
    torch.manual_seed(3)
    conv = ManifoldAttentionConv(8, 4, heads=2, curvature=0.5, add_self_loops=False)
    x = _x()
    out, (edge_index, alpha) = conv(x, EDGE_INDEX, return_attention_weights=True)
    adj_t = to_torch_csc_tensor(EDGE_INDEX, size=(4, 4)).t()
    out_sparse, (adj, alpha_sparse) = conv(x, adj_t, return_attention_weights=True)
    torch.testing.assert_close(out_sparse, out)
    assert adj.is_sparse_csr and alpha_sparse.shape == alpha.shape
    dense = torch.zeros(4, 4, 2)
    dense[edge_index[1], edge_index[0]] = alpha
    torch.testing.assert_close(adj.to_dense(), dense)


@pytest.mark.parametrize("add_self_loops", [False, True])
def test_bipartite_inputs(add_self_loops: bool) -> None:
    torch.manual_seed(4)
    x_src, x_dst = _x(5, 8, seed=1), _x(3, 6, seed=2)
    edge_index = torch.tensor([[1, 4, 3, 0, 2], [0, 0, 1, 2, 1]])  # no (i, i) pairs
    conv = ManifoldAttentionConv((8, 6), 4, heads=2, curvature=-1.0, add_self_loops=add_self_loops)
    out, (used, alpha) = conv((x_src, x_dst), edge_index, return_attention_weights=True)
    assert out.shape == (3, 8)
    assert used.shape[1] == 5 + (3 if add_self_loops else 0)
    torch.testing.assert_close(scatter(alpha, used[1], 0, dim_size=3, reduce="sum"), torch.ones(3, 2))
    adj_t = to_torch_csc_tensor(edge_index, size=(5, 3)).t()
    if not add_self_loops:
        torch.testing.assert_close(conv((x_src, x_dst), adj_t), out)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_empty_graph_gives_the_root_weight_with_finite_gradients(dtype: torch.dtype) -> None:
    torch.manual_seed(5)
    conv = ManifoldAttentionConv(8, 4, heads=2, curvature=-1.0, add_self_loops=False).to(dtype)
    x = _x(dtype=dtype).requires_grad_()
    out = conv(x, torch.empty(2, 0, dtype=torch.long))
    assert conv.lin_skip is not None
    torch.testing.assert_close(out, conv.lin_skip(x))
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_out_of_range_edge_index_is_a_value_error() -> None:
    conv = ManifoldAttentionConv(8, 4)
    for bad in (
        torch.tensor([[0, 4], [1, 0]]),
        torch.tensor([[0, 1], [-1, 0]]),
        torch.tensor([[0, 1], [1, 7]]),
    ):
        with pytest.raises(ValueError, match=r"source indices in \[0, 4\) and target indices in \[0, 4\)"):
            conv(_x(), bad)
    with pytest.raises(ValueError, match="target indices in \\[0, 2\\)"):
        ManifoldAttentionConv((8, 8), 4)((_x(), _x(2)), torch.tensor([[3], [2]]))
    with pytest.raises(ValueError, match="shape \\[2, num_edges\\]"):
        conv(_x(), torch.zeros(3, 2, dtype=torch.long))


@pytest.mark.parametrize("add_self_loops", [False, True])
def test_compiles_without_graph_breaks(add_self_loops: bool) -> None:
    torch.manual_seed(6)
    conv = ManifoldAttentionConv(
        8, 4, heads=2, curvature=-1.0, learnable_curvature=True, add_self_loops=add_self_loops
    )
    x = _x()
    compiled = torch.compile(conv, fullgraph=True, backend="eager")
    torch.testing.assert_close(compiled(x, EDGE_INDEX), conv(x, EDGE_INDEX))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_finite_and_curvature_learned(dtype: torch.dtype) -> None:
    torch.manual_seed(7)
    conv = ManifoldAttentionConv(8, 4, heads=2, curvature=HyperbolicCurvature(-1.0, shape=2)).to(dtype)
    conv(_x(dtype=dtype), EDGE_INDEX).pow(2).sum().backward()
    for name, p in conv.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    theta = conv.geometry.curvatures[0].theta.grad  # type: ignore[union-attr]
    assert theta is not None and theta.abs().sum() > 0


def test_continuous_through_zero_curvature() -> None:
    x = _x()
    outs = []
    for k in (-1e-6, 0.0, 1e-6):
        torch.manual_seed(8)
        outs.append(ManifoldAttentionConv(8, 4, heads=2, curvature=k)(x, EDGE_INDEX))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(outs[2], outs[1], rtol=1e-4, atol=1e-5)


def test_dropout_only_while_training() -> None:
    torch.manual_seed(9)
    conv = ManifoldAttentionConv(8, 4, heads=2, curvature=-1.0, dropout=0.5)
    x = _x()
    conv.eval()
    torch.testing.assert_close(conv(x, EDGE_INDEX), conv(x, EDGE_INDEX))
    conv.train()
    assert not torch.allclose(conv(x, EDGE_INDEX), conv(x, EDGE_INDEX))


def test_bias_false_and_reset_parameters() -> None:
    conv = ManifoldAttentionConv(8, 4, curvature=-0.5, learnable_curvature=True, bias=False)
    assert conv.lin_query.bias is None and conv.lin_skip is not None and conv.lin_skip.bias is None
    with torch.no_grad():
        conv.geometry.curvatures[0].theta.fill_(1.0)  # type: ignore[operator]
    weight = conv.lin_key.weight.clone()
    conv.reset_parameters()
    torch.testing.assert_close(conv.geometry.curvature(), torch.tensor([-0.5]))
    assert not torch.equal(conv.lin_key.weight, weight)


def test_sparse_tensor_input() -> None:
    torch_sparse = pytest.importorskip("torch_sparse")
    conv = ManifoldAttentionConv(8, 4, heads=2, curvature=-1.0)
    x = _x()
    adj = torch_sparse.SparseTensor.from_edge_index(EDGE_INDEX, sparse_sizes=(4, 4))
    out, adj_alpha = conv(x, adj.t(), return_attention_weights=True)
    torch.testing.assert_close(out, conv(x, EDGE_INDEX), atol=1e-6, rtol=1e-5)
    assert adj_alpha.nnz() == EDGE_INDEX.shape[1] + 4


@pytest.mark.parametrize(
    "args,kwargs,error,match",
    [
        ((-1, 4), {}, ValueError, "lazy -1 is not supported"),
        ((8, 0), {}, ValueError, "out_channels and heads"),
        ((8, 4), {"dropout": 1.0}, ValueError, "dropout"),
        ((8, 4), {"curvature": HyperbolicCurvature(), "learnable_curvature": True}, ValueError, "learnable"),
        ((8, 4), {"curvature": None}, TypeError, "curvature must be a float"),
        ((8, 4), {"score": "dot"}, ValueError, "score must be one of"),
    ],
)
def test_invalid_arguments(args: tuple, kwargs: dict, error: type[Exception], match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(error, match=match):
        ManifoldAttentionConv(*args, **kwargs)
