r"""Per-level index tensors: the layout that makes the hierarchical-attention DP one batched op per level.

Levels are node *heights*: tokens are level 0 and an internal node sits one level above its highest child.
A child lower than one level beneath its parent is lifted by a chain of **unary** nodes (exact no-ops for
hierarchical attention: a one-child family has the ``1 x 1`` matrix ``[[1]]``), so that every family of
level ``h`` takes its children from level ``h - 1`` only. Each level's nodes are ordered by family size
and cut into :class:`FamilyBlock`\ s of similar size (the same power-of-two bucket), whose families are
padded to the block's largest size ``b``: the DP then handles a block as dense ``[F, H, b, b]`` tensors.
Padding slots are masked; padding never carries attention mass.

Roots may sit at any level (a forest of trees of different depths); a level's non-root nodes are exactly
the children of the level above, and :attr:`Level.scatter_index` places their top-down results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

from .nodes import DOMAINS

__all__ = ["FamilyBlock", "Level", "LevelPlan", "build_plan"]

_GRAPH = DOMAINS.index("graph")
_SET = DOMAINS.index("set")
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class FamilyBlock:
    """Families of one level, padded to ``size`` children each.

    Attributes:
        start: index (in its level's node order) of the block's first family; the block's families are
            level nodes ``start .. start + num_families - 1``.
        child_index: ``[F, b]`` index of each child in the level below (``0`` in padding slots).
        child_mask: ``[F, b]`` ``True`` for real children.
        child_coord: ``[F, b, 2]`` each child's position inside its parent's domain.
        domain: ``[F]`` domain code of each family (index into :data:`~geoattn.hierarchy.DOMAINS`).
        hops: ``[F, b, b]`` hop distance between the children of ``graph`` families (``-1``: unreachable or
            not a graph family), or ``None`` if the block has no graph family.
        valid_slots: ``[num_children]`` flat indices of the real slots in ``child_index.reshape(-1)``
            (row-major), so results are compacted without a data-dependent boolean mask.
        has_position: whether any family has a domain with positions (anything but ``set``).
        is_full: whether every family has exactly ``b`` children (no padding slot to mask).
    """

    start: int
    child_index: torch.Tensor
    child_mask: torch.Tensor
    child_coord: torch.Tensor
    domain: torch.Tensor
    hops: torch.Tensor | None
    valid_slots: torch.Tensor
    has_position: bool
    is_full: bool

    @property
    def num_families(self) -> int:
        """``F``: families in the block."""
        return int(self.child_index.shape[0])

    @property
    def size(self) -> int:
        """``b``: the padded number of children."""
        return int(self.child_index.shape[1])

    def relative_positions(self) -> torch.Tensor:
        """``[F, b, b, 2]`` position of child ``j`` relative to child ``i`` in the parent's domain.

        ``sequence``/``grid``: ``coord[j] - coord[i]``; ``graph``: ``(hops(i, j), 0)`` with ``-1`` for
        unreachable; ``set``: zeros.
        """
        rel = self.child_coord[:, None, :, :] - self.child_coord[:, :, None, :]
        if self.hops is not None:
            is_graph = (self.domain == _GRAPH)[:, None, None, None]
            hops = torch.stack([self.hops, torch.zeros_like(self.hops)], dim=-1)
            rel = torch.where(is_graph, hops, rel)
        return rel

    def to(self, device: torch.device) -> FamilyBlock:
        """A copy on ``device``."""
        return FamilyBlock(
            start=self.start,
            child_index=self.child_index.to(device),
            child_mask=self.child_mask.to(device),
            child_coord=self.child_coord.to(device),
            domain=self.domain.to(device),
            hops=None if self.hops is None else self.hops.to(device),
            valid_slots=self.valid_slots.to(device),
            has_position=self.has_position,
            is_full=self.is_full,
        )


@dataclass(frozen=True)
class Level:
    """The nodes of one level ``h >= 1`` and their families (children at level ``h - 1``).

    Attributes:
        num_nodes: nodes at this level (families, unary chain nodes included).
        leaf_count: ``[num_nodes]`` tokens under each node, in level order.
        blocks: the families, cut into blocks of similar size, in level order.
        scatter_index: ``[num_children]`` level-below index of every real child, in block order then
            row-major slot order (the order of ``child_index[child_mask]``, block after block).
    """

    num_nodes: int
    leaf_count: torch.Tensor
    blocks: tuple[FamilyBlock, ...]
    scatter_index: torch.Tensor

    def to(self, device: torch.device) -> Level:
        """A copy on ``device``."""
        return Level(
            num_nodes=self.num_nodes,
            leaf_count=self.leaf_count.to(device),
            blocks=tuple(b.to(device) for b in self.blocks),
            scatter_index=self.scatter_index.to(device),
        )


@dataclass(frozen=True)
class LevelPlan:
    """Everything the hierarchical-attention DP indexes with, for one hierarchy on one device.

    Attributes:
        num_tokens: token slots (padding included).
        leaf_token: ``[n_0]`` token of each level-0 node (the tokens in a tree, increasing).
        token_mask: ``[num_tokens]`` ``True`` for tokens in a tree, ``False`` for padding.
        levels: levels ``1 .. L`` (``levels[h - 1]`` is level ``h``).
    """

    num_tokens: int
    leaf_token: torch.Tensor
    token_mask: torch.Tensor
    levels: tuple[Level, ...]

    @property
    def num_padded_pairs(self) -> int:
        """Logits computed by the DP including padding slots: ``sum F * b^2`` over non-unary blocks."""
        return sum(b.num_families * b.size**2 for lvl in self.levels for b in lvl.blocks if b.size > 1)

    def to(self, device: torch.device) -> LevelPlan:
        """A copy on ``device``."""
        return LevelPlan(
            num_tokens=self.num_tokens,
            leaf_token=self.leaf_token.to(device),
            token_mask=self.token_mask.to(device),
            levels=tuple(lvl.to(device) for lvl in self.levels),
        )


def _size_bucket(count: IntArray) -> IntArray:
    """0 for one child; otherwise ``ceil(log2(count))`` (families of 2, 3-4, 5-8, ... share a bucket)."""
    bucket = np.ceil(np.log2(np.maximum(count, 1))).astype(np.int64)
    return np.where(count == 1, 0, np.maximum(bucket, 1))


def _graph_hops(adjacency: npt.NDArray[np.bool_]) -> IntArray:
    """``[F, b, b]`` BFS hop distances of a batch of small graphs (``-1``: unreachable)."""
    num, b, _ = adjacency.shape
    hops = np.full((num, b, b), -1, dtype=np.int64)
    reach = np.broadcast_to(np.eye(b, dtype=bool), (num, b, b)).copy()
    hops[reach] = 0
    step_matrix = adjacency.astype(np.int64)
    for step in range(1, b):
        nxt = (reach.astype(np.int64) @ step_matrix > 0) | reach
        new = nxt & ~reach
        if not new.any():
            break
        hops[new] = step
        reach = nxt
    return hops


def build_plan(
    *,
    parent: IntArray,
    num_tokens: int,
    height: IntArray,
    leaf_count: IntArray,
    domain: IntArray,
    coord: IntArray,
    graph_edges: IntArray,
) -> LevelPlan:
    """The :class:`LevelPlan` of a validated canonical forest (see :class:`~geoattn.hierarchy.Hierarchy`).

    Vectorised with numpy; the only Python loops run over levels and over the size buckets of a level.
    """
    num_nodes = parent.shape[0]
    active = np.ones(num_nodes, dtype=bool)
    active[:num_tokens] = parent[:num_tokens] >= 0
    # --- lift children that sit more than one level below their parent with unary chains
    child = np.flatnonzero(active & (parent >= 0))
    gap = height[parent[child]] - height[child] - 1
    total = int(gap.sum())
    first = num_nodes + np.cumsum(gap) - gap  # id of each child's first chain node
    owner = np.repeat(child, gap)
    step = np.arange(total) - np.repeat(first - num_nodes, gap)
    chain = num_nodes + np.arange(total)
    last = step == np.repeat(gap, gap) - 1
    new_parent = np.concatenate([parent, np.where(last, parent[owner], chain + 1)])
    lifted = gap > 0
    new_parent[child[lifted]] = first[lifted]
    level = np.concatenate([height, height[owner] + 1 + step])
    new_coord = np.concatenate([coord, np.zeros((total, 2), dtype=np.int64)])
    new_coord[chain[last]] = coord[owner[last]]
    new_domain = np.concatenate([domain, np.full(total, _SET, dtype=np.int64)])
    new_count = np.concatenate([leaf_count, leaf_count[owner]])
    slot_node = np.arange(num_nodes + total)  # the node that occupies an original child's slot
    slot_node[owner[last]] = chain[last]
    new_active = np.concatenate([active, np.ones(total, dtype=bool)])
    # --- graph edges, in terms of slot nodes
    edge_u, edge_v = slot_node[graph_edges[0]], slot_node[graph_edges[1]]

    local = np.full(num_nodes + total, -1, dtype=np.int64)
    rank = np.full(num_nodes + total, -1, dtype=np.int64)
    leaf_token = np.flatnonzero(active[:num_tokens])
    local[leaf_token] = np.arange(leaf_token.size)
    num_levels = int(level[new_active].max(initial=0))
    levels: list[Level] = []
    for h in range(1, num_levels + 1):
        nodes = np.flatnonzero(new_active & (level == h))
        below = np.flatnonzero(new_active & (level == h - 1) & (new_parent >= 0))
        family_of = np.searchsorted(nodes, new_parent[below])
        count = np.bincount(family_of, minlength=nodes.size)
        bucket = _size_bucket(count)
        order = np.argsort(bucket, kind="stable")
        ordered = nodes[order]
        local[ordered] = np.arange(ordered.size)
        count = count[order]
        bucket = bucket[order]
        fam = local[new_parent[below]]
        by_family = np.lexsort((below, fam))
        below, fam = below[by_family], fam[by_family]
        starts = np.cumsum(count) - count
        child_rank = np.arange(below.size) - starts[fam]
        rank[below] = child_rank
        blocks: list[FamilyBlock] = []
        bounds = np.flatnonzero(np.diff(bucket)) + 1
        for lo, hi in zip([0, *bounds.tolist()], [*bounds.tolist(), ordered.size], strict=True):
            b = int(count[lo:hi].max())
            in_block = (fam >= lo) & (fam < hi)  # a contiguous range of `below`
            rows, cols = fam[in_block] - lo, child_rank[in_block]
            kids = below[in_block]
            child_index = np.zeros((hi - lo, b), dtype=np.int64)
            child_mask = np.zeros((hi - lo, b), dtype=bool)
            child_coord = np.zeros((hi - lo, b, 2), dtype=np.int64)
            child_index[rows, cols] = local[kids]
            child_mask[rows, cols] = True
            child_coord[rows, cols] = new_coord[kids]
            fam_domain = new_domain[ordered[lo:hi]]
            hops = None
            is_graph = fam_domain == _GRAPH
            if is_graph.any() and b > 1:
                adjacency = np.zeros((hi - lo, b, b), dtype=bool)
                parent_u = new_parent[edge_u]
                sel = (local[parent_u] >= lo) & (local[parent_u] < hi) & (level[parent_u] == h)
                f = local[parent_u[sel]] - lo
                ru, rv = rank[edge_u[sel]], rank[edge_v[sel]]
                adjacency[f, ru, rv] = True
                adjacency[f, rv, ru] = True
                hops = np.where(is_graph[:, None, None], _graph_hops(adjacency), -1)
            blocks.append(
                FamilyBlock(
                    start=lo,
                    child_index=torch.from_numpy(child_index),
                    child_mask=torch.from_numpy(child_mask),
                    child_coord=torch.from_numpy(child_coord),
                    domain=torch.from_numpy(fam_domain.copy()),
                    hops=None if hops is None else torch.from_numpy(hops),
                    valid_slots=torch.from_numpy(np.flatnonzero(child_mask.reshape(-1))),
                    has_position=bool((fam_domain != _SET).any()),
                    is_full=bool(child_mask.all()),
                )
            )
        levels.append(
            Level(
                num_nodes=int(ordered.size),
                leaf_count=torch.from_numpy(new_count[ordered].copy()),
                blocks=tuple(blocks),
                scatter_index=torch.from_numpy(local[below].copy()),
            )
        )
    return LevelPlan(
        num_tokens=num_tokens,
        leaf_token=torch.from_numpy(leaf_token),
        token_mask=torch.from_numpy(active[:num_tokens].copy()),
        levels=tuple(levels),
    )
