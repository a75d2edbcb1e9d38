r"""Fast 1-N scores for PyKEEN's Euclidean distance interactions: one matrix product instead of a broadcast.

PyKEEN scores all tails of ``B`` queries with TransE, MuRE or RotatE by broadcasting the query against the
whole entity table, which materialises a ``[B, N, d]`` tensor in the forward and again in the backward
(1024 x 40,943 x 32 floats = 5.4 GB per WN18RR batch). All three are a distance between a query point
:math:`q(h, r)` and the tail embedding, so the score matrix is

.. math::
    s_{bj} = -\|q_b - t_j\|_2^{\,p'} + \beta_b + \gamma_j,\qquad
    \|q_b - t_j\|_2^2 = \|q_b\|^2 + \|t_j\|^2 - 2\langle q_b, t_j\rangle,

one ``[B, d] x [d, N]`` product plus an epilogue, computed by :func:`geoattn.kernels.pairwise_dist.pairwise_dist`
at curvature ``k = 0`` (where its distance is :math:`2\|q - t\|`; the Triton kernel on CUDA, the torch reference
elsewhere), with :math:`p' = 2` for ``power_norm=True`` and :math:`p' = 1` otherwise:

* TransE: :math:`q = h + r`;
* MuRE: :math:`q = R \odot h + r`, :math:`\beta_b = b_h`, :math:`\gamma_j = b_t`;
* RotatE: :math:`q = h \circ r` in :math:`\mathbb{C}^d`, compared as :math:`\mathbb{R}^{2d}` vectors.

:func:`tail_distance_decomposition` exposes these pieces (:class:`DistanceDecomposition`) for the fused 1-N loss
(:func:`geoattn.kg.losses.fused_lcwa_cross_entropy`), and :func:`fast_tail_scorer` materialises the scores from
them: one place knows each model's decomposition. Only the ``p = 2`` norms have this form; other interactions
(and geoattn's own, whose ``score_t`` already uses the pairwise kernel) keep the model's ``score_t``. The Gram form loses precision (relative to
:math:`\|q\|^2 + \|t\|^2`) for near-coincident points; scores agree with PyKEEN's to float rounding of that size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from pykeen.models import ERModel, Model
from pykeen.nn.modules import Interaction, MuREInteraction, RotatEInteraction, TransEInteraction
from pykeen.typing import FloatTensor, LongTensor

from ..kernels.pairwise_dist import pairwise_dist

__all__ = [
    "DistanceDecomposition",
    "OneToManyDecomposer",
    "OneToManyScorer",
    "fast_tail_scorer",
    "tail_distance_decomposition",
]

#: ``(hr_batch [B, 2]) -> scores [B, num_entities]``
OneToManyScorer = Callable[[LongTensor], FloatTensor]


class DistanceDecomposition(NamedTuple):
    r"""The 1-N scores of a batch as a distance plus biases:
    :math:`s_{bj} = -\|q_b - t_j\|_2^{\,p'} + \beta_b + \gamma_j`.

    Attributes:
        q: ``[B, d']`` query points (real; RotatE's complex ones as ``2d`` reals).
        t: ``[N, d']`` tail points of every entity.
        beta: ``[B]`` per-query bias (MuRE's head bias), or ``None``.
        gamma: ``[N]`` per-tail bias (MuRE's tail bias), or ``None``.
        squared: ``True`` for :math:`p' = 2`, ``False`` for :math:`p' = 1`.
    """

    q: FloatTensor
    t: FloatTensor
    beta: FloatTensor | None
    gamma: FloatTensor | None
    squared: bool

    def scores(self) -> FloatTensor:
        """The materialised ``[B, N]`` scores, through the pairwise-distance kernel."""
        scores = -_euclidean(self.q, self.t, squared=self.squared)
        bias = None if self.beta is None else self.beta.unsqueeze(-1)  # [B, 1]
        if self.gamma is not None:
            bias = self.gamma if bias is None else bias + self.gamma  # [N] or [B, N]
        return scores if bias is None else scores + bias


#: ``(hr_batch [B, 2]) -> DistanceDecomposition`` of the scores against every entity
OneToManyDecomposer = Callable[[LongTensor], DistanceDecomposition]


def _euclidean(q: FloatTensor, t: FloatTensor, *, squared: bool) -> FloatTensor:
    """``[B, N]`` distances ``||q_b - t_j||`` (squared if asked) of real rows ``q [B, d]``, ``t [N, d]``."""
    if squared:
        return pairwise_dist(q, t, k=0.0, squared=True) * 0.25
    return pairwise_dist(q, t, k=0.0) * 0.5


def _is_l2(interaction: Interaction[Any, Any, Any]) -> bool:
    return getattr(interaction, "p", None) == 2


def tail_distance_decomposition(model: Model) -> OneToManyDecomposer | None:
    """The :class:`DistanceDecomposition` of ``model.score_t(hr_batch)`` (transductive, unsliced), or ``None``
    when ``model`` is not an :class:`~pykeen.models.ERModel` with an L2 TransE, MuRE or RotatE interaction (and
    one representation per slot, PyKEEN's default construction)."""
    if not isinstance(model, ERModel):
        return None
    interaction = model.interaction
    # exact types: a subclass may change the math
    kind = type(interaction)
    if kind is RotatEInteraction:
        squared = False  # RotatE always uses the plain 2-norm
    elif kind in (TransEInteraction, MuREInteraction) and _is_l2(interaction):
        squared = bool(interaction.power_norm)
    else:
        return None

    def decompose(hr_batch: LongTensor) -> DistanceDecomposition:
        h, r, t = model._get_representations(h=hr_batch[:, 0], r=hr_batch[:, 1], t=None, mode=None)
        beta: FloatTensor | None = None
        gamma: FloatTensor | None = None
        if kind is MuREInteraction:
            (h_emb, h_bias), (r_vec, r_mat), (t_emb, t_bias) = h, r, t
            q = h_emb * r_mat + r_vec
            t = t_emb
            beta, gamma = h_bias, t_bias
        elif kind is RotatEInteraction:
            q = torch.view_as_real(h * r).flatten(-2)
            t = torch.view_as_real(t).flatten(-2)
        else:
            q = h + r
        return DistanceDecomposition(q, t, beta, gamma, squared)

    return decompose


def fast_tail_scorer(model: Model) -> OneToManyScorer | None:
    """A scorer equal to ``model.score_t(hr_batch)`` (transductive, unsliced) through a matrix product, or
    ``None`` when ``model`` has no :func:`tail_distance_decomposition`."""
    decompose = tail_distance_decomposition(model)
    if decompose is None:
        return None

    def score(hr_batch: LongTensor) -> FloatTensor:
        return decompose(hr_batch).scores()

    return score
