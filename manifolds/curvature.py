r"""Curvature parametrisations as modules: a fixed ``k``, a learnable signed ``k``, and sign-constrained ones.

Each module's ``forward()`` returns the signed curvature ``k`` of shape ``shape`` (``()`` for one curvature,
``(H,)`` for one per attention head); ``c = -k`` is a read-only property for code that thinks in positive
hyperbolic curvature. Callers reshape for broadcasting (e.g. ``k.view(1, H, 1, 1)`` for ``[B, H, N, D]``).

- :class:`FixedCurvature`: a buffer, never trained.
- :class:`SignedCurvature`: ``k = theta``, any sign, smooth through 0 (the manifold functions in
  :mod:`geoattn.manifolds.stereographic` are smooth in ``k`` at 0, so gradient steps may cross it).
- :class:`HyperbolicCurvature`: ``k = -softplus(theta) < 0``.
- :class:`SphericalCurvature`: ``k = softplus(theta) > 0``.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "CurvatureModule",
    "FixedCurvature",
    "HyperbolicCurvature",
    "SignedCurvature",
    "SphericalCurvature",
    "inverse_softplus",
]


def inverse_softplus(y: float) -> float:
    """``x`` with ``softplus(x) = y`` for ``y > 0``, stable for large ``y``."""
    return y + math.log(-math.expm1(-y))


class CurvatureModule(nn.Module):
    """Base class: ``forward()`` returns ``k`` of shape ``shape``; ``c = -k``."""

    shape: tuple[int, ...]

    def __init__(self, shape: tuple[int, ...] | int = ()) -> None:
        super().__init__()
        self.shape = (shape,) if isinstance(shape, int) else tuple(shape)
        if any(s < 1 for s in self.shape):
            raise ValueError(f"{type(self).__name__}: shape must have positive sizes, got {self.shape}")

    def forward(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset_parameters(self) -> None:  # pragma: no cover - abstract
        """Restore the initial curvature given to the constructor."""
        raise NotImplementedError

    @property
    def k(self) -> torch.Tensor:
        """The signed curvature (same as calling the module)."""
        return self()

    @property
    def c(self) -> torch.Tensor:
        """``-k``: positive for hyperbolic space (read-only)."""
        return -self()

    def extra_repr(self) -> str:
        values = self().detach().flatten().tolist()
        shown = ", ".join(f"{v:.4g}" for v in values[:4]) + (", ..." if len(values) > 4 else "")
        return f"k=[{shown}], shape={self.shape}"


class FixedCurvature(CurvatureModule):
    """A constant curvature ``k`` of any sign (stored as a buffer, so it follows ``.to()``)."""

    value: torch.Tensor

    def __init__(self, k: float, shape: tuple[int, ...] | int = ()) -> None:
        super().__init__(shape)
        self.init = float(k)
        self.register_buffer("value", torch.full(self.shape, self.init))

    def reset_parameters(self) -> None:
        """Refill the buffer with the constructor's ``k``."""
        with torch.no_grad():
            self.value.fill_(self.init)

    def forward(self) -> torch.Tensor:
        return self.value


class SignedCurvature(CurvatureModule):
    """Learnable curvature of any sign: ``k = theta``, initialised at ``init`` (default 0, Euclidean)."""

    def __init__(self, init: float = 0.0, shape: tuple[int, ...] | int = ()) -> None:
        super().__init__(shape)
        self.init = float(init)
        self.theta = nn.Parameter(torch.full(self.shape, self.init))

    def reset_parameters(self) -> None:
        """Set ``k`` back to ``init``."""
        with torch.no_grad():
            self.theta.fill_(self.init)

    def forward(self) -> torch.Tensor:
        return self.theta


class HyperbolicCurvature(CurvatureModule):
    """Learnable negative curvature ``k = -softplus(theta)``, initialised at ``init < 0`` (default -1)."""

    def __init__(self, init: float = -1.0, shape: tuple[int, ...] | int = ()) -> None:
        super().__init__(shape)
        if not init < 0:
            raise ValueError(f"HyperbolicCurvature: init must be < 0, got {init}")
        self.init = float(init)
        self.theta = nn.Parameter(torch.full(self.shape, inverse_softplus(-self.init)))

    def reset_parameters(self) -> None:
        """Set ``k`` back to ``init``."""
        with torch.no_grad():
            self.theta.fill_(inverse_softplus(-self.init))

    def forward(self) -> torch.Tensor:
        return -F.softplus(self.theta)


class SphericalCurvature(CurvatureModule):
    """Learnable positive curvature ``k = softplus(theta)``, initialised at ``init > 0`` (default 1)."""

    def __init__(self, init: float = 1.0, shape: tuple[int, ...] | int = ()) -> None:
        super().__init__(shape)
        if not init > 0:
            raise ValueError(f"SphericalCurvature: init must be > 0, got {init}")
        self.init = float(init)
        self.theta = nn.Parameter(torch.full(self.shape, inverse_softplus(self.init)))

    def reset_parameters(self) -> None:
        """Set ``k`` back to ``init``."""
        with torch.no_grad():
            self.theta.fill_(inverse_softplus(self.init))

    def forward(self) -> torch.Tensor:
        return F.softplus(self.theta)
