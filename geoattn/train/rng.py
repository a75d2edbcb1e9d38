"""Seeding and capturing/restoring every random number generator a training run touches.

States are stored as tensors, ints, floats, lists and tuples only, so checkpoints holding them load with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

__all__ = ["data_generator", "get_rng_state", "seed_everything", "set_rng_state"]


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def data_generator(seed: int, rank: int = 0) -> torch.Generator:
    """A CPU ``torch.Generator`` for the data source, seeded from ``seed`` through numpy's ``SeedSequence``.

    The derived seed keeps the data stream decorrelated from the global torch generator (which initialises
    the model) although both come from the one run seed. In a data-parallel job, rank ``rank`` draws its
    share of every batch from its own stream, derived from ``(seed, rank)``; rank 0's stream is the stream of
    a single-process run.
    """
    entropy = [seed, 0x6461746] if rank == 0 else [seed, 0x6461746, rank]
    derived = int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0])
    return torch.Generator(device="cpu").manual_seed(derived % 2**63)


def get_rng_state() -> dict[str, Any]:
    """The global RNG states: torch CPU, every initialised CUDA device, python ``random``, numpy."""
    np_state = np.random.get_state(legacy=False)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "python": random.getstate(),
        "numpy": {
            "bit_generator": str(np_state["bit_generator"]),
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states captured by :func:`get_rng_state` (CUDA states only where CUDA is available)."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": np_state["bit_generator"],
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
