r"""Tree embedding: place the nodes of a tree in a κ-stereographic space so that geodesic distances match
shortest-path distances.

Node ``i`` is a tangent vector :math:`u_i \in \mathbb{R}^D` at the origin, mapped to the manifold as
:math:`x_i = \exp_0^k(u_i)`; the curvature ``k`` comes from a curvature module (fixed, or learnable with or
without a sign constraint). Because points live in the tangent space they stay valid while ``k`` changes.
The loss (Gu et al., "Learning Mixed-Curvature Representations in Product Spaces", ICLR 2019) is

.. math::
    \mathcal{L} = \operatorname{mean}_{(i,j)} \left| \left(\frac{d_k(x_i, x_j)}{d_G(i, j)}\right)^2 - 1 \right|

over sampled pairs ``i != j``. Validation reports the average distortion
:math:`\operatorname{mean}_{i<j} |d_k(x_i,x_j) - d_G(i,j)| / d_G(i,j)`, the mean average precision of
recovering each node's graph neighbours from embedded distances (Nickel & Kiela, 2017), and ``k``.
Trees embed with low distortion in two hyperbolic dimensions but not in Euclidean space of any small
dimension, so the hyperbolic and Euclidean experiments differ visibly.
"""

from __future__ import annotations

from collections.abc import Iterator

import networkx as nx
import torch
from torch import nn

from geoattn.manifolds import CurvatureModule, FixedCurvature, dist, expmap0, pairwise_dist, project

__all__ = ["TreeDistances", "TreeEmbedding", "distortion", "mean_average_precision"]

Batch = dict[str, torch.Tensor]


