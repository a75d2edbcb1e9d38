"""Hierarchy construction, conversions and the per-level plan."""

from __future__ import annotations

import hierarchy_helpers as helpers
import networkx as nx
import torch

from geoattn.hierarchy import DOMAINS, Hierarchy, Node
from geoattn.nn.hierarchical_attention import SiblingPositionalBias, hierarchical_attention


def test_from_nested_canonical_arrays() -> None:
    h = Hierarchy.from_nested(
        [[2, 0], [1, Node([3, 4, 5, 6], domain="grid", grid_shape=(2, 2), label="image")]]
    )
    assert (h.num_tokens, h.num_nodes, h.num_trees, h.depth) == (7, 11, 1, 3)
    # internal nodes in DFS pre-order: 7 root, 8 [2, 0], 9 [1, grid], 10 grid
    assert h.parent.tolist() == [8, 9, 8, 10, 10, 10, 10, -1, 7, 7, 9]
    assert [DOMAINS[d] for d in h.domain[7:].tolist()] == ["sequence", "sequence", "sequence", "grid"]
    assert h.coord[[3, 4, 5, 6]].tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert h.coord[[2, 0]].tolist() == [
        [0, 0],
        [1, 0],
    ]  # sequence positions follow the list, not the token ids
    assert h.labels == {10: "image"}
    assert h.children(9) == [1, 10]
    assert h.leaf_count.tolist() == [1] * 7 + [7, 2, 5, 4]
    assert h.token_mask.all() and h.roots.tolist() == [7]
    assert h.num_block_pairs == 2**2 + 2**2 + 2**2 + 4**2
    assert h.num_flat_pairs == 49


def test_bare_token_is_a_one_token_tree() -> None:
    h = Hierarchy.from_nested(0)
    assert h.parent.tolist() == [1, -1]
    v = torch.randn(1, 2, 3)
    torch.testing.assert_close(hierarchical_attention(v, v, v, h), v)


def test_regular_equals_nested() -> None:
    assert Hierarchy.regular([2, 3]) == Hierarchy.from_nested([[0, 1, 2], [3, 4, 5]])
    assert Hierarchy.regular([2, 3], domain="set") == Hierarchy.from_nested(
        Node([Node([0, 1, 2], domain="set"), Node([3, 4, 5], domain="set")], domain="set")
    )
    grid = Hierarchy.regular([(1, 2), (2, 2)], num_trees=2)
    tree = Node(
        [
            Node([0, 1, 2, 3], domain="grid", grid_shape=(2, 2)),
            Node([4, 5, 6, 7], domain="grid", grid_shape=(2, 2)),
        ],
        domain="grid",
        grid_shape=(1, 2),
    )
    nested = Hierarchy.batch([Hierarchy.from_nested(tree)] * 2)
    assert grid.num_trees == 2 and grid.coord[:16].tolist() == nested.coord[:16].tolist()
    q, k, v = helpers.qkv(16, 2, 3, torch.float64, seed=0)
    positional = SiblingPositionalBias(2, max_offset=2).double()
    with torch.no_grad():
        positional.weight.normal_(generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        hierarchical_attention(q, k, v, grid, bias=positional),
        hierarchical_attention(q, k, v, nested, bias=positional),
        rtol=0,
        atol=1e-12,
    )


def test_from_parent_indices_matches_nested_and_pads() -> None:
    parents = [torch.tensor([0, 0, 1, 1, 1, -1, 2]), torch.tensor([0, 0, 1])]
    h = Hierarchy.from_parent_indices(parents)
    assert h.token_mask.tolist() == [True] * 5 + [False, True]
    assert h.num_trees == 2
    nested = Hierarchy.batch(
        [Hierarchy.from_nested([[0, 1], [2, 3, 4]]), Hierarchy.from_nested([[0]])], num_tokens=None
    )
    q, k, v = helpers.qkv(7, 1, 2, torch.float64, seed=1)
    out = hierarchical_attention(q, k, v, h)
    keep = [0, 1, 2, 3, 4, 6]
    torch.testing.assert_close(out[keep], hierarchical_attention(q[keep], k[keep], v[keep], nested))
    assert out[5].abs().max() == 0


def test_batch_layouts() -> None:
    a, b = Hierarchy.from_nested([[0, 1], [2]]), Hierarchy.from_nested([0, 1])
    flat = Hierarchy.batch([a, b])
    assert flat.num_tokens == 5 and flat.num_trees == 2
    assert flat.tree_index[:5].tolist() == [0, 0, 0, 1, 1]
    padded = Hierarchy.batch([a, b], num_tokens=4)
    assert padded.num_tokens == 8
    assert padded.token_mask.tolist() == [True, True, True, False, True, True, False, False]
    assert padded.tree_index[:8].tolist() == [0, 0, 0, -1, 1, 1, -1, -1]
    assert a.repeat(3) is a.repeat(3) and a.repeat(3).num_tokens == 9


