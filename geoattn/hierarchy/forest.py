r"""Batched forests over tokens: the nested-signal structure that hierarchical self-attention runs on.

A :class:`Hierarchy` is a forest whose leaves are tokens and whose internal nodes are sub-signals. Every
constructor funnels into one canonical form, validated once:

* nodes ``0 .. num_tokens - 1`` are the **tokens** (leaves); nodes ``num_tokens .. num_nodes - 1`` are
  **internal nodes**;
* ``parent[u]`` is the parent of node ``u``; ``-1`` marks a root (internal node) or a padding token (a token
  that belongs to no tree: it receives no attention and attends to nothing);
* ``domain[u]`` is the domain code of internal node ``u`` (an index into :data:`~geoattn.hierarchy.DOMAINS`),
  ``coord[u]`` the integer position of node ``u`` inside its parent's domain, ``graph_edges`` the undirected
  edges between siblings under ``graph``-domain parents.

Validation rejects, with a message naming the node: parents that do not exist (orphans), tokens used as
parents, cycles, internal nodes without children, leaf sets that do not match the tokens, and malformed
domains. The per-level index tensors used by the attention dynamic programme are computed lazily
(:meth:`Hierarchy.plan`, see :mod:`geoattn.hierarchy.plan`) and cached per device.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

import networkx as nx
import numpy as np
import numpy.typing as npt
import torch

from .errors import HierarchyError
from .nodes import DOMAINS, Domain, NestedTree, Node, domain_code
from .plan import LevelPlan, build_plan

__all__ = ["Hierarchy"]

IntArray: TypeAlias = npt.NDArray[np.int64]
ArrayLike: TypeAlias = "torch.Tensor | npt.ArrayLike"

_SET, _SEQUENCE, _GRID, _GRAPH = (DOMAINS.index(d) for d in ("set", "sequence", "grid", "graph"))


def _as_int_array(value: ArrayLike, *, name: str, ndim: int) -> IntArray:
    """``value`` as an int64 numpy array with ``ndim`` dimensions, or a HierarchyError naming ``name``."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise HierarchyError(f"{name}: expected an integer tensor, got dtype {value.dtype}")
        array = value.detach().cpu().numpy()
    else:
        array = np.asarray(value)
        if array.size == 0:
            array = array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise HierarchyError(f"{name}: expected integers, got dtype {array.dtype}")
    if array.ndim != ndim:
        raise HierarchyError(f"{name}: expected {ndim} dimension(s), got shape {tuple(array.shape)}")
    return array.astype(np.int64, copy=True)


def _family_coords(
    domain: int,
    num_children: int,
    *,
    grid_shape: Any,
    coords: Any,
    where: str,
) -> list[tuple[int, int]]:
    """Coordinates of the children of one internal node in its domain (validated)."""
    if grid_shape is not None and domain != _GRID:
        raise HierarchyError(
            f"{where}: grid_shape={grid_shape!r} given for a {DOMAINS[domain]!r} node; only grid nodes take it"
        )
    if coords is not None:
        pairs = [tuple(c) for c in coords]
        if len(pairs) != num_children or any(
            len(c) != 2 or not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in c)
            for c in pairs
        ):
            raise HierarchyError(
                f"{where}: coords must be {num_children} integer pairs (one per child), got {list(coords)!r}"
            )
        return [(int(a), int(b)) for a, b in pairs]
    if domain == _GRID:
        if grid_shape is None:
            raise HierarchyError(f"{where}: a grid node needs grid_shape=(rows, cols) or explicit coords")
        rows, cols = (int(v) for v in grid_shape)
        if rows * cols != num_children:
            raise HierarchyError(
                f"{where}: grid_shape={tuple(grid_shape)!r} has {rows * cols} cells but the node has "
                f"{num_children} children; rows * cols must equal the number of children"
            )
        return [divmod(i, cols) for i in range(num_children)]
    if domain == _SET:
        return [(0, 0)] * num_children
    return [(i, 0) for i in range(num_children)]


def _cycle_message(parent: IntArray, start: int) -> str:
    path = [start]
    seen = {start: 0}
    node = int(parent[start])
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = int(parent[node])
    cycle = [*path[seen[node] :], node]
    return " -> ".join(map(str, cycle))


