"""The one exception type of :mod:`geoattn.hierarchy`."""

from __future__ import annotations

__all__ = ["HierarchyError"]


class HierarchyError(ValueError):
    """An invalid hierarchy: the message says what was wrong, where, and what is accepted.

    Raised at construction (:class:`~geoattn.hierarchy.Hierarchy` and its ``from_*`` constructors), never
    inside the attention computation: a hierarchy that exists is valid.
    """
