r"""Entity embeddings stored on the Poincaré ball and trained with a Riemannian optimiser.

The hyperbolic models (:class:`~geoattn.kg.MuRP`, :class:`~geoattn.kg.RotH`, :class:`~geoattn.kg.RefH`,
:class:`~geoattn.kg.AttH`) take ``entity_storage``:

- ``"tangent"`` (default): entities are tangent vectors at the origin in an ordinary ``nn.Embedding``, mapped
  onto each relation's ball by :math:`\exp_0^{k_r}` (Chami et al. 2020); any optimiser applies.
- ``"manifold"``: entities are points :math:`x` of the ball of curvature :math:`k_0` (default -1) held in a
  :class:`geoopt.ManifoldParameter` (:class:`ManifoldEmbedding`); the interactions receive
  :math:`\log_0^{k_0}(x)`, so the scores are the same functions of the same tangent vectors and only the
  optimiser geometry differs. Train with ``optimizer="RiemannianAdam"`` (geoopt's, registered with PyKEEN's
  optimizer resolver by ``import geoattn.kg``): its steps are Riemannian (rescaled by the metric, retracted
  onto the ball) for the entity points and plain Adam for every other parameter. A Euclidean optimiser
  would move the points without regard to the ball and may push them out of it. Tune its rate separately:
  RiemannianAdam keeps one second moment per point (the metric's inner product over the ``d`` coordinates)
  where Adam keeps one per coordinate, so at the same rate its steps are shorter by a factor of about
  :math:`2\sqrt{d}` near the origin (WN18RR RotH, d = 32: best rate 0.01 on the ball, 0.003 for tangent
  vectors with Adam; ``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import geoopt
import torch
from pykeen.nn.representation import Representation
from pykeen.typing import FloatTensor, LongTensor

from ..manifolds import expmap0, logmap0

__all__ = ["EntityStorage", "ManifoldEmbedding", "check_entity_storage"]

EntityStorage = Literal["tangent", "manifold"]


def check_entity_storage(model: str, entity_storage: str) -> None:
    """Raise ``ValueError`` naming ``model`` unless ``entity_storage`` is ``"tangent"`` or ``"manifold"``."""
    if entity_storage not in get_args(EntityStorage):
        raise ValueError(
            f"{model}: entity_storage must be one of {get_args(EntityStorage)}, got {entity_storage!r}"
        )


class ManifoldEmbedding(Representation):
    r"""Points on the κ-stereographic ball of curvature ``curvature`` < 0, returned as tangent vectors at the origin.

    The parameter ``weight`` ``(max_id, d)`` is a :class:`geoopt.ManifoldParameter` on
    ``geoopt.Stereographic(k=curvature)``; :meth:`forward` returns :math:`\log_0^{k_0}(x_i)` ``(*s, d)`` for
    indices of shape ``s``. Initialised at :math:`\exp_0^{k_0}(\mathbf{v})`, :math:`\mathbf{v} \sim
    \mathcal{N}(0, \sigma^2)`.

    Args:
        max_id: number of points.
        shape: the dimension ``d`` (an int or a 1-tuple).
        curvature: the ball's curvature :math:`k_0`, a finite negative float. Default ``-1.0``.
        init_std: :math:`\sigma` of the initial tangent vectors. Default ``1e-3`` (Chami et al.'s init).
        kwargs: passed on to :class:`pykeen.nn.representation.Representation`.
    """

    def __init__(
        self,
        max_id: int,
        shape: int | tuple[int] = 32,
        *,
        curvature: float = -1.0,
        init_std: float = 1.0e-3,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("unique", False)  # an index lookup: nothing to save by de-duplicating
        super().__init__(max_id=max_id, shape=shape, **kwargs)
        if len(self.shape) != 1:
            raise ValueError(f"ManifoldEmbedding: shape must be one dimension d, got {shape!r}")
        if not (isinstance(curvature, int | float) and math.isfinite(curvature) and curvature < 0):
            raise ValueError(
                f"ManifoldEmbedding: curvature must be a finite negative float, got {curvature!r}"
            )
        if not (isinstance(init_std, int | float) and init_std > 0):
            raise ValueError(f"ManifoldEmbedding: init_std must be a positive float, got {init_std!r}")
        self.curvature = float(curvature)
        self.init_std = float(init_std)
        self.weight = geoopt.ManifoldParameter(
            torch.empty(max_id, self.shape[0]), manifold=geoopt.Stereographic(k=self.curvature)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the points anew: :math:`\\exp_0^{k_0}(\\mathcal{N}(0, \\sigma^2))`."""
        with torch.no_grad():
            self.weight.copy_(expmap0(torch.randn_like(self.weight) * self.init_std, k=self.curvature))

    def _plain_forward(self, indices: LongTensor | None = None) -> FloatTensor:
        points = self.weight if indices is None else self.weight[indices]
        return logmap0(points, k=self.curvature)