def distortion(embedded: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
    r"""Mean relative error :math:`\operatorname{mean}|d_E - d_G| / d_G` over entries with ``d_G > 0``.

    Args:
        embedded: embedded distances, any shape.
        graph: graph distances, same shape; zero entries (the diagonal) are skipped.
    """
    mask = graph > 0
    return ((embedded[mask] - graph[mask]).abs() / graph[mask]).mean()


def mean_average_precision(distances: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
    r"""Mean over nodes of the average precision of ranking the graph neighbours first by distance.

    For node ``i`` with neighbours :math:`N(i)`, rank the other nodes by ``distances[i]``; AP is the mean
    over :math:`j \in N(i)` of the fraction of neighbours among the nodes ranked up to ``j``. Computed with
    one sort per row (``O(N^2 log N)``), no ``[N, N, N]`` intermediate. Ties are broken by index.

    Args:
        distances: ``[N, N]`` embedded distances (the diagonal is ignored).
        adjacency: ``[N, N]`` boolean adjacency without self-loops.

    Returns:
        A scalar in ``[0, 1]``; 1 when every node's neighbours are its nearest nodes. Nodes without
        neighbours are skipped.
    """
    n = distances.shape[-1]
    eye = torch.eye(n, dtype=torch.bool, device=distances.device)
    order = distances.masked_fill(eye, float("inf")).argsort(dim=-1)
    hits = adjacency.gather(-1, order).to(distances.dtype)  # [N, N]: 1 where the r-th nearest is a neighbour
    ranks = torch.arange(1, n + 1, dtype=distances.dtype, device=distances.device)
    degree = hits.sum(-1)
    ap = (hits * hits.cumsum(-1) / ranks).sum(-1) / degree.clamp_min(1)
    return ap[degree > 0].mean()


class TreeDistances:
    """Shortest-path distances of the full ``branching``-ary tree on ``num_nodes`` nodes (networkx's
    ``full_rary_tree``: nodes filled level by level, so ``1 + 3 + 9 + 27 + 81 = 121`` nodes is a complete
    ternary tree of depth 4).

    Training batches are an epoch-wise shuffle of all unordered pairs ``i < j``; validation is one batch with
    the whole distance matrix.

    Args:
        num_nodes: nodes in the tree (>= 2). Default: ``121``.
        branching: children per inner node (>= 1). Default: ``3``.
        batch_size: pairs per training batch; ``None`` means all pairs in one batch. Default: ``1024``.

    Batches:
        train: ``{"i": [B], "j": [B], "dist": [B]}`` (node indices and graph distances, float32).
        val: ``{"dist": [N, N], "adjacency": [N, N] bool}``.
    """

    def __init__(self, num_nodes: int = 121, branching: int = 3, batch_size: int | None = 1024) -> None:
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 2:
            raise ValueError(f"TreeDistances: num_nodes must be an int >= 2, got {num_nodes!r}")
        if isinstance(branching, bool) or not isinstance(branching, int) or branching < 1:
            raise ValueError(f"TreeDistances: branching must be an int >= 1, got {branching!r}")
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"TreeDistances: batch_size must be an int >= 1 or None, got {batch_size!r}")
        self.num_nodes = num_nodes
        self.branching = branching
        self.batch_size = batch_size
        graph = nx.full_rary_tree(branching, num_nodes)
        self.distances = torch.zeros(num_nodes, num_nodes)
        for source, lengths in nx.all_pairs_shortest_path_length(graph):
            targets = torch.tensor(list(lengths.keys()))
            self.distances[source, targets] = torch.tensor(list(lengths.values()), dtype=torch.float32)
        self.adjacency = self.distances == 1
        self.pairs = torch.triu_indices(num_nodes, num_nodes, offset=1)  # [2, P], P = N (N - 1) / 2

    def train_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        """One epoch: every pair once, in an order drawn from ``generator``."""
        num_pairs = self.pairs.shape[1]
        size = self.batch_size or num_pairs
        order = torch.randperm(num_pairs, generator=generator)
        for start in range(0, num_pairs, size):
            i, j = self.pairs[:, order[start : start + size]]
            yield {"i": i, "j": j, "dist": self.distances[i, j]}

    def val_batches(self) -> list[Batch]:
        """The whole distance matrix and adjacency, as one batch."""
        return [{"dist": self.distances, "adjacency": self.adjacency}]


class TreeEmbedding(nn.Module):
    r"""Learnable node embeddings :math:`x_i = \exp_0^k(u_i)` in the κ-stereographic space of curvature ``k``.

    Args:
        num_nodes: number of nodes ``N``.
        dim: embedding dimension ``D``. Default: ``2``.
        curvature: the module giving ``k`` (e.g. :class:`~geoattn.manifolds.HyperbolicCurvature` to learn
            ``k < 0``); ``None`` means a fixed ``k = 0``. Default: ``None``.
        init_scale: standard deviation of the initial tangent vectors. Default: ``0.01``.

    Shapes:
        :meth:`points`: ``[N, D]``.
    """

    def __init__(
        self, num_nodes: int, dim: int = 2, curvature: CurvatureModule | None = None, init_scale: float = 0.01
    ) -> None:
        super().__init__()
        if num_nodes < 1 or dim < 1:
            raise ValueError(f"TreeEmbedding: num_nodes and dim must be >= 1, got {num_nodes} and {dim}")
        if curvature is not None and curvature.shape != ():
            raise ValueError(f"TreeEmbedding: curvature must be a scalar module, got shape {curvature.shape}")
        self.num_nodes = num_nodes
        self.dim = dim
        self.init_scale = init_scale
        self.curvature: CurvatureModule = curvature if curvature is not None else FixedCurvature(0.0)
        self.tangent = nn.Parameter(torch.empty(num_nodes, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.tangent, std=self.init_scale)

    def points(self) -> torch.Tensor:
        """The embedded nodes ``[N, D]``, on the manifold of the current curvature."""
        k = self.curvature()
        return project(expmap0(self.tangent, k=k), k=k)

    def training_loss(self, batch: Batch) -> torch.Tensor:
        r"""Mean of :math:`|(d_k(x_i, x_j) / d_G(i, j))^2 - 1|` over the batch's pairs."""
        x = self.points()
        embedded = dist(x[batch["i"]], x[batch["j"]], k=self.curvature())
        return ((embedded / batch["dist"]).square() - 1.0).abs().mean()

    def validation_metrics(self, batch: Batch) -> dict[str, torch.Tensor]:
        """``loss`` over all pairs, ``distortion``, ``map`` and the curvature ``k``."""
        k = self.curvature()
        x = self.points()
        embedded = pairwise_dist(x, x, k=k)
        graph = batch["dist"]
        mask = graph > 0
        return {
            "loss": ((embedded[mask] / graph[mask]).square() - 1.0).abs().mean(),
            "distortion": distortion(embedded, graph),
            "map": mean_average_precision(embedded, batch["adjacency"]),
            "k": k.detach(),
        }

    def extra_repr(self) -> str:
        return f"num_nodes={self.num_nodes}, dim={self.dim}"
