"""The encoder layer and the PyG-style layer: on flat trees they are their standard counterparts."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import TransformerConv

from geoattn.hierarchy import Hierarchy
from geoattn.nn.hierarchical_conv import HierarchicalAttentionConv
from geoattn.nn.hierarchical_encoder import (
    HierarchicalTransformerEncoder,
    HierarchicalTransformerEncoderLayer,
)


def test_encoder_layer_on_flat_tree_is_pre_norm_transformer_layer() -> None:
    torch.manual_seed(0)
    d, heads, ff, n = 8, 2, 16, 5
    layer = HierarchicalTransformerEncoderLayer(d, heads, ff).double()
    reference = torch.nn.TransformerEncoderLayer(
        d, heads, ff, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
    ).double()
    attn = layer.self_attn
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_(std=0.3)
        reference.self_attn.in_proj_weight.copy_(
            torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
        )
        reference.self_attn.in_proj_bias.copy_(
            torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias])
        )  # type: ignore[list-item]
        reference.self_attn.out_proj.weight.copy_(attn.out_proj.weight)
        reference.self_attn.out_proj.bias.copy_(attn.out_proj.bias)  # type: ignore[arg-type]
        for mine, theirs in [
            (layer.linear1, reference.linear1),
            (layer.linear2, reference.linear2),
            (layer.norm1, reference.norm1),
            (layer.norm2, reference.norm2),
        ]:
            theirs.weight.copy_(mine.weight)
            theirs.bias.copy_(mine.bias)
    x = torch.randn(2, n, d, dtype=torch.float64)
    flat = Hierarchy.from_nested(list(range(n)))
    torch.testing.assert_close(layer(x, flat), reference(x), rtol=0, atol=1e-12)


def test_encoder_stack_shapes_gradients_and_independent_layers() -> None:
    torch.manual_seed(1)
    layer = HierarchicalTransformerEncoderLayer(6, 2, positional=True, dropout=0.1)
    encoder = HierarchicalTransformerEncoder(layer, num_layers=3)
    w0 = encoder.layers[0].self_attn.q_proj.weight  # type: ignore[union-attr]
    w1 = encoder.layers[1].self_attn.q_proj.weight  # type: ignore[union-attr]
    assert w0 is not w1 and not torch.equal(w0, w1)
    h = Hierarchy.from_nested([[0, 1, 2], [3, [4, 5, 6]]])
    x = torch.randn(2, 7, 6, requires_grad=True)
    y = encoder(x, h)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in encoder.parameters())
    with pytest.raises(ValueError, match="activation must be one of"):
        HierarchicalTransformerEncoderLayer(6, 2, activation="tanh")  # type: ignore[arg-type]


@pytest.mark.parametrize("concat", [True, False])
def test_conv_on_flat_trees_is_transformer_conv_on_complete_graphs(concat: bool) -> None:
    torch.manual_seed(2)
    sizes = [3, 5, 4]
    x = torch.randn(sum(sizes), 6, dtype=torch.float64)
    h = Hierarchy.batch([Hierarchy.from_nested(list(range(n))) for n in sizes])
    conv = HierarchicalAttentionConv(6, 4, heads=2, concat=concat).double()
    pyg = TransformerConv(6, 4, heads=2, concat=concat, root_weight=True).double()
    with torch.no_grad():
        torch.nn.init.normal_(conv.bias)  # type: ignore[arg-type]
        for mine, theirs in [
            (conv.lin_query, pyg.lin_query),
            (conv.lin_key, pyg.lin_key),
            (conv.lin_value, pyg.lin_value),
        ]:
            theirs.weight.copy_(mine.weight)
            theirs.bias.zero_()
        pyg.lin_skip.weight.copy_(conv.lin_skip.weight)  # type: ignore[union-attr]
        pyg.lin_skip.bias.copy_(conv.bias)  # type: ignore[arg-type]
    # complete graph with self-loops inside each tree: every node attends to every node of its tree
    edges, start = [], 0
    for n in sizes:
        idx = torch.arange(start, start + n)
        edges.append(torch.stack(torch.meshgrid(idx, idx, indexing="ij")).reshape(2, -1))
        start += n
    edge_index = torch.cat(edges, dim=1)
    torch.testing.assert_close(conv(x, h), pyg(x, edge_index), rtol=0, atol=1e-12)


def test_conv_accepts_per_level_parent_indices() -> None:
    torch.manual_seed(3)
    conv = HierarchicalAttentionConv(5, 3, heads=2, positional=True)
    parents = [torch.tensor([0, 0, 1, 1, 1, 2, 2]), torch.tensor([0, 0, 1])]
    x = torch.randn(7, 5)
    out = conv(x, parents)
    assert out.shape == (7, 6)
    torch.testing.assert_close(out, conv(x, Hierarchy.from_parent_indices(parents)))
    assert repr(conv) == "HierarchicalAttentionConv(5, 3, heads=2)"
    assert HierarchicalAttentionConv(5, 3, heads=2, concat=False)(x, parents).shape == (7, 3)
