"""Nested-list description of a hierarchy: plain lists, or :class:`Node` where a family needs a domain.

A nested signal is a tree whose leaves are tokens (ints: the token's index in the input) and whose internal
nodes are sub-signals. Each internal node has a *domain*, which says how its children are arranged and
therefore which relative position two sibling children have:

========== =========================================== ================================================
domain     children are                                relative position of sibling ``C`` seen from ``B``
========== =========================================== ================================================
``set``    unordered                                   none (no positional term)
``sequence`` ordered along one axis (the list order)   ``index(C) - index(B)``
``grid``   cells of a 2-D grid (``grid_shape``, row-major) ``(row(C) - row(B), col(C) - col(B))``
``graph``  vertices of a graph (``edges`` between children) hop distance from ``B`` to ``C``
========== =========================================== ================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias, get_args

__all__ = ["DOMAINS", "Domain", "NestedTree", "Node", "domain_code"]

Domain = Literal["set", "sequence", "grid", "graph"]
#: The accepted domains, in the order of their integer codes (``Hierarchy.domain`` holds the codes).
DOMAINS: tuple[Domain, ...] = get_args(Domain)


def domain_code(domain: str, *, where: str) -> int:
    """The integer code of ``domain``; a :class:`~geoattn.hierarchy.HierarchyError` names ``where`` if unknown."""
    from .errors import HierarchyError

    try:
        return DOMAINS.index(domain)  # type: ignore[arg-type,unused-ignore]
    except ValueError:
        raise HierarchyError(
            f"{where}: unknown domain {domain!r}; accepted domains: {', '.join(map(repr, DOMAINS))}"
        ) from None


@dataclass(frozen=True)
class Node:
    """An internal node of a nested hierarchy, when a plain list (domain ``"sequence"``) is not enough.

    Args:
        children: the sub-trees: token indices (``int``), lists, or :class:`Node` objects; at least one.
        domain: how the children are arranged, one of :data:`DOMAINS` (default: ``"sequence"``).
        grid_shape: ``(rows, cols)`` with ``rows * cols == len(children)``, children in row-major order;
            required for ``domain="grid"`` unless ``coords`` is given (default: ``None``).
        coords: explicit integer coordinates of the children, one ``(a, b)`` pair each, overriding the
            positions implied by the list order (``sequence``: ``(index, 0)``; ``grid``: ``(row, col)``)
            (default: ``None``).
        edges: for ``domain="graph"``, undirected edges ``(i, j)`` between children, as positions in
            ``children`` (default: ``()``).
        label: a free-form name, e.g. the modality (``"text"``, ``"image"``); kept for inspection and in
            :meth:`~geoattn.hierarchy.Hierarchy.to_networkx` (default: ``None``).
    """

    children: Sequence[NestedTree]
    domain: Domain = "sequence"
    grid_shape: tuple[int, int] | None = None
    coords: Sequence[tuple[int, int]] | None = None
    edges: Sequence[tuple[int, int]] = field(default=())
    label: str | None = None


#: A token index, a list of sub-trees (an internal node of domain ``"sequence"``), or a :class:`Node`.
NestedTree: TypeAlias = "int | Sequence[NestedTree] | Node"
