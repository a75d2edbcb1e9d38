"""Random nested signals for the hierarchy tests: irregular trees with unary nodes and mixed domains."""

from __future__ import annotations

import random
from typing import Any

import torch

from geoattn.hierarchy import Hierarchy, Node

DTYPES = [torch.float32, torch.float64]
TOLERANCE = {torch.float32: 2e-5, torch.float64: 1e-12}


def random_nested(
    num_tokens: int,
    seed: int,
    *,
    max_children: int = 4,
    unary: float = 0.15,
    domains: bool = False,
) -> Any:
    """A random tree over tokens ``0..num_tokens-1`` (in shuffled leaf order) as nested lists / Nodes.

    Families have 1..``max_children`` children; leaves sit at varying depths; with probability ``unary`` a
    sub-tree is wrapped in a unary node. With ``domains`` every family gets a random domain (``set``,
    ``sequence``, ``grid`` with a random factorisation, ``graph`` with random, possibly disconnected, edges).
    """
    rng = random.Random(seed)
    tokens = list(range(num_tokens))
    rng.shuffle(tokens)

    def family(children: list[Any]) -> Any:
        if not domains:
            return children
        b = len(children)
        kind = rng.choice(["set", "sequence", "grid", "graph"])
        if kind == "grid":
            rows = rng.choice([r for r in range(1, b + 1) if b % r == 0])
            return Node(children, domain="grid", grid_shape=(rows, b // rows), label="image")
        if kind == "graph":
            edges = [(i, j) for i in range(b) for j in range(i + 1, b) if rng.random() < 0.4]
            return Node(children, domain="graph", edges=edges)
        return Node(children, domain=kind)  # type: ignore[arg-type]

    def build(chunk: list[int], depth: int) -> Any:
        if depth > 0 and rng.random() < unary:
            return family([build(chunk, depth + 1)])
        if len(chunk) == 1:
            return chunk[0] if depth > 0 and rng.random() < 0.8 else family([chunk[0]])
        k = rng.randint(2, min(max_children, len(chunk)))
        cuts = sorted(rng.sample(range(1, len(chunk)), k - 1))
        parts = [chunk[a:b] for a, b in zip([0, *cuts], [*cuts, len(chunk)], strict=True)]
        return family([build(part, depth + 1) for part in parts])

    return build(tokens, 0)


def random_hierarchy(num_tokens: int, seed: int, **kwargs: Any) -> Hierarchy:
    return Hierarchy.from_nested(random_nested(num_tokens, seed, **kwargs))


def qkv(
    num_tokens: int, heads: int, dim: int, dtype: torch.dtype, seed: int, *, dv: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(num_tokens, heads, dim, generator=g, dtype=dtype)
    k = torch.randn(num_tokens, heads, dim, generator=g, dtype=dtype)
    v = torch.randn(num_tokens, heads, dv or dim, generator=g, dtype=dtype)
    return q, k, v
