"""The ``_target_`` allow-list for re-instantiating configs read from files (checkpoints).

A checkpoint's config is untrusted input: ``hydra.utils.instantiate`` would call whatever its ``_target_``
names (``os.system``, a file writer, ...). :func:`check_targets` accepts a config only when every
``_target_`` in it, at any depth, is

- one of :data:`ALLOWED_TARGETS` (library classes named explicitly, matched as exact strings before
  anything is imported), or
- a path starting with ``geoattn.`` that resolves to an ``nn.Module`` subclass defined inside geoattn.
  Resolving imports only geoattn modules; the defining-module check rejects attribute chains such as
  ``geoattn.some_module.os.system``, and the ``nn.Module`` check rejects geoattn functions that could
  write files.

It also rejects interpolations (``${...}``): a resolved config has none, and resolvers could read the
environment.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from hydra.utils import get_object
from torch import nn

__all__ = ["ALLOWED_TARGETS", "UnsafeConfigError", "check_targets", "iter_targets"]

ALLOWED_TARGETS: frozenset[str] = frozenset(
    {
        "torch.optim.Adam",
        "torch.optim.AdamW",
        "torch.optim.SGD",
        "geoopt.optim.RiemannianAdam",
        "geoopt.optim.RiemannianSGD",
        "torch.nn.Dropout",
        "torch.nn.Embedding",
        "torch.nn.GELU",
        "torch.nn.Identity",
        "torch.nn.LayerNorm",
        "torch.nn.Linear",
        "torch.nn.ReLU",
        "torch.nn.Sequential",
    }
)


class UnsafeConfigError(ValueError):
    """A config read from a file names a ``_target_`` outside the allow-list (or holds an interpolation)."""


def iter_targets(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(key path, value)`` for every ``_target_`` key in a plain dict/list tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            if key == "_target_":
                yield child, value
            else:
                yield from iter_targets(value, child)
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            yield from iter_targets(value, f"{path}[{i}]")


def _iter_strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _iter_strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            yield from _iter_strings(value, f"{path}[{i}]")


def _is_geoattn_module_class(target: str) -> bool:
    try:
        obj = get_object(target)
    except Exception:
        return False
    module = getattr(obj, "__module__", "") or ""
    return (
        inspect.isclass(obj)
        and (module == "geoattn" or module.startswith("geoattn."))
        and issubclass(obj, nn.Module)
    )


def check_targets(node: Any, *, what: str = "config", root: str = "") -> None:
    """Raise :class:`UnsafeConfigError` unless every ``_target_`` in ``node`` is allowed (see module doc).

    ``node`` is a plain container (``OmegaConf.to_container`` output); ``what`` names it in the message and
    ``root`` prefixes the key paths (e.g. ``"model"``). Nothing outside geoattn is imported before the check
    passes.
    """
    for key, value in _iter_strings(node, root):
        if "${" in value:
            raise UnsafeConfigError(
                f"{what}: {key} = {value!r} is an interpolation; expected a resolved config"
            )
    for key, target in iter_targets(node, root):
        if not isinstance(target, str):
            raise UnsafeConfigError(f"{what}: {key} must be a string, got {type(target).__name__}")
        if target in ALLOWED_TARGETS:
            continue
        if target.startswith("geoattn.") and _is_geoattn_module_class(target):
            continue
        raise UnsafeConfigError(
            f"{what}: {key} = {target!r} is not an allowed target; accepted are nn.Module classes defined "
            f"in geoattn and {sorted(ALLOWED_TARGETS)}"
        )