def test_networkx_round_trip() -> None:
    parts = [helpers.random_hierarchy(n, seed, domains=True) for seed, n in enumerate([7, 11, 4])]
    h = Hierarchy.batch(parts, num_tokens=12)
    graph = h.to_networkx()
    assert nx.is_forest(graph) and graph.graph["num_tokens"] == 36
    assert Hierarchy.from_networkx(graph) == h
    # one tree, relabelled with strings: same structure up to node ids, same attention
    one = nx.relabel_nodes(h.to_networkx(tree=1), lambda u: f"n{u}")
    rebuilt = Hierarchy.from_networkx(one, num_tokens=36)
    assert rebuilt.num_trees == 1 and rebuilt.token_mask.sum() == 11
    q, k, v = helpers.qkv(36, 2, 3, torch.float64, seed=3)
    positional = SiblingPositionalBias(2, max_offset=2).double()
    with torch.no_grad():
        positional.weight.normal_(generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        hierarchical_attention(q, k, v, rebuilt, bias=positional)[12:23],
        hierarchical_attention(q, k, v, h, bias=positional)[12:23],
    )


def test_from_networkx_default_coords_follow_successor_order() -> None:
    g = nx.DiGraph()
    g.add_node("root", domain="sequence")
    for t in (2, 0, 1):
        g.add_node(f"tok{t}", token=t)
        g.add_edge("root", f"tok{t}")
    h = Hierarchy.from_networkx(g, root="root")
    assert h.coord[:3, 0].tolist() == [1, 2, 0]
    assert h == Hierarchy.from_nested([2, 0, 1])


def test_plan_layout() -> None:
    h = Hierarchy.from_nested([[0, 1, 2], [3, [4, 5]], 6, [7, 8, 9, 10, 11]])
    plan = h.plan()
    assert plan is h.plan("cpu")
    assert plan.leaf_token.tolist() == list(range(12))
    sizes = [12] + [lvl.num_nodes for lvl in plan.levels]
    assert len(plan.levels) == h.depth == 3
    for depth, level in enumerate(plan.levels):
        # every non-root node below appears exactly once among this level's children
        below = sizes[depth]
        scatter = level.scatter_index.tolist()
        assert len(set(scatter)) == len(scatter) and set(scatter) <= set(range(below))
        start = 0
        for block in level.blocks:
            assert block.start == start
            counts = block.child_mask.sum(-1)
            assert counts.max() == block.size
            assert block.size == 1 or counts.min() * 2 > block.size // 2  # one power-of-two bucket
            start += block.num_families
        assert start == level.num_nodes
        assert level.leaf_count.sum() == 12
    # token 6 (child of the height-3 root) is lifted by chain nodes at levels 1 and 2, token 3 at level 1,
    # the height-1 families [0, 1, 2] and [7, ..., 11] at level 2
    assert sizes == [12, 5, 4, 1]
    assert plan.num_padded_pairs == 3**2 + 2**2 + 5**2 + 2**2 + 4**2


def test_domains_of_nested_nodes() -> None:
    h = Hierarchy.from_nested(
        Node(
            [
                Node([0, 1, 2], domain="graph", edges=[(0, 2)]),
                Node([3, 4], domain="set"),
                Node([5, 6], coords=[(4, 1), (0, 7)]),
            ],
            domain="sequence",
        )
    )
    assert h.graph_edges.T.tolist() == [[0, 2]]
    assert h.coord[[3, 4, 5, 6]].tolist() == [[0, 0], [0, 0], [4, 1], [0, 7]]
    graph_block = next(b for lvl in h.plan().levels for b in lvl.blocks if b.hops is not None)
    row = graph_block.domain.tolist().index(DOMAINS.index("graph"))
    assert graph_block.hops is not None
    assert graph_block.hops[row].tolist() == [[0, -1, 1], [-1, 0, -1], [1, -1, 0]]


def test_equality_ignores_node_ids_but_not_structure() -> None:
    base = Hierarchy.from_nested(
        Node([[0, 1], Node([2, 3], domain="graph", edges=[(0, 1)], label="g")], domain="set")
    )
    # the same forest with internal nodes numbered differently (root last)
    same = Hierarchy(
        [4, 4, 5, 5, 6, 6, -1],
        num_tokens=4,
        domain=[0, 0, 0, 0, 1, 3, 0],
        coord=[[0, 0], [1, 0], [0, 0], [1, 0], [0, 0], [0, 0], [0, 0]],
        graph_edges=[[2], [3]],
        labels={5: "g"},
    )
    differs = Hierarchy.from_nested(Node([[0, 1], Node([2, 3], domain="graph", label="g")], domain="set"))
    assert base.parent.tolist() != same.parent.tolist()
    assert base == same
    assert base != differs  # the edge
    assert base != Hierarchy.from_nested(
        Node([[0, 1], Node([2, 3], domain="graph", edges=[(0, 1)])], domain="set")
    )
    assert base != Hierarchy.from_nested(
        Node([[1, 0], Node([2, 3], domain="graph", edges=[(0, 1)], label="g")], domain="set")
    )