class Hierarchy:
    r"""A batched forest over tokens: leaves are tokens, internal nodes are nested sub-signals.

    Hierarchical self-attention (:func:`geoattn.nn.hierarchical_attention`) runs a dynamic programme over
    this forest; the structure precomputes, per level, the index tensors that make it one batched
    operation per level (:meth:`plan`).

    Construct it from the canonical arrays (this constructor), or with :meth:`from_nested` (nested Python
    lists), :meth:`from_networkx`, :meth:`from_parent_indices` (per-level parent indices, PyG style),
    :meth:`regular` (``b``-ary shapes) and :meth:`batch` (several hierarchies side by side, optionally
    padded to a fixed number of tokens each).

    Args:
        parent: ``[num_nodes]`` integers: the parent of each node, ``-1`` for a root (internal node) or a
            padding token. Nodes ``0 .. num_tokens - 1`` are the tokens.
        num_tokens: the number of tokens (token slots, padding included).
        domain: ``[num_nodes]`` domain codes (indices into :data:`~geoattn.hierarchy.DOMAINS`), read for
            internal nodes (default: ``None``, every internal node a ``"sequence"``).
        coord: ``[num_nodes, 2]`` integer position of every node inside its parent's domain (default:
            ``None``: each node's rank among its siblings, ordered by node id, as ``(rank, 0)``).
        graph_edges: ``[2, E]`` undirected edges between siblings whose parent has domain ``"graph"``
            (default: ``None``, no edges).
        labels: optional names of internal nodes, e.g. the modality (default: ``None``).

    Raises:
        HierarchyError: what is wrong, at which node, and what is accepted.
    """

    def __init__(
        self,
        parent: ArrayLike,
        *,
        num_tokens: int,
        domain: ArrayLike | None = None,
        coord: ArrayLike | None = None,
        graph_edges: ArrayLike | None = None,
        labels: Mapping[int, str] | None = None,
    ) -> None:
        parent_a = _as_int_array(parent, name="parent", ndim=1)
        num_nodes = parent_a.shape[0]
        num_tokens = operator.index(num_tokens)
        if num_tokens < 0 or num_tokens > num_nodes:
            raise HierarchyError(
                f"num_tokens={num_tokens} but parent has {num_nodes} entries; the first num_tokens nodes are "
                f"the tokens, so 0 <= num_tokens <= len(parent)"
            )
        if domain is None:
            domain_a = np.full(num_nodes, _SEQUENCE, dtype=np.int64)
            domain_a[:num_tokens] = _SET
        else:
            domain_a = _as_int_array(domain, name="domain", ndim=1)
            if domain_a.shape[0] != num_nodes:
                raise HierarchyError(
                    f"domain has {domain_a.shape[0]} entries, parent has {num_nodes}; one per node"
                )
            bad = np.flatnonzero((domain_a < 0) | (domain_a >= len(DOMAINS)))
            if bad.size:
                raise HierarchyError(
                    f"domain[{bad[0]}] = {domain_a[bad[0]]} is not a domain code; accepted codes: "
                    + ", ".join(f"{i} ({d!r})" for i, d in enumerate(DOMAINS))
                )
        if graph_edges is None or np.size(graph_edges) == 0:
            edges_a = np.zeros((2, 0), dtype=np.int64)
        else:
            edges_a = _as_int_array(graph_edges, name="graph_edges", ndim=2)
        self._num_tokens = num_tokens
        self._parent = parent_a
        self._domain = domain_a
        self._edges = edges_a
        self._labels = {int(k): str(v) for k, v in (labels or {}).items()}
        self._validate_structure()
        if coord is None:
            coord_a = self._default_coords()
        else:
            coord_a = _as_int_array(coord, name="coord", ndim=2)
            if coord_a.shape != (num_nodes, 2):
                raise HierarchyError(
                    f"coord must have shape [{num_nodes}, 2] (one pair per node), got {coord_a.shape}"
                )
        self._coord = coord_a
        self._validate_edges()
        bad_labels = [k for k in self._labels if not num_tokens <= k < num_nodes]
        if bad_labels:
            raise HierarchyError(
                f"labels name node {bad_labels[0]}, which is not an internal node "
                f"(internal nodes are {num_tokens}..{num_nodes - 1})"
            )
        self._plans: dict[torch.device, LevelPlan] = {}
        self._repeats: dict[int, Hierarchy] = {}

    # ------------------------------------------------------------------ validation
    def _validate_structure(self) -> None:
        parent, num_tokens = self._parent, self._num_tokens
        num_nodes = parent.shape[0]
        bad = np.flatnonzero((parent < -1) | (parent >= num_nodes))
        if bad.size:
            u = int(bad[0])
            raise HierarchyError(
                f"orphan: node {u} has parent {parent[u]}, which does not exist (nodes are 0..{num_nodes - 1}; "
                f"-1 marks a root or a padding token)"
            )
        bad = np.flatnonzero((parent >= 0) & (parent < num_tokens))
        if bad.size:
            u = int(bad[0])
            raise HierarchyError(
                f"node {u} has parent {parent[u]}, which is a token: nodes 0..{num_tokens - 1} are tokens "
                f"(leaves); parents must be internal nodes {num_tokens}..{num_nodes - 1}"
            )
        # Depth and root by pointer jumping: after r rounds `anc` is the 2^r-th ancestor (or -1).
        anc = parent.copy()
        depth = (parent >= 0).astype(np.int64)
        for _ in range(max(1, math.ceil(math.log2(num_nodes + 1))) + 1):
            has = anc >= 0
            if not has.any():
                break
            nxt = anc[has]
            depth[has] += depth[nxt]
            anc[has] = anc[nxt]
        on_cycle = np.flatnonzero(anc >= 0)
        if on_cycle.size:
            raise HierarchyError(
                f"cycle: {_cycle_message(parent, int(on_cycle[0]))} (following parent pointers); "
                f"a hierarchy must be a forest"
            )
        num_children = np.bincount(parent[parent >= 0], minlength=num_nodes)
        empty = np.flatnonzero(num_children[num_tokens:] == 0)
        if empty.size:
            u = int(empty[0]) + num_tokens
            raise HierarchyError(
                f"internal node {u} has no children; every internal node needs at least one child "
                f"(a token or another internal node)"
            )
        # Height and leaf counts, bottom-up by depth.
        is_leaf = np.zeros(num_nodes, dtype=np.int64)
        is_leaf[:num_tokens] = parent[:num_tokens] >= 0
        height = np.zeros(num_nodes, dtype=np.int64)
        leaf_count = is_leaf.copy()
        order = np.argsort(-depth, kind="stable")
        bounds = np.flatnonzero(np.diff(depth[order])) + 1
        for group in np.split(order, bounds):
            group = group[parent[group] >= 0]
            if group.size:
                np.maximum.at(height, parent[group], height[group] + 1)
                np.add.at(leaf_count, parent[group], leaf_count[group])
        root_of = self._roots_by_jumping(parent)
        roots = np.flatnonzero((parent < 0) & (np.arange(num_nodes) >= num_tokens))
        tree_index = np.full(num_nodes, -1, dtype=np.int64)
        rank = np.full(num_nodes, -1, dtype=np.int64)
        rank[roots] = np.arange(roots.size)
        in_tree = root_of >= num_tokens
        tree_index[in_tree] = rank[root_of[in_tree]]
        self._depth = depth
        self._height = height
        self._leaf_count = leaf_count
        self._roots = roots
        self._tree_index = tree_index

    @staticmethod
    def _roots_by_jumping(parent: IntArray) -> IntArray:
        """The root of every node (a padding token is its own root)."""
        up = np.where(parent >= 0, parent, np.arange(parent.shape[0]))
        while True:
            nxt = up[up]
            if np.array_equal(nxt, up):
                return up
            up = nxt

    def _default_coords(self) -> IntArray:
        """``(rank among siblings by node id, 0)`` for sequence/graph parents, ``(0, 0)`` under sets."""
        parent = self._parent
        coord = np.zeros((parent.shape[0], 2), dtype=np.int64)
        child = np.flatnonzero(parent >= 0)
        order = child[np.argsort(parent[child], kind="stable")]
        sorted_parent = parent[order]
        starts = np.searchsorted(sorted_parent, sorted_parent, side="left")
        rank = np.arange(order.size) - starts
        positioned = self._domain[sorted_parent] != _SET
        coord[order[positioned], 0] = rank[positioned]
        grid_parents = np.unique(sorted_parent[self._domain[sorted_parent] == _GRID])
        if grid_parents.size:
            raise HierarchyError(
                f"internal node {grid_parents[0]} has domain 'grid' but no coord was given; grid children need "
                f"explicit (row, col) coordinates (pass coord=, or use from_nested with grid_shape)"
            )
        return coord

    def _validate_edges(self) -> None:
        edges, parent = self._edges, self._parent
        if edges.shape[0] != 2:
            raise HierarchyError(f"graph_edges must have shape [2, E], got {tuple(edges.shape)}")
        if edges.size == 0:
            return
        num_nodes = parent.shape[0]
        bad = np.flatnonzero(((edges < 0) | (edges >= num_nodes)).any(0))
        if bad.size:
            raise HierarchyError(
                f"graph_edges[:, {bad[0]}] = {edges[:, bad[0]].tolist()} names a node that does not exist"
            )
        pu, pv = parent[edges[0]], parent[edges[1]]
        bad = np.flatnonzero((pu != pv) | (pu < 0))
        if bad.size:
            u, v = edges[:, bad[0]].tolist()
            raise HierarchyError(
                f"graph edge ({u}, {v}) joins nodes that are not siblings (parents {pu[bad[0]]} and {pv[bad[0]]}); "
                f"graph edges connect children of the same 'graph' node"
            )
        bad = np.flatnonzero(self._domain[pu] != _GRAPH)
        if bad.size:
            u, v = edges[:, bad[0]].tolist()
            raise HierarchyError(
                f"graph edge ({u}, {v}) lies under node {pu[bad[0]]} of domain {DOMAINS[self._domain[pu[bad[0]]]]!r}; "
                f"only 'graph' nodes take edges"
            )
        bad = np.flatnonzero(edges[0] == edges[1])
        if bad.size:
            raise HierarchyError(
                f"graph edge ({edges[0, bad[0]]}, {edges[0, bad[0]]}) is a self-loop; edges join two distinct siblings"
            )

    # ------------------------------------------------------------------ canonical accessors
    @property
    def num_tokens(self) -> int:
        """Token slots covered by this hierarchy (padding included)."""
        return self._num_tokens

    @property
    def num_nodes(self) -> int:
        """Tokens plus internal nodes."""
        return int(self._parent.shape[0])

    @property
    def num_trees(self) -> int:
        """Number of trees (roots) in the forest."""
        return int(self._roots.size)

    @property
    def parent(self) -> torch.Tensor:
        """``[num_nodes]`` parent of each node, ``-1`` for roots and padding tokens."""
        return torch.from_numpy(self._parent.copy())

    @property
    def domain(self) -> torch.Tensor:
        """``[num_nodes]`` domain codes (indices into :data:`~geoattn.hierarchy.DOMAINS`); tokens hold 0."""
        return torch.from_numpy(self._domain.copy())

    @property
    def coord(self) -> torch.Tensor:
        """``[num_nodes, 2]`` position of each node inside its parent's domain."""
        return torch.from_numpy(self._coord.copy())

    @property
    def graph_edges(self) -> torch.Tensor:
        """``[2, E]`` undirected edges between siblings under ``graph`` nodes."""
        return torch.from_numpy(self._edges.copy())

    @property
    def labels(self) -> dict[int, str]:
        """Names of the labelled internal nodes."""
        return dict(self._labels)

    @property
    def roots(self) -> torch.Tensor:
        """``[num_trees]`` root node of each tree, in increasing node id (the tree order)."""
        return torch.from_numpy(self._roots.copy())

    @property
    def token_mask(self) -> torch.Tensor:
        """``[num_tokens]`` ``True`` for tokens in a tree, ``False`` for padding."""
        return torch.from_numpy(self._parent[: self._num_tokens] >= 0)

    @property
    def tree_index(self) -> torch.Tensor:
        """``[num_nodes]`` index of each node's tree, ``-1`` for padding tokens."""
        return torch.from_numpy(self._tree_index.copy())

    @property
    def leaf_count(self) -> torch.Tensor:
        """``[num_nodes]`` number of tokens under each node (1 for a token in a tree, 0 for padding)."""
        return torch.from_numpy(self._leaf_count.copy())

    @property
    def depth(self) -> int:
        """Largest number of edges from a root to a token (0 for an empty forest)."""
        return int(self._height.max(initial=0))

    def children(self, node: int) -> list[int]:
        """The children of ``node``, in increasing node id."""
        return [int(u) for u in np.flatnonzero(self._parent == node)]

    @property
    def num_block_pairs(self) -> int:
        r"""Logits the dynamic programme computes: :math:`\sum_A b_A^2` over families of two or more children.

        Flat softmax attention over the same trees computes :math:`\sum_{\text{trees}} N_t^2`.
        """
        child = self._parent[self._parent >= 0]
        counts = np.bincount(child, minlength=self.num_nodes)
        return int((counts[counts > 1] ** 2).sum())

    @property
    def num_flat_pairs(self) -> int:
        r"""Logits of flat softmax attention within each tree: :math:`\sum_t N_t^2`."""
        return int((self._leaf_count[self._roots] ** 2).sum())

    def __repr__(self) -> str:
        return (
            f"Hierarchy(num_tokens={self.num_tokens}, num_nodes={self.num_nodes}, num_trees={self.num_trees}, "
            f"depth={self.depth})"
        )

    def _canonical(self) -> tuple[IntArray, IntArray, IntArray, IntArray, dict[int, str]]:
        """The arrays with internal nodes renumbered by (depth, smallest token below): id-independent."""
        num_tokens, num_nodes = self._num_tokens, self.num_nodes
        smallest = np.where(np.arange(num_nodes) < num_tokens, np.arange(num_nodes), num_nodes)
        order = np.argsort(-self._depth, kind="stable")
        bounds = np.flatnonzero(np.diff(self._depth[order])) + 1
        for group in np.split(order, bounds):
            group = group[self._parent[group] >= 0]
            np.minimum.at(smallest, self._parent[group], smallest[group])
        internal = np.arange(num_tokens, num_nodes)
        # two internal nodes at one depth are disjoint, so (depth, smallest token) is a unique key
        ranked = internal[np.lexsort((smallest[internal], self._depth[internal]))]
        new_id = np.arange(num_nodes)
        new_id[ranked] = num_tokens + np.arange(ranked.size)
        inverse = np.argsort(new_id)
        parent = np.where(self._parent >= 0, new_id[np.maximum(self._parent, 0)], -1)[inverse]
        domain = self._domain[inverse]
        domain[:num_tokens] = 0
        edges = _canonical_edges(new_id[self._edges])
        labels = {int(new_id[k]): v for k, v in self._labels.items()}
        return parent, domain, self._coord[inverse], edges, labels

    def __eq__(self, other: object) -> bool:
        """The same forest: tokens, structure, domains, coordinates, edges and labels (node ids may differ)."""
        if not isinstance(other, Hierarchy):
            return NotImplemented
        if (self._num_tokens, self.num_nodes) != (other._num_tokens, other.num_nodes):
            return False
        mine, theirs = self._canonical(), other._canonical()
        return (
            all(np.array_equal(a, b) for a, b in zip(mine[:4], theirs[:4], strict=True))
            and mine[4] == theirs[4]
        )

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ per-level plan
    def plan(self, device: torch.device | str | None = None) -> LevelPlan:
        """The per-level index tensors of the dynamic programme on ``device`` (built once, then cached).

        See :class:`~geoattn.hierarchy.LevelPlan`.
        """
        device = torch.device("cpu") if device is None else torch.device(device)
        if device not in self._plans:
            cpu = self._plans.get(torch.device("cpu"))
            if cpu is None:
                cpu = build_plan(
                    parent=self._parent,
                    num_tokens=self._num_tokens,
                    height=self._height,
                    leaf_count=self._leaf_count,
                    domain=self._domain,
                    coord=self._coord,
                    graph_edges=self._edges,
                )
                self._plans[torch.device("cpu")] = cpu
            if device != torch.device("cpu"):
                self._plans[device] = cpu.to(device)
        return self._plans[device]

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_nested(
        cls,
        tree: NestedTree,
        *,
        num_tokens: int | None = None,
        default_domain: Domain = "sequence",
    ) -> Hierarchy:
        """One tree from nested Python lists: ints are tokens, lists (or :class:`Node`) internal nodes.

        ``[[0, 1, 2], [3, [4, 5]]]`` is a root with two children, the second of which has a token and a
        two-token sub-signal. Every token ``0 .. num_tokens - 1`` must be a leaf exactly once (tokens may
        appear in any order). A bare int is a one-token tree.

        Args:
            tree: the nested description.
            num_tokens: expected number of tokens; a mismatch with the leaves is an error (default:
                ``None``, the number of leaves). Pad batches with :meth:`batch` instead.
            default_domain: domain of plain lists (default: ``"sequence"``).

        Raises:
            HierarchyError: empty lists, leaves that are not ints, tokens missing, repeated or out of range,
                a list that contains itself (cycle) or appears twice, malformed :class:`Node` fields.
        """
        default_code = domain_code(default_domain, where="default_domain")
        tokens: list[int] = []  # leaf token, in visiting order
        token_parent: list[int] = []  # internal index of its parent
        token_coord: list[tuple[int, int]] = []
        token_path: list[str] = []
        internal_parent: list[int] = []
        internal_domain: list[int] = []
        internal_coord: list[tuple[int, int]] = []
        labels: dict[int, str] = {}
        seen: dict[int, int] = {}  # id(list) -> internal index

        # (object, parent internal index, position in the parent, coordinate inside the parent, path)
        root: Any = [tree] if _is_leaf(tree) else tree
        stack: list[tuple[Any, int, int, tuple[int, int], str]] = [(root, -1, 0, (0, 0), "tree")]
        family: list[list[int]] = []  # per internal node: children as token (>= 0) or ~internal index (< 0)
        node_edges_of: dict[int, list[tuple[int, int]]] = {}
        while stack:
            obj, parent_index, position, xy, path = stack.pop()
            if _is_leaf(obj):
                token = operator.index(obj)
                tokens.append(token)
                token_parent.append(parent_index)
                token_coord.append(xy)
                token_path.append(path)
                family[parent_index][position] = token if token >= 0 else -(1 << 62)
                continue
            if isinstance(obj, Node):
                node: Node | None = obj
                children_obj: Any = obj.children
            elif isinstance(obj, list | tuple):
                node = None
                children_obj = obj
            else:
                raise HierarchyError(
                    f"{path}: got {obj!r} ({type(obj).__name__}); accepted: a token index (int), a list or tuple "
                    f"of sub-trees, or geoattn.hierarchy.Node"
                )
            key = id(obj)
            if key in seen:
                ancestors = set()
                a = parent_index
                while a >= 0:
                    ancestors.add(a)
                    a = internal_parent[a]
                what = (
                    "contains itself (a cycle)"
                    if seen[key] in ancestors
                    else "appears twice (a node has one parent)"
                )
                raise HierarchyError(f"{path}: this list {what}; a hierarchy must be a tree")
            index = len(internal_parent)
            seen[key] = index
            if not isinstance(children_obj, Sequence) or isinstance(children_obj, str):
                raise HierarchyError(
                    f"{path}: Node.children must be a list or tuple, got {type(children_obj).__name__}"
                )
            children = list(children_obj)
            if not children:
                raise HierarchyError(
                    f"{path}: empty internal node; every internal node needs at least one child "
                    f"(a token index or a non-empty list)"
                )
            edges_in: Sequence[tuple[int, int]] = ()
            if node is None:
                code, grid_shape, coords = default_code, None, None
            else:
                code = domain_code(node.domain, where=f"{path}: Node.domain")
                grid_shape, coords, edges_in = node.grid_shape, node.coords, node.edges
                if node.label is not None:
                    labels[index] = node.label
            child_coords = _family_coords(
                code, len(children), grid_shape=grid_shape, coords=coords, where=path
            )
            if edges_in:
                if code != _GRAPH:
                    raise HierarchyError(
                        f"{path}: edges given for a {DOMAINS[code]!r} node; only graph nodes take edges"
                    )
                pairs = []
                for edge in edges_in:
                    i, j = (operator.index(v) for v in edge)
                    if not (0 <= i < len(children) and 0 <= j < len(children)) or i == j:
                        raise HierarchyError(
                            f"{path}: edge {tuple(edge)!r} must join two distinct child positions in 0..{len(children) - 1}"
                        )
                    pairs.append((i, j))
                node_edges_of[index] = pairs
            if parent_index >= 0:
                family[parent_index][position] = ~index
            internal_parent.append(parent_index)
            internal_coord.append(xy)
            internal_domain.append(code)
            family.append([0] * len(children))
            for pos in reversed(range(len(children))):
                stack.append((children[pos], index, pos, child_coords[pos], f"{path}[{pos}]"))

        num_leaves = len(tokens)
        expected = num_leaves if num_tokens is None else operator.index(num_tokens)
        token_array = np.asarray(tokens, dtype=np.int64)
        bad = np.flatnonzero((token_array < 0) | (token_array >= expected))
        if bad.size:
            raise HierarchyError(
                f"{token_path[bad[0]]}: token {tokens[bad[0]]} is out of range; the tree has {num_leaves} leaves "
                f"and num_tokens={expected}, so tokens are 0..{expected - 1}, each a leaf exactly once"
            )
        counts = np.bincount(token_array, minlength=expected)
        if (counts > 1).any():
            t = int(np.flatnonzero(counts > 1)[0])
            where = [token_path[i] for i in np.flatnonzero(token_array == t)]
            raise HierarchyError(
                f"token {t} is a leaf {counts[t]} times (at {', '.join(where)}); each token is a leaf exactly once"
            )
        if num_leaves != expected:
            missing = np.flatnonzero(counts == 0)
            raise HierarchyError(
                f"the tree has {num_leaves} leaves but num_tokens={expected}: token {missing[0]} is not a leaf; every "
                f"token must be a leaf exactly once (pad batches with Hierarchy.batch(..., num_tokens=N))"
            )
        num_internal = len(internal_parent)
        parent = np.empty(expected + num_internal, dtype=np.int64)
        parent[token_array] = np.asarray(token_parent, dtype=np.int64) + expected
        internal = np.asarray(internal_parent, dtype=np.int64)
        parent[expected:] = np.where(internal >= 0, internal + expected, -1)
        domain = np.zeros(expected + num_internal, dtype=np.int64)
        domain[expected:] = internal_domain
        coord = np.zeros((expected + num_internal, 2), dtype=np.int64)
        coord[token_array] = np.asarray(token_coord, dtype=np.int64).reshape(-1, 2)
        coord[expected:] = np.asarray(internal_coord, dtype=np.int64).reshape(-1, 2)
        graph_edges = (
            np.asarray(
                [
                    [_ref_to_node(family[a][i], expected), _ref_to_node(family[a][j], expected)]
                    for a, pairs in node_edges_of.items()
                    for i, j in pairs
                ],
                dtype=np.int64,
            )
            .reshape(-1, 2)
            .T
        )
        return cls(
            parent,
            num_tokens=expected,
            domain=domain,
            coord=coord,
            graph_edges=graph_edges,
            labels={expected + k: v for k, v in labels.items()},
        )

    @classmethod
    def from_networkx(
        cls,
        graph: nx.DiGraph,
        *,
        num_tokens: int | None = None,
        root: Hashable | None = None,
        default_domain: Domain = "sequence",
    ) -> Hierarchy:
        """A forest from a directed networkx graph with edges parent -> child.

        Leaves (no out-edges) carry a ``token`` attribute (int). Optional attributes: on internal nodes
        ``domain`` (a name in :data:`~geoattn.hierarchy.DOMAINS`), ``label``, ``grid_shape`` and, for graph
        nodes, ``edges`` (pairs of child node names); on any node ``coord`` (its position inside its
        parent's domain; otherwise the rank in the parent's successor order is used). Trees are ordered by
        their roots' order in ``graph``; internal nodes are numbered in node order, so
        ``Hierarchy.from_networkx(h.to_networkx()) == h``.

        Args:
            graph: the forest.
            num_tokens: token slots (default: ``None``: ``graph.graph["num_tokens"]`` if present, where tokens
                missing from the graph are padding; otherwise the number of leaves, all of them required).
            root: if given, the graph must be one tree hanging from ``root``; other nodes are orphans
                (default: ``None``, every weakly connected component is a tree).
            default_domain: domain of internal nodes without a ``domain`` attribute (default: ``"sequence"``).

        Raises:
            HierarchyError: an undirected or multi-graph, a node with two parents, a cycle, nodes not
                reachable from ``root``, a leaf without ``token``, tokens repeated or out of range.
        """
        if not isinstance(graph, nx.DiGraph) or graph.is_multigraph():
            raise HierarchyError(
                f"from_networkx: expected a networkx.DiGraph with edges parent -> child, got {type(graph).__name__}; "
                f"orient an undirected tree with networkx.bfs_tree(graph, root)"
            )
        for node, degree in graph.in_degree():
            if degree > 1:
                parents = list(graph.predecessors(node))
                raise HierarchyError(
                    f"node {node!r} has {degree} parents {parents!r}; each node has at most one parent"
                )
        if not nx.is_directed_acyclic_graph(graph):
            cycle = nx.find_cycle(graph)
            path = " -> ".join(repr(u) for u, _ in cycle) + f" -> {cycle[0][0]!r}"
            raise HierarchyError(f"cycle: {path}; a hierarchy must be a forest")
        if root is not None:
            if root not in graph:
                raise HierarchyError(f"root {root!r} is not a node of the graph")
            reachable = nx.descendants(graph, root) | {root}
            orphans = [u for u in graph if u not in reachable]
            if orphans:
                raise HierarchyError(
                    f"orphan: node {orphans[0]!r} is not reachable from root {root!r} ({len(orphans)} such nodes); "
                    f"with root= the graph must be one tree"
                )
        leaves = [u for u in graph if graph.out_degree(u) == 0]
        internal = [u for u in graph if graph.out_degree(u) > 0]
        tokens: dict[Hashable, int] = {}
        for u in leaves:
            data = graph.nodes[u]
            if "token" not in data:
                raise HierarchyError(
                    f"node {u!r} has no children and no 'token' attribute; leaves are tokens (set token=<index>), "
                    f"internal nodes need at least one child"
                )
            value = data["token"]
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise HierarchyError(f"node {u!r}: token must be an int, got {value!r}")
            tokens[u] = int(value)
        for u in internal:
            if "token" in graph.nodes[u]:
                raise HierarchyError(
                    f"node {u!r} has a 'token' attribute but also children; tokens are leaves"
                )
        explicit = num_tokens if num_tokens is not None else graph.graph.get("num_tokens")
        count = len(leaves) if explicit is None else operator.index(explicit)
        values = np.asarray(list(tokens.values()), dtype=np.int64)
        bad = np.flatnonzero((values < 0) | (values >= count))
        if bad.size:
            raise HierarchyError(
                f"node {leaves[bad[0]]!r}: token {values[bad[0]]} is out of range; tokens are 0..{count - 1} "
                f"(num_tokens={count})"
            )
        counts = np.bincount(values, minlength=count)
        if (counts > 1).any():
            t = int(np.flatnonzero(counts > 1)[0])
            names = [u for u, v in tokens.items() if v == t]
            raise HierarchyError(
                f"token {t} is carried by {len(names)} leaves {names!r}; each token is a leaf exactly once"
            )
        if explicit is None and len(leaves) != count:  # pragma: no cover - implied by the two checks above
            raise HierarchyError(f"{len(leaves)} leaves but {count} tokens")
        index = {u: count + i for i, u in enumerate(internal)}
        index.update(tokens)
        num_nodes = count + len(internal)
        parent = np.full(num_nodes, -1, dtype=np.int64)
        domain = np.zeros(num_nodes, dtype=np.int64)
        coord = np.zeros((num_nodes, 2), dtype=np.int64)
        labels: dict[int, str] = {}
        graph_edges: list[tuple[int, int]] = []
        default_code = domain_code(default_domain, where="default_domain")
        for u in internal:
            data = graph.nodes[u]
            a = index[u]
            code = domain_code(data["domain"], where=f"node {u!r}") if "domain" in data else default_code
            domain[a] = code
            if data.get("label") is not None:
                labels[a] = str(data["label"])
            children = list(graph.successors(u))
            for c in children:
                parent[index[c]] = a
            explicit_coords = [graph.nodes[c].get("coord") for c in children]
            coords = explicit_coords if all(c is not None for c in explicit_coords) else None
            family = _family_coords(
                code, len(children), grid_shape=data.get("grid_shape"), coords=coords, where=f"node {u!r}"
            )
            coord[[index[c] for c in children]] = np.asarray(family, dtype=np.int64).reshape(-1, 2)
            for edge in data.get("edges", ()):
                try:
                    x, y = edge
                except (TypeError, ValueError):
                    raise HierarchyError(
                        f"node {u!r}: edges must be pairs of child nodes, got {edge!r}"
                    ) from None
                if x not in index or y not in index:
                    raise HierarchyError(f"node {u!r}: edge {edge!r} names a node that is not in the graph")
                graph_edges.append((index[x], index[y]))
        return cls(
            parent,
            num_tokens=count,
            domain=domain,
            coord=coord,
            graph_edges=np.asarray(graph_edges, dtype=np.int64).reshape(-1, 2).T,
            labels=labels,
        )

    def to_networkx(self, tree: int | None = None) -> nx.DiGraph:
        """The forest (or tree ``tree``) as a networkx DiGraph with edges parent -> child, for inspection.

        Nodes are the canonical node ids; tokens carry ``token`` and ``coord``; internal nodes ``domain``
        (a name), ``coord``, ``label`` if any, ``edges`` (pairs of child ids) for graph nodes.
        ``graph.graph["num_tokens"]`` records the token slots, so padding survives the round trip through
        :meth:`from_networkx`.
        """
        if tree is not None and not 0 <= tree < self.num_trees:
            raise IndexError(f"tree={tree} out of range: the forest has {self.num_trees} trees")
        keep = self._tree_index >= 0 if tree is None else self._tree_index == tree
        graph = nx.DiGraph(num_tokens=self._num_tokens)
        internal_edges: dict[int, list[tuple[int, int]]] = {}
        for u, v in self._edges.T.tolist():
            internal_edges.setdefault(int(self._parent[u]), []).append((u, v))
        for u in np.flatnonzero(keep).tolist():
            attrs: dict[str, Any] = {"coord": tuple(self._coord[u].tolist())}
            if u < self._num_tokens:
                attrs["token"] = u
            else:
                attrs["domain"] = DOMAINS[int(self._domain[u])]
                if u in self._labels:
                    attrs["label"] = self._labels[u]
                if u in internal_edges:
                    attrs["edges"] = internal_edges[u]
            graph.add_node(u, **attrs)
        for u in np.flatnonzero(keep & (self._parent >= 0)).tolist():
            graph.add_edge(int(self._parent[u]), u)
        return graph

    @classmethod
    def from_parent_indices(
        cls,
        parents: Sequence[ArrayLike],
        *,
        domains: Domain | Sequence[Domain] = "sequence",
        coords: Sequence[ArrayLike | None] | None = None,
    ) -> Hierarchy:
        """A forest from per-level parent indices, as PyG pooling produces cluster assignments.

        ``parents[0][t]`` is the level-1 node of token ``t`` (``-1``: a padding token);
        ``parents[l][i]`` is the level-``l+1`` node of level-``l`` node ``i``. The nodes of the top level
        (``max(parents[-1]) + 1`` of them) are the roots. Every level-``l`` node is a leaf ancestor at the
        same depth, which loses nothing: unary nodes are no-ops for hierarchical attention, so an irregular
        tree is written with unary chains.

        Args:
            parents: one integer tensor per level, ``[num_tokens]``, ``[n_1]``, ..., ``[n_{L-1}]``, where
                ``n_l = len(parents[l])``.
            domains: domain of the internal nodes of each level, bottom-up (level 1 first), or one domain for
                all (default: ``"sequence"``; children are ordered by index).
            coords: optional ``[n_l, 2]`` coordinates of the level-``l`` nodes inside their parents, per level
                (``None`` entries use the index order); required for ``grid`` levels (default: ``None``).

        Raises:
            HierarchyError: a level that is not a 1-D integer tensor, a parent index out of range or ``-1``
                above the tokens (orphans), a node with no children (empty internal node).
        """
        if len(parents) == 0:
            raise HierarchyError(
                "from_parent_indices: parents must hold at least one level (tokens -> level 1)"
            )
        levels = [_as_int_array(p, name=f"parents[{i}]", ndim=1) for i, p in enumerate(parents)]
        num_levels = len(levels)
        sizes = [lvl.shape[0] for lvl in levels]
        top = levels[-1]
        sizes.append(int(top.max(initial=-1)) + 1)
        if isinstance(domains, str):
            level_domains = [domain_code(domains, where="domains")] * num_levels
        else:
            if len(domains) != num_levels:
                raise HierarchyError(
                    f"domains has {len(domains)} entries for {num_levels} levels; give one per level or one for all"
                )
            level_domains = [domain_code(d, where=f"domains[{i}]") for i, d in enumerate(domains)]
        if coords is not None and len(coords) != num_levels:
            raise HierarchyError(
                f"coords has {len(coords)} entries for {num_levels} levels; one per level (None allowed)"
            )
        offsets = np.cumsum([0, *sizes])
        num_nodes = int(offsets[-1])
        parent = np.full(num_nodes, -1, dtype=np.int64)
        domain = np.zeros(num_nodes, dtype=np.int64)
        coord = np.zeros((num_nodes, 2), dtype=np.int64)
        for lvl, (p, size_above) in enumerate(zip(levels, sizes[1:], strict=True)):
            low = -1 if lvl == 0 else 0
            bad = np.flatnonzero((p < low) | (p >= size_above))
            if bad.size:
                i = int(bad[0])
                allowed = "-1 (padding) or " if lvl == 0 else ""
                raise HierarchyError(
                    f"orphan: parents[{lvl}][{i}] = {p[i]}, but level {lvl + 1} has {size_above} nodes; accepted: "
                    f"{allowed}0..{size_above - 1}" + ("" if lvl == 0 else " (only tokens may be padding)")
                )
            counts = np.bincount(p[p >= 0], minlength=size_above)
            empty = np.flatnonzero(counts == 0)
            if empty.size:
                raise HierarchyError(
                    f"level-{lvl + 1} node {empty[0]} has no children in parents[{lvl}]; every internal node needs "
                    f"at least one child"
                )
            ids = offsets[lvl] + np.arange(p.shape[0])
            parent[ids] = np.where(p >= 0, offsets[lvl + 1] + p, -1)
            domain[offsets[lvl + 1] : offsets[lvl + 2]] = level_domains[lvl]
            given = None if coords is None else coords[lvl]
            if given is not None:
                c = _as_int_array(given, name=f"coords[{lvl}]", ndim=2)
                if c.shape != (p.shape[0], 2):
                    raise HierarchyError(f"coords[{lvl}] must have shape [{p.shape[0]}, 2], got {c.shape}")
                coord[ids] = c
            elif level_domains[lvl] == _GRID:
                raise HierarchyError(
                    f"level {lvl + 1} has domain 'grid': coords[{lvl}] must give (row, col) of its children"
                )
            elif level_domains[lvl] != _SET:
                valid = np.flatnonzero(p >= 0)
                order = valid[np.argsort(p[valid], kind="stable")]
                starts = np.searchsorted(p[order], p[order], side="left")
                coord[ids[order], 0] = np.arange(order.size) - starts
        # Node ids: tokens, then level 1, level 2, ...: already the canonical layout.
        return cls(parent, num_tokens=sizes[0], domain=domain, coord=coord)

    @classmethod
    def regular(
        cls,
        shape: Sequence[int | tuple[int, int]],
        *,
        num_trees: int = 1,
        domain: Domain = "sequence",
    ) -> Hierarchy:
        """Regular trees: the token sequence reshaped to ``shape`` (outermost first), ``num_trees`` times.

        ``regular([4, 8])`` is a root with 4 children of 8 tokens each (tokens ``0..7`` under the first).
        An entry ``(rows, cols)`` makes that level's families ``grid`` nodes with ``rows * cols``
        children in row-major order; an int entry uses ``domain``.

        Args:
            shape: branching factors from the root down (each ``>= 1``).
            num_trees: trees side by side; tree ``t`` owns tokens ``t * prod(shape) ..`` (default: ``1``).
            domain: domain of levels given as ints (default: ``"sequence"``).

        Raises:
            HierarchyError: an empty shape, a branching factor below 1, ``num_trees < 1``.
        """
        if len(shape) == 0 or num_trees < 1:
            raise HierarchyError(
                f"regular: shape must be non-empty and num_trees >= 1, got shape={shape!r}, num_trees={num_trees}"
            )
        branching: list[int] = []
        level_domains: list[Domain] = []
        grid_cols: list[int] = []
        for entry in shape:
            if isinstance(entry, tuple):
                rows, cols = (operator.index(v) for v in entry)
                branching.append(rows * cols)
                level_domains.append("grid")
                grid_cols.append(cols)
            else:
                branching.append(operator.index(entry))
                level_domains.append(domain)
                grid_cols.append(0)
            if branching[-1] < 1:
                raise HierarchyError(f"regular: branching factors must be >= 1, got shape={shape!r}")
        # level l (0 = tokens) has num_trees * prod(branching[:L-l]) nodes; parent = index // b
        num_levels = len(branching)
        parents: list[IntArray] = []
        coords: list[IntArray | None] = []
        size = num_trees * math.prod(branching)
        for lvl in range(num_levels):
            above = num_levels - 1 - lvl  # index into `shape` of the families this level's nodes belong to
            b = branching[above]
            index = np.arange(size, dtype=np.int64)
            parents.append(index // b)
            rank, cols = index % b, grid_cols[above]
            if cols:
                coords.append(np.stack([rank // cols, rank % cols], axis=1))
            else:
                coords.append(None)  # sequence: rank in index order; set: no position
            size //= b
        return cls.from_parent_indices(parents, domains=list(reversed(level_domains)), coords=coords)

    @classmethod
    def batch(cls, hierarchies: Iterable[Hierarchy], *, num_tokens: int | None = None) -> Hierarchy:
        """Several hierarchies side by side as one forest.

        Args:
            hierarchies: the parts, in order.
            num_tokens: token slots per part (default: ``None``: parts are concatenated, PyG style, part
                ``i``'s tokens start where part ``i-1``'s end). With ``N``, part ``i`` owns tokens
                ``i*N .. (i+1)*N - 1``, matching a ``[B, N, ...]`` input; slots beyond a part's own tokens are
                padding.

        Raises:
            HierarchyError: no parts, or a part with more tokens than ``num_tokens``.
        """
        parts = list(hierarchies)
        if not parts:
            raise HierarchyError("batch: needs at least one hierarchy")
        if num_tokens is None:
            token_offsets = np.cumsum([0, *(h.num_tokens for h in parts)])
            total_tokens = int(token_offsets[-1])
        else:
            too_big = [i for i, h in enumerate(parts) if h.num_tokens > num_tokens]
            if too_big:
                i = too_big[0]
                raise HierarchyError(
                    f"batch: part {i} has {parts[i].num_tokens} tokens but num_tokens={num_tokens}; each part must "
                    f"fit into num_tokens slots"
                )
            token_offsets = np.arange(len(parts) + 1) * num_tokens
            total_tokens = len(parts) * num_tokens
        internal_counts = [h.num_nodes - h.num_tokens for h in parts]
        internal_offsets = total_tokens + np.cumsum([0, *internal_counts])
        num_nodes = int(internal_offsets[-1])
        parent = np.full(num_nodes, -1, dtype=np.int64)
        domain = np.zeros(num_nodes, dtype=np.int64)
        coord = np.zeros((num_nodes, 2), dtype=np.int64)
        edges: list[IntArray] = []
        labels: dict[int, str] = {}
        for i, h in enumerate(parts):
            new_id = np.concatenate(
                [
                    token_offsets[i] + np.arange(h.num_tokens),
                    internal_offsets[i] + np.arange(internal_counts[i]),
                ]
            ).astype(np.int64)
            parent[new_id] = np.where(h._parent >= 0, new_id[np.maximum(h._parent, 0)], -1)
            domain[new_id] = h._domain
            coord[new_id] = h._coord
            edges.append(new_id[h._edges])
            labels.update({int(new_id[k]): v for k, v in h._labels.items()})
        return cls(
            parent,
            num_tokens=total_tokens,
            domain=domain,
            coord=coord,
            graph_edges=np.concatenate(edges, axis=1),
            labels=labels,
        )

    def repeat(self, times: int) -> Hierarchy:
        """This hierarchy ``times`` times side by side, ``num_tokens`` slots each (cached)."""
        if times not in self._repeats:
            self._repeats[times] = Hierarchy.batch([self] * times, num_tokens=self._num_tokens)
        return self._repeats[times]


def _is_leaf(obj: object) -> bool:
    if isinstance(obj, bool):
        return False
    if isinstance(obj, int | np.integer):
        return True
    return (
        isinstance(obj, torch.Tensor)
        and obj.dim() == 0
        and not obj.is_floating_point()
        and obj.dtype != torch.bool
    )


def _canonical_edges(edges: IntArray) -> IntArray:
    if edges.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = np.sort(edges.T, axis=1)
    return np.unique(pairs, axis=0)


def _ref_to_node(ref: int, num_tokens: int) -> int:
    """A child reference of ``from_nested`` (token, or ``~internal index``) as a node id."""
    return ref if ref >= 0 else num_tokens + ~ref
