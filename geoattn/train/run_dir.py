"""The output folder of one run and the files in it.

::

    <run dir>/
        config.yaml          the resolved config (no interpolations)
        run.json             git SHA, package versions, seed, start time, ... (updated when the run ends)
        metrics.jsonl        one JSON object per line: {"step", "split": "train"|"val", <metric>: value, ...}
        checkpoints/step_XXXXXXXX.pt

Hydra adds its own ``.hydra/`` folder (the unresolved config and the overrides) when launched through
``geoattn-train``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text

__all__ = ["RunDir"]


def _json_safe(value: Any) -> Any:
    """Non-finite floats become ``null`` so every line is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunDir:
    """Paths and writers for a run folder (created on construction).

    Args:
        path: the folder; created with its parents when missing.
        create: create the folder; ``False`` only names it (the ranks > 0 of a data-parallel job, which
            never write). Default: ``True``.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        if create:
            self.path.mkdir(parents=True, exist_ok=True)

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def info_file(self) -> Path:
        return self.path / "run.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    def write_config(self, yaml_text: str) -> None:
        """Write the resolved config as ``config.yaml``."""
        atomic_write_text(self.config_file, yaml_text)

    def write_info(self, info: dict[str, Any]) -> None:
        """Write (or replace) ``run.json``."""
        atomic_write_text(self.info_file, json.dumps(info, indent=2, sort_keys=True) + "\n")

    def update_info(self, **fields: Any) -> None:
        """Merge ``fields`` into ``run.json``."""
        info = json.loads(self.info_file.read_text()) if self.info_file.exists() else {}
        info.update(fields)
        self.write_info(info)

    def append_metrics(self, row: dict[str, Any]) -> None:
        """Append one row to ``metrics.jsonl`` (flushed, so a crash keeps every finished row)."""
        line = json.dumps({k: _json_safe(v) for k, v in row.items()}, allow_nan=False)
        with self.metrics_file.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
