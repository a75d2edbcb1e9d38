"""Random instances: points uniform in the unit square, seeded and batched (shared by every task).

Points are drawn by NumPy's PCG64 (``numpy.random.default_rng(seed)``) directly in the requested precision, so
a seed gives the same instances on every platform, and labels are computed on exactly the values a model sees.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["uniform_points"]


def uniform_points(
    batch_size: int,
    n: int,
    *,
    seed: int | np.random.Generator,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``batch_size`` instances of ``n`` points uniform in ``[0, 1)^2``.

    Args:
        batch_size: number of instances ``B`` (``>= 0``).
        n: points per instance (``>= 1``).
        seed: an ``int`` seed, or a ``numpy.random.Generator`` to draw from (advanced by the call).
        dtype: ``torch.float32`` (default) or ``torch.float64``.

    Returns:
        ``[B, n, 2]`` tensor on the CPU.
    """
    if batch_size < 0 or n < 1:
        raise ValueError(
            f"uniform_points: need batch_size >= 0 and n >= 1, got batch_size={batch_size}, n={n}"
        )
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"uniform_points: dtype must be torch.float32 or torch.float64, got {dtype}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    shape = (batch_size, n, 2)
    array = rng.random(shape, dtype=np.float32) if dtype == torch.float32 else rng.random(shape)
    return torch.from_numpy(array)
