"""Every invalid hierarchy fails at construction with a message naming what, where, and what is accepted."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import networkx as nx
import pytest
import torch

from geoattn.hierarchy import Hierarchy, HierarchyError, Node


def _cyclic_list() -> list[Any]:
    inner: list[Any] = [1]
    outer: list[Any] = [0, inner]
    inner.append(outer)
    return outer


def _shared_list() -> list[Any]:
    shared = [1, 2]
    return [0, shared, shared]


NESTED: list[tuple[Callable[[], Any], dict[str, Any], str]] = [
    (lambda: [[0, 1], []], {}, r"tree\[1\]: empty internal node"),
    (lambda: [], {}, r"tree: empty internal node"),
    (lambda: [0, "a"], {}, r"tree\[1\]: got 'a' \(str\); accepted: a token index"),
    (lambda: [0, 1.0], {}, r"tree\[1\]: got 1.0 \(float\)"),
    (lambda: [0, True], {}, r"tree\[1\]: got True \(bool\)"),
    (lambda: [0, [5]], {}, r"tree\[1\]\[0\]: token 5 is out of range; the tree has 2 leaves"),
    (lambda: [0, -1], {}, r"token -1 is out of range"),
    (lambda: [0, [0, 1]], {}, r"token 0 is a leaf 2 times \(at tree\[0\], tree\[1\]\[0\]\)"),
    (lambda: [0, 1], {"num_tokens": 3}, r"2 leaves but num_tokens=3: token 2 is not a leaf"),
    (_cyclic_list, {}, r"tree\[1\]\[1\]: this list contains itself \(a cycle\)"),
    (_shared_list, {}, r"tree\[2\]: this list appears twice"),
    (lambda: Node([0, 1], domain="tree"), {}, r"unknown domain 'tree'; accepted domains: 'set', 'sequence'"),  # type: ignore[arg-type]
    (lambda: Node([0, 1], domain="grid"), {}, r"tree: a grid node needs grid_shape"),
    (
        lambda: Node([0, 1, 2], domain="grid", grid_shape=(2, 2)),
        {},
        r"grid_shape=\(2, 2\) has 4 cells but the node has 3",
    ),
    (lambda: Node([0, 1], grid_shape=(1, 2)), {}, r"grid_shape=\(1, 2\) given for a 'sequence' node"),
    (
        lambda: Node([0, 1], edges=[(0, 1)]),
        {},
        r"edges given for a 'sequence' node; only graph nodes take edges",
    ),
    (
        lambda: Node([0, 1], domain="graph", edges=[(0, 2)]),
        {},
        r"edge \(0, 2\) must join two distinct child positions in 0..1",
    ),
    (lambda: Node([0, 1], domain="graph", edges=[(1, 1)]), {}, r"edge \(1, 1\) must join two distinct"),
    (lambda: Node([0, 1], coords=[(0, 0)]), {}, r"coords must be 2 integer pairs"),
    (lambda: Node(0), {}, r"Node.children must be a list or tuple, got int"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("make", "kwargs", "message"), NESTED)
def test_nested_errors(make: Callable[[], Any], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(HierarchyError, match=message):
        Hierarchy.from_nested(make(), **kwargs)


CANONICAL: list[tuple[dict[str, Any], str]] = [
    (
        {"parent": [2, 5, -1], "num_tokens": 2},
        r"orphan: node 1 has parent 5, which does not exist \(nodes are 0..2",
    ),
    ({"parent": [2, -3, -1], "num_tokens": 2}, r"orphan: node 1 has parent -3"),
    (
        {"parent": [1, 2, -1], "num_tokens": 2},
        r"node 0 has parent 1, which is a token: nodes 0..1 are tokens",
    ),
    ({"parent": [2, 2, 3, 2], "num_tokens": 2}, r"cycle: 2 -> 3 -> 2 \(following parent pointers\)"),
    ({"parent": [2, 2, 2], "num_tokens": 2}, r"cycle: 2 -> 2"),
    ({"parent": [2, 2, -1, -1], "num_tokens": 2}, r"internal node 3 has no children"),
    ({"parent": [2, 2, -1], "num_tokens": 4}, r"num_tokens=4 but parent has 3 entries"),
    ({"parent": [[2, 2, -1]], "num_tokens": 2}, r"parent: expected 1 dimension\(s\)"),
    ({"parent": torch.tensor([2.0, 2.0, -1.0]), "num_tokens": 2}, r"parent: expected an integer tensor"),
    ({"parent": [2, 2, -1], "num_tokens": 2, "domain": [0, 0, 9]}, r"domain\[2\] = 9 is not a domain code"),
    ({"parent": [2, 2, -1], "num_tokens": 2, "domain": [0, 0]}, r"domain has 2 entries, parent has 3"),
    (
        {"parent": [2, 2, -1], "num_tokens": 2, "domain": [0, 0, 2]},
        r"internal node 2 has domain 'grid' but no coord",
    ),
    ({"parent": [2, 2, -1], "num_tokens": 2, "coord": [[0, 0]]}, r"coord must have shape \[3, 2\]"),
    (
        {"parent": [2, 2, -1], "num_tokens": 2, "graph_edges": [[0], [1]]},
        r"graph edge \(0, 1\) lies under node 2 of domain 'sequence'",
    ),
    (
        {"parent": [3, 4, 4, -1, 3], "num_tokens": 3, "domain": [0, 0, 0, 3, 3], "graph_edges": [[0], [1]]},
        r"graph edge \(0, 1\) joins nodes that are not siblings",
    ),
    ({"parent": [2, 2, -1], "num_tokens": 2, "domain": [0, 0, 3], "graph_edges": [[0], [0]]}, r"self-loop"),
    (
        {"parent": [2, 2, -1], "num_tokens": 2, "graph_edges": [[0], [7]]},
        r"graph_edges\[:, 0\] = \[0, 7\] names a node that does not exist",
    ),
    (
        {"parent": [2, 2, -1], "num_tokens": 2, "labels": {0: "x"}},
        r"labels name node 0, which is not an internal node",
    ),
]


@pytest.mark.parametrize(("kwargs", "message"), CANONICAL)
def test_canonical_errors(kwargs: dict[str, Any], message: str) -> None:
    parent = kwargs.pop("parent")
    with pytest.raises(HierarchyError, match=message):
        Hierarchy(parent, **kwargs)


def _graph(edges: list[tuple[Any, Any]], tokens: dict[Any, int], directed: bool = True) -> nx.Graph:
    g: nx.Graph = nx.DiGraph() if directed else nx.Graph()
    g.add_edges_from(edges)
    for node, token in tokens.items():
        g.nodes[node]["token"] = token
    return g


NETWORKX: list[tuple[Callable[[], nx.Graph], dict[str, Any], str]] = [
    (lambda: _graph([("r", "a")], {"a": 0}, directed=False), {}, r"expected a networkx.DiGraph .* got Graph"),
    (lambda: _graph([("r", "a"), ("s", "a")], {"a": 0}), {}, r"node 'a' has 2 parents \['r', 's'\]"),
    (lambda: _graph([("r", "s"), ("s", "r"), ("s", "a")], {"a": 0}), {}, r"cycle: 'r' -> 's' -> 'r'"),
    (
        lambda: _graph([("r", "a"), ("x", "b")], {"a": 0, "b": 1}),
        {"root": "r"},
        r"orphan: node 'x' is not reachable from root 'r'",
    ),
    (lambda: _graph([("r", "a")], {"a": 0}), {"root": "q"}, r"root 'q' is not a node"),
    (
        lambda: _graph([("r", "a"), ("r", "b")], {"a": 0}),
        {},
        r"node 'b' has no children and no 'token' attribute",
    ),
    (
        lambda: _graph([("r", "a")], {"a": 0, "r": 1}),
        {},
        r"node 'r' has a 'token' attribute but also children",
    ),
    (
        lambda: _graph([("r", "a"), ("r", "b")], {"a": 0, "b": 0}),
        {},
        r"token 0 is carried by 2 leaves \['a', 'b'\]",
    ),
    (
        lambda: _graph([("r", "a"), ("r", "b")], {"a": 0, "b": 2}),
        {},
        r"node 'b': token 2 is out of range; tokens are 0..1",
    ),
    (lambda: _graph([("r", "a")], {"a": "0"}), {}, r"node 'a': token must be an int, got '0'"),
]


@pytest.mark.parametrize(("make", "kwargs", "message"), NETWORKX)
def test_networkx_errors(make: Callable[[], nx.Graph], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(HierarchyError, match=message):
        Hierarchy.from_networkx(make(), **kwargs)  # type: ignore[arg-type]


PARENT_INDICES: list[tuple[list[Any], dict[str, Any], str]] = [
    (
        [torch.tensor([0, 0, 1]), torch.tensor([0, 3]), torch.tensor([0, 0])],
        {},
        r"orphan: parents\[1\]\[1\] = 3, but level 2 has 2 nodes; accepted: 0..1 \(only tokens may be padding\)",
    ),
    ([torch.tensor([0, 0, 1]), torch.tensor([0, 2])], {}, r"level-2 node 1 has no children in parents\[1\]"),
    (
        [torch.tensor([0, 0, 1]), torch.tensor([0, -1])],
        {},
        r"parents\[1\]\[1\] = -1.*only tokens may be padding",
    ),
    (
        [torch.tensor([0, 0, 5]), torch.tensor([0, 0])],
        {},
        r"parents\[0\]\[2\] = 5, but level 1 has 2 nodes; accepted: -1",
    ),
    (
        [torch.tensor([0, 0, 2]), torch.tensor([0, 0, 0])],
        {},
        r"level-1 node 1 has no children in parents\[0\]",
    ),
    ([torch.tensor([0.0, 1.0])], {}, r"parents\[0\]: expected an integer tensor"),
    ([torch.tensor([0, 0])], {"domains": ["set", "set"]}, r"domains has 2 entries for 1 levels"),
    ([torch.tensor([0, 0])], {"domains": "grid"}, r"level 1 has domain 'grid': coords\[0\] must give"),
    ([], {}, r"parents must hold at least one level"),
]


@pytest.mark.parametrize(("parents", "kwargs", "message"), PARENT_INDICES)
def test_parent_index_errors(parents: list[Any], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(HierarchyError, match=message):
        Hierarchy.from_parent_indices(parents, **kwargs)


def test_regular_and_batch_errors() -> None:
    with pytest.raises(HierarchyError, match=r"shape must be non-empty"):
        Hierarchy.regular([])
    with pytest.raises(HierarchyError, match=r"branching factors must be >= 1"):
        Hierarchy.regular([2, 0])
    with pytest.raises(HierarchyError, match=r"batch: needs at least one hierarchy"):
        Hierarchy.batch([])
    with pytest.raises(HierarchyError, match=r"part 1 has 3 tokens but num_tokens=2"):
        Hierarchy.batch([Hierarchy.from_nested([0, 1]), Hierarchy.from_nested([0, 1, 2])], num_tokens=2)


def test_errors_are_value_errors() -> None:
    """Callers catching ValueError (the boundary convention) also catch hierarchy errors."""
    with pytest.raises(ValueError, match="empty internal node"):
        Hierarchy.from_nested([])
