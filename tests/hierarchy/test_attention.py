"""Hierarchical self-attention: the DP against softmax, the dense closed form, and its invariances."""

from __future__ import annotations

import hierarchy_helpers as helpers
import pytest
import torch

from geoattn.hierarchy import Hierarchy, Node
from geoattn.nn.hierarchical_attention import (
    HierarchicalSelfAttention,
    SiblingPositionalBias,
    hierarchical_attention,
    hsa_dense_reference,
)


def _softmax_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, score: str, bias=None
) -> torch.Tensor:
    scale = q.shape[-1] ** -0.5
    if score == "dot":
        s = scale * torch.einsum("ihd,jhd->hij", q, k)
    else:
        s = -scale * torch.cdist(q.transpose(0, 1), k.transpose(0, 1)).square()
    if bias is not None:
        s = s + bias
    return torch.einsum("hij,jhd->ihd", torch.softmax(s, dim=-1), v)


@pytest.mark.parametrize("score", ["dot", "sqdist"])
def test_flat_tree_is_softmax_attention(score: str) -> None:
    q, k, v = helpers.qkv(11, 3, 5, torch.float64, seed=0, dv=4)
    flat = Hierarchy.from_nested(list(range(11)))
    out = hierarchical_attention(q, k, v, flat, score=score)
    torch.testing.assert_close(out, _softmax_attention(q, k, v, score), rtol=0, atol=1e-12)


def test_flat_tree_batched_layout_matches_sdpa() -> None:
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(2, 3, 7, 4, generator=g, dtype=torch.float64) for _ in range(3))
    flat = Hierarchy.from_nested(list(range(7)))  # shared by the batch
    out = hierarchical_attention(q, k, v, flat)
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)


