"""Tree and forest structures for nested signals (hierarchical self-attention's input).

A nested signal is a tree whose leaves are tokens and whose internal nodes are sub-signals (a modality, a
paragraph, an image), each with a domain (``set``, ``sequence``, ``grid``, ``graph``) that fixes the relative
positions of its children. :class:`Hierarchy` holds a batched forest of such trees, validates it at
construction (:class:`HierarchyError`), converts from and to nested lists, networkx and PyG-style per-level
parent indices, and precomputes the per-level index tensors (:class:`LevelPlan`) that the attention's
dynamic programme runs on.
"""

from .errors import HierarchyError
from .forest import Hierarchy
from .nodes import DOMAINS, Domain, NestedTree, Node
from .plan import FamilyBlock, Level, LevelPlan

__all__ = [
    "DOMAINS",
    "Domain",
    "FamilyBlock",
    "Hierarchy",
    "HierarchyError",
    "Level",
    "LevelPlan",
    "NestedTree",
    "Node",
]
