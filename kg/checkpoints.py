"""PyKEEN training loops whose checkpoints are written atomically.

PyKEEN's :meth:`~pykeen.training.TrainingLoop._save_state` ``torch.save``-s the checkpoint straight into its file.
A run killed while that file is being written (a job's time limit, a pre-empted machine; at d = 256 the
checkpoint of one WN18RR model is over 100 MB) leaves it truncated, and the next start cannot resume: the work of
every epoch before is lost. :class:`AtomicCheckpoints` writes it to a temporary file beside the checkpoint and
moves that over the old one only once it is complete (:func:`geoattn.train.atomic.atomic_write`), so a kill at any
moment leaves either the previous checkpoint or the new one.

:class:`~geoattn.kg.FastLCWATrainingLoop` has it, and ``geoattn-train``'s KG runner trains with
:func:`atomic_training_loop` of its ``training_loop`` (these loops in place of PyKEEN's ``"lcwa"`` and ``"slcwa"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any, TypeVar

from pykeen.training import LCWATrainingLoop, SLCWATrainingLoop, TrainingLoop
from pykeen.triples.instances import LCWABatch, SLCWABatch

from geoattn.train.atomic import atomic_write

__all__ = ["AtomicCheckpoints", "AtomicLCWATrainingLoop", "AtomicSLCWATrainingLoop", "atomic_training_loop"]


Batch = TypeVar("Batch")


class AtomicCheckpoints(TrainingLoop[Batch]):
    """Mixin for a PyKEEN training loop: its checkpoint files are replaced atomically (module docstring)."""

    def _save_state(self, path: IO[bytes] | str | Path, **kwargs: Any) -> None:  # type: ignore[override]
        """PyKEEN's checkpoint, through a temporary file that replaces ``path`` once written (an open file object
        is written as PyKEEN would)."""
        save = super()._save_state
        if isinstance(path, str | Path):
            atomic_write(path, lambda file: save(path=file, **kwargs))
        else:
            save(path=path, **kwargs)


class AtomicLCWATrainingLoop(AtomicCheckpoints[LCWABatch], LCWATrainingLoop):
    """PyKEEN's :class:`~pykeen.training.LCWATrainingLoop` (1-N) with atomic checkpoints."""


class AtomicSLCWATrainingLoop(AtomicCheckpoints[SLCWABatch], SLCWATrainingLoop):
    """PyKEEN's :class:`~pykeen.training.SLCWATrainingLoop` (sampled negatives) with atomic checkpoints."""


def atomic_training_loop(name: str) -> str | type[TrainingLoop[Any]]:
    """The training loop to hand PyKEEN's ``pipeline`` for the loop name ``name``: the loop of this module for
    ``"lcwa"`` and ``"slcwa"``, ``name`` itself otherwise (``"fastlcwa"`` checkpoints atomically already)."""
    atomic: dict[str, type[TrainingLoop[Any]]] = {
        "lcwa": AtomicLCWATrainingLoop,
        "slcwa": AtomicSLCWATrainingLoop,
    }
    return atomic.get(name, name)