def test_flat_sequence_with_positions_is_softmax_with_relative_bias() -> None:
    n, heads, radius = 9, 2, 3
    q, k, v = helpers.qkv(n, heads, 4, torch.float64, seed=2)
    positional = SiblingPositionalBias(heads, max_offset=radius).double()
    with torch.no_grad():
        positional.weight.normal_(generator=torch.Generator().manual_seed(3))
    flat = Hierarchy.from_nested(list(range(n)))  # a "sequence" root
    out = hierarchical_attention(q, k, v, flat, bias=positional)
    offset = torch.arange(n)[None, :] - torch.arange(n)[:, None]  # j - i
    table = positional.weight[: 2 * radius + 1]  # the sequence table, [2R+1, H]
    bias = table[offset.clamp(-radius, radius) + radius].permute(2, 0, 1)  # [H, N, N]
    bias = bias.masked_fill(torch.eye(n, dtype=torch.bool), 0.0)  # only between distinct siblings
    torch.testing.assert_close(out, _softmax_attention(q, k, v, "dot", bias), rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_dense_rows_are_distributions(seed: int) -> None:
    n = 13
    h = Hierarchy.batch([helpers.random_hierarchy(n, seed)], num_tokens=n + 2)  # two padding slots
    q, k, v = helpers.qkv(n + 2, 2, 3, torch.float64, seed)
    _, theta = hsa_dense_reference(q, k, v, h)
    assert theta.min() >= 0
    torch.testing.assert_close(
        theta.sum(-1)[:, :n], torch.ones(2, n, dtype=torch.float64), rtol=0, atol=1e-12
    )
    assert theta[:, n:].abs().max() == 0 and theta[:, :, n:].abs().max() == 0  # no mass to or from padding


@pytest.mark.parametrize("score", ["dot", "sqdist"])
@pytest.mark.parametrize("dtype", helpers.DTYPES)
@pytest.mark.parametrize("seed", range(5))
def test_dp_matches_dense_closed_form(seed: int, dtype: torch.dtype, score: str) -> None:
    n = 6 + 5 * seed
    h = helpers.random_hierarchy(n, seed, max_children=5)
    q, k, v = helpers.qkv(n, 2, 4, dtype, seed, dv=3)
    out = hierarchical_attention(q, k, v, h, score=score)
    expected, _ = hsa_dense_reference(q.double(), k.double(), v.double(), h, score=score)
    tol = helpers.TOLERANCE[dtype]
    torch.testing.assert_close(out, expected.to(dtype), rtol=tol, atol=tol)


@pytest.mark.parametrize("seed", range(4))
def test_dp_matches_dense_with_domains_and_positions(seed: int) -> None:
    n = 20
    h = helpers.random_hierarchy(n, 100 + seed, max_children=6, domains=True)
    heads = 3
    positional = SiblingPositionalBias(heads, max_offset=2).double()
    with torch.no_grad():
        positional.weight.normal_(generator=torch.Generator().manual_seed(seed))
    q, k, v = helpers.qkv(n, heads, 4, torch.float64, seed)
    out = hierarchical_attention(q, k, v, h, bias=positional)
    expected, _ = hsa_dense_reference(q, k, v, h, bias=positional)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    # the positions matter: without them the output differs
    assert (hierarchical_attention(q, k, v, h) - out).abs().max() > 1e-3


def test_deep_caterpillar_tree() -> None:
    """Depth 40 (one leaf per level): many lifted chain nodes, levels of one family each."""
    tree: object = [39]
    for t in range(38, -1, -1):
        tree = [t, tree]
    h = Hierarchy.from_nested(tree)  # type: ignore[arg-type]
    assert h.depth == 40
    q, k, v = helpers.qkv(40, 1, 3, torch.float64, seed=5)
    expected, _ = hsa_dense_reference(q, k, v, h)
    torch.testing.assert_close(hierarchical_attention(q, k, v, h), expected, rtol=0, atol=1e-12)


def test_unary_nodes_are_no_ops() -> None:
    q, k, v = helpers.qkv(7, 2, 3, torch.float64, seed=6)
    plain = Hierarchy.from_nested([[0, 1, 2], [3, [4, 5]], 6])
    wrapped = Hierarchy.from_nested([[[[0, 1, 2]]], [[3], [[[4, 5]]]], [[6]]])
    assert wrapped.num_nodes > plain.num_nodes
    out = hierarchical_attention(q, k, v, plain)
    torch.testing.assert_close(hierarchical_attention(q, k, v, wrapped), out, rtol=0, atol=1e-14)
    torch.testing.assert_close(hsa_dense_reference(q, k, v, wrapped)[0], out, rtol=0, atol=1e-14)
    # ... and a unary root
    torch.testing.assert_close(
        hierarchical_attention(q, k, v, Hierarchy.from_nested([[[0, 1, 2], [3, [4, 5]], 6]])),
        out,
        rtol=0,
        atol=1e-14,
    )


def test_hierarchy_changes_the_output() -> None:
    """Guards against a DP that ignores the tree: two trees over the same tokens give different outputs."""
    q, k, v = helpers.qkv(6, 1, 3, torch.float64, seed=7)
    a = hierarchical_attention(q, k, v, Hierarchy.from_nested([[0, 1, 2], [3, 4, 5]]))
    b = hierarchical_attention(q, k, v, Hierarchy.from_nested([[0, 1], [2, 3], [4, 5]]))
    assert (a - b).abs().max() > 1e-3


def test_gradcheck() -> None:
    h = Hierarchy.from_nested(
        Node([[0, 1], Node([2, 3, 4], domain="grid", grid_shape=(1, 3)), 5], domain="sequence")
    )
    g = torch.Generator().manual_seed(8)
    q, k, v = (torch.randn(6, 2, 3, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    positional = SiblingPositionalBias(2, max_offset=2).double()
    with torch.no_grad():
        positional.weight.normal_(generator=g)
    weight = positional.weight.detach().clone().requires_grad_()

    def fn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        def bias(block: object) -> torch.Tensor:
            return torch.func.functional_call(positional, {"weight": w}, (block,))  # type: ignore[no-any-return]

        return hierarchical_attention(q, k, v, h, bias=bias)

    assert torch.autograd.gradcheck(fn, (q, k, v, weight))
    assert torch.autograd.gradcheck(
        lambda q, k, v: hierarchical_attention(q, k, v, h, score="sqdist"), (q, k, v)
    )


def test_gradients_match_dense_reference() -> None:
    h = helpers.random_hierarchy(12, seed=9)
    q, k, v = (t.requires_grad_() for t in helpers.qkv(12, 2, 3, torch.float64, seed=9))
    weights = torch.randn(12, 2, 3, dtype=torch.float64)
    grads = torch.autograd.grad((hierarchical_attention(q, k, v, h) * weights).sum(), (q, k, v))
    expected = torch.autograd.grad((hsa_dense_reference(q, k, v, h)[0] * weights).sum(), (q, k, v))
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_padding_invariance() -> None:
    n, pad = 9, 4
    tree = helpers.random_nested(n, seed=10)
    h = Hierarchy.from_nested(tree)
    padded = Hierarchy.batch([h], num_tokens=n + pad)
    q, k, v = (t.requires_grad_() for t in helpers.qkv(n + pad, 2, 3, torch.float64, seed=10))
    out = hierarchical_attention(q, k, v, padded)
    torch.testing.assert_close(out[:n], hierarchical_attention(q[:n], k[:n], v[:n], h), rtol=0, atol=1e-12)
    assert out[n:].abs().max() == 0
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    assert all(g[n:].abs().max() == 0 for g in grads)  # padding inputs influence nothing
    # garbage (even inf) in the padding slots changes nothing
    q2, k2, v2 = (t.detach().clone() for t in (q, k, v))
    for t in (q2, k2, v2):
        t[n:] = 1e30
    torch.testing.assert_close(hierarchical_attention(q2, k2, v2, padded), out.detach(), rtol=0, atol=0)


def test_batched_forest_equals_per_tree_runs() -> None:
    sizes = [5, 12, 8]
    parts = [helpers.random_hierarchy(n, seed=20 + i, domains=True) for i, n in enumerate(sizes)]
    positional = SiblingPositionalBias(2, max_offset=3).double()
    with torch.no_grad():
        positional.weight.normal_(generator=torch.Generator().manual_seed(0))
    # PyG style: tokens concatenated
    total = sum(sizes)
    q, k, v = helpers.qkv(total, 2, 4, torch.float64, seed=21)
    out = hierarchical_attention(q, k, v, Hierarchy.batch(parts), bias=positional)
    start = 0
    for n, part in zip(sizes, parts, strict=True):
        sl = slice(start, start + n)
        torch.testing.assert_close(
            out[sl], hierarchical_attention(q[sl], k[sl], v[sl], part, bias=positional)
        )
        start += n
    # [B, H, N, d] with padding to N = 12
    batched = Hierarchy.batch(parts, num_tokens=12)
    qb, kb, vb = (torch.randn(3, 2, 12, 4, dtype=torch.float64) for _ in range(3))
    out_b = hierarchical_attention(qb, kb, vb, batched, bias=positional)
    for i, (n, part) in enumerate(zip(sizes, parts, strict=True)):
        one = hierarchical_attention(
            qb[i, :, :n].transpose(0, 1),
            kb[i, :, :n].transpose(0, 1),
            vb[i, :, :n].transpose(0, 1),
            part,
            bias=positional,
        )
        torch.testing.assert_close(out_b[i, :, :n], one.transpose(0, 1), rtol=0, atol=1e-12)
        assert (out_b[i, :, n:] == 0).all()


def test_input_validation() -> None:
    h = Hierarchy.from_nested([[0, 1], [2]])
    q = torch.randn(4, 1, 2)
    with pytest.raises(ValueError, match="4 tokens but the hierarchy covers 3"):
        hierarchical_attention(q, q, q, h)
    with pytest.raises(ValueError, match="score must be 'dot' or 'sqdist'"):
        hierarchical_attention(q[:3], q[:3], q[:3], h, score="cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"needs a hierarchy over B\*N=4"):
        hierarchical_attention(q.view(2, 1, 2, 2), q.view(2, 1, 2, 2), q.view(2, 1, 2, 2), h)


def test_module_on_flat_tree_equals_multihead_attention() -> None:
    torch.manual_seed(0)
    d, heads, n = 8, 2, 6
    hsa = HierarchicalSelfAttention(d, heads).double()
    mha = torch.nn.MultiheadAttention(d, heads, batch_first=True).double()
    with torch.no_grad():
        for proj in (hsa.q_proj, hsa.k_proj, hsa.v_proj, hsa.out_proj):
            proj.bias.normal_()  # type: ignore[union-attr]
        mha.in_proj_weight.copy_(torch.cat([hsa.q_proj.weight, hsa.k_proj.weight, hsa.v_proj.weight]))
        mha.in_proj_bias.copy_(torch.cat([hsa.q_proj.bias, hsa.k_proj.bias, hsa.v_proj.bias]))  # type: ignore[list-item]
        mha.out_proj.weight.copy_(hsa.out_proj.weight)
        mha.out_proj.bias.copy_(hsa.out_proj.bias)  # type: ignore[arg-type]
    x = torch.randn(3, n, d, dtype=torch.float64)
    flat = Hierarchy.from_nested(list(range(n)))
    expected, _ = mha(x, x, x, need_weights=False)
    torch.testing.assert_close(hsa(x, flat), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        hsa(x.reshape(-1, d), flat.repeat(3)), expected.reshape(-1, d), rtol=0, atol=1e-12
    )
    weights = hsa.attention_weights(x[:1], flat)
    assert weights.shape == (heads, n, n)
    assert repr(hsa) == "HierarchicalSelfAttention(8, num_heads=2, score='dot', positional=False)"


def test_module_padding_outputs_zero_and_weights_shape() -> None:
    torch.manual_seed(1)
    hsa = HierarchicalSelfAttention(6, 3, positional=True, score="sqdist")
    h = Hierarchy.batch(
        [Hierarchy.from_nested([[0, 1], [2, 3, 4]]), Hierarchy.from_nested([0, [1, 2]])], num_tokens=5
    )
    x = torch.randn(2, 5, 6, requires_grad=True)
    y = hsa(x, h)
    assert y.shape == x.shape and y[1, 3:].abs().max() == 0
    y.sum().backward()
    assert x.grad is not None and x.grad[1, 3:].abs().max() == 0
    assert hsa.positional is not None and hsa.positional.weight.grad is not None
    assert hsa.positional.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="x has 12 tokens"):
        hsa(torch.randn(2, 6, 6), h)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_matches_cpu(dtype: torch.dtype) -> None:
    """The plan follows the inputs' device; outputs and every gradient match the float64 CPU run."""
    h = Hierarchy.batch(
        [helpers.random_hierarchy(n, 300 + n, max_children=9, domains=True) for n in (40, 17, 64)],
        num_tokens=64,
    )
    positional = SiblingPositionalBias(4, max_offset=3).double()
    with torch.no_grad():
        positional.weight.normal_(generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(3, 4, 64, 16, generator=g, dtype=torch.float64) for _ in range(3))
    weights = torch.randn(3, 4, 64, 16, generator=g, dtype=torch.float64)
    inputs = [t.clone().requires_grad_() for t in (q, k, v)]
    expected = hierarchical_attention(*inputs, h, bias=positional)
    expected_grads = torch.autograd.grad((expected * weights).sum(), [*inputs, positional.weight])
    cuda_bias = SiblingPositionalBias(4, max_offset=3).cuda()
    with torch.no_grad():
        cuda_bias.weight.copy_(positional.weight)
    cuda_inputs = [t.to("cuda", dtype).requires_grad_() for t in (q, k, v)]
    out = hierarchical_attention(*cuda_inputs, h, bias=cuda_bias)
    assert out.device.type == "cuda" and out.dtype == dtype
    grads = torch.autograd.grad((out * weights.to("cuda", dtype)).sum(), [*cuda_inputs, cuda_bias.weight])
    tol = 1e-4 if dtype == torch.float32 else 6e-2
    torch.testing.assert_close(out.double().cpu(), expected, rtol=tol, atol=tol)
    for got, want in zip(grads, expected_grads, strict=True):
        scale = float(want.abs().max())
        torch.testing.assert_close(got.double().cpu() / scale, want / scale, rtol=tol, atol=tol)


@pytest.mark.gpu
def test_cuda_graph_capture_matches_eager() -> None:
    """The DP has no host synchronisation, so PyTorch's CUDA-graph capture of it (forward and backward)
    replays the eager results exactly; the benchmark's "graphed" rows rely on this."""
    h = helpers.random_hierarchy(64, 7, max_children=9, domains=False)
    g = torch.Generator().manual_seed(2)
    q, k, v = (torch.randn(64, 4, 16, generator=g).cuda().requires_grad_() for _ in range(3))

    def dp(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return hierarchical_attention(q, k, v, h)

    graphed = torch.cuda.make_graphed_callables(dp, (q, k, v))
    weights = torch.randn(64, 4, 16, generator=g).cuda()
    expected = dp(q, k, v)
    expected_grads = torch.autograd.grad((expected * weights).sum(), [q, k, v])
    for _ in range(2):  # replays reuse the static buffers: results must not drift between them
        out = graphed(q, k, v)
        grads = torch.autograd.grad((out * weights).sum(), [q, k, v])
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
        for got, want in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
