r"""Hyperbolic KG interactions PyKEEN lacks: MuRP, RotH, RefH and AttH, with a learnable curvature per relation.

All score a triple by the squared geodesic distance between a relation-specific *query* point and the tail on
the Poincaré ball of the relation's curvature :math:`k_r = -\operatorname{softplus}(c_r) < 0`:

.. math::
    f(h, r, t) = -d_{k_r}\big(q(h, r),\ \exp_0^{k_r}(\mathbf{e}_t)\big)^2 + b_h + b_t .

Entity embeddings :math:`\mathbf{e} \in \mathbb{R}^d` are stored in the tangent space at the origin and mapped
onto each relation's ball with :math:`\exp_0^{k_r}` (the tangent-space parametrisation of Chami et al., 2020),
so one entity table serves every curvature and ordinary (Euclidean) optimisers apply.

1-N scoring: when every query meets the same set of tails (PyKEEN's ``score_t``, where ``t`` has shape
``(1, num_entities, d)`` against queries of shape ``(batch, 1, d)``), the distances are computed by
:func:`geoattn.kernels.pairwise_dist.pairwise_dist` (``squared=True, y_tangent=True``, one curvature per query
row): one matrix product plus an epilogue, never a ``(batch, num_entities, d)`` tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from pykeen.nn.modules import Interaction
from pykeen.typing import FloatTensor
from torch.nn import functional as F

from ..kernels.pairwise_dist import pairwise_dist
from ..manifolds import expmap0, mobius_add, project, sqdist

__all__ = [
    "AttHInteraction",
    "MuRPInteraction",
    "RefHInteraction",
    "RotHInteraction",
    "givens_reflection",
    "givens_rotation",
    "hyperbolic_tail_sqdist",
    "is_one_to_many",
    "relation_curvature",
    "translate",
]

EntityRepresentation = tuple[FloatTensor, FloatTensor]
RelationRepresentation = tuple[FloatTensor, ...]


def relation_curvature(raw: FloatTensor) -> FloatTensor:
    r"""The signed curvature :math:`k_r = -\operatorname{softplus}(c_r)` from its raw parameter (any shape)."""
    return -F.softplus(raw)


def is_one_to_many(q: FloatTensor, t: FloatTensor) -> bool:
    """Whether ``q`` ``(*prefix, 1, d)`` meets one shared set of tails ``(1, ..., 1, n, d)`` with ``n > 1``.

    This is the shape PyKEEN's ``score_t`` produces; then every query row is scored against the same ``n``
    tails and a pairwise distance matrix replaces the broadcast.
    """
    return (
        q.dim() >= 2
        and t.dim() >= 2
        and q.shape[-2] == 1
        and t.shape[-2] > 1
        and all(size == 1 for size in t.shape[:-2])
    )


def hyperbolic_tail_sqdist(q: FloatTensor, t: FloatTensor, k: FloatTensor) -> FloatTensor:
    r"""Squared distances :math:`d_k(q, \exp_0^k(t))^2`, broadcasting like PyKEEN's interactions.

    Args:
        q: query points ``(*batch_q, d)`` on the ball of curvature ``k``.
        t: tail embeddings ``(*batch_t, d)`` in the tangent space at the origin.
        k: curvature ``(*batch_k)`` with ``batch_k`` broadcastable to ``batch_q`` (one per query).

    Returns:
        ``broadcast(batch_q, batch_t)``. In the 1-N case (:func:`is_one_to_many`) through
        :func:`~geoattn.kernels.pairwise_dist.pairwise_dist` without a ``(..., n, d)`` broadcast; otherwise
        elementwise with :func:`~geoattn.manifolds.sqdist`.
    """
    out_shape = torch.broadcast_shapes(q.shape[:-1], t.shape[:-1])
    if is_one_to_many(q, t):
        d = q.shape[-1]
        x = q.reshape(-1, d)  # [P, d]: one row per query
        k_rows = k.expand(q.shape[:-1]).reshape(-1, 1)  # [P, 1]
        d2 = pairwise_dist(x, t.reshape(-1, d), k=k_rows, squared=True, y_tangent=True)  # [P, n]
        return d2.reshape(out_shape)
    kk = k.unsqueeze(-1)
    return sqdist(q, expmap0(t, k=kk), k=kk)


def translate(head: FloatTensor, r_vec: FloatTensor, k: FloatTensor) -> FloatTensor:
    r""":math:`\exp_0^k(\mathbf{x}) \oplus_k \exp_0^k(\mathbf{r})` for tangent vectors ``head`` and ``r_vec``
    ``(*batch, d)`` and curvature ``k`` ``(*batch, 1)``, projected into the ball (``k < 0``)."""
    return project(mobius_add(expmap0(head, k=k), expmap0(r_vec, k=k), k=k), k=k)


def givens_rotation(angles: FloatTensor, x: FloatTensor) -> FloatTensor:
    r"""Rotate consecutive coordinate pairs of ``x`` ``(..., d)`` by ``angles`` ``(..., d/2)`` (broadcasting).

    :math:`(x_{2i}, x_{2i+1}) \mapsto (x_{2i}\cos\theta_i - x_{2i+1}\sin\theta_i,\
    x_{2i}\sin\theta_i + x_{2i+1}\cos\theta_i)`: an orthogonal map, so it commutes with :math:`\exp_0^k`.
    """
    pairs = x.unflatten(-1, (-1, 2))
    x0, x1 = pairs[..., 0], pairs[..., 1]
    cos, sin = angles.cos(), angles.sin()
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(-2)


def givens_reflection(angles: FloatTensor, x: FloatTensor) -> FloatTensor:
    r"""Reflect consecutive coordinate pairs of ``x`` ``(..., d)`` by ``angles`` ``(..., d/2)`` (broadcasting).

    :math:`(x_{2i}, x_{2i+1}) \mapsto (x_{2i}\cos\theta_i + x_{2i+1}\sin\theta_i,\
    x_{2i}\sin\theta_i - x_{2i+1}\cos\theta_i)`: orthogonal and an involution (applying it twice is the
    identity), so it commutes with :math:`\exp_0^k`.
    """
    pairs = x.unflatten(-1, (-1, 2))
    x0, x1 = pairs[..., 0], pairs[..., 1]
    cos, sin = angles.cos(), angles.sin()
    return torch.stack((x0 * cos + x1 * sin, x0 * sin - x1 * cos), dim=-1).flatten(-2)


class _HyperbolicDistanceInteraction(
    Interaction[EntityRepresentation, RelationRepresentation, EntityRepresentation]
):
    """Shared shapes and scoring: subclasses build the query point in :meth:`query`."""

    # the embedding, a head-position bias and a tail-position bias (as pykeen's MuREInteraction)
    entity_shape = ("d", "", "")
    _head_indices = (0, 1)
    _tail_indices = (0, 2)

    def query(
        self, h: FloatTensor, r: Sequence[FloatTensor], k: FloatTensor
    ) -> FloatTensor:  # pragma: no cover
        """The query point ``(*batch, d)`` on the ball of curvature ``k`` ``(*batch, 1)``.

        ``r`` holds the relation representations without the curvature, in ``relation_shape`` order.
        """
        raise NotImplementedError

    def forward(
        self, h: EntityRepresentation, r: RelationRepresentation, t: EntityRepresentation
    ) -> FloatTensor:
        """Evaluate the interaction function, broadcasting over batch dimensions.

        Args:
            h: head embedding ``(*batch, d)`` (tangent space at the origin) and head bias ``(*batch)``.
            r: relation representations (``relation_shape``), the last one the raw curvature ``(*batch)``.
            t: tail embedding ``(*batch, d)`` and tail bias ``(*batch)``.

        Returns:
            scores ``(*batch)``: :math:`-d_{k_r}(q, \\exp_0^{k_r}(e_t))^2 + b_h + b_t`.
        """
        h_emb, h_bias = h
        t_emb, t_bias = t
        k = relation_curvature(r[-1])
        q = self.query(h_emb, r[:-1], k.unsqueeze(-1))
        return -hyperbolic_tail_sqdist(q, t_emb, k) + h_bias + t_bias


class MuRPInteraction(_HyperbolicDistanceInteraction):
    r"""The MuRP interaction of [balazevic2019]_ with a learnable curvature per relation.

    For a head embedding :math:`\mathbf{e}_h`, a diagonal relation matrix :math:`\mathbf{R}` and a relation
    translation :math:`\mathbf{r}` (both in :math:`\mathbb{R}^d`, tangent vectors at the origin):

    .. math::
        q = \exp_0^{k_r}(\mathbf{R}\odot\mathbf{e}_h) \oplus_{k_r} \exp_0^{k_r}(\mathbf{r}),\qquad
        f(h, r, t) = -d_{k_r}\big(q, \exp_0^{k_r}(\mathbf{e}_t)\big)^2 + b_h + b_t,

    with :math:`k_r = -\operatorname{softplus}(c_r)`. Differences from the paper, both so that all tails are
    scored with one pairwise distance matrix: the translation is applied to the query (the paper's form is
    :math:`d(\exp_0(\mathbf{R}\log_0 \mathbf{h}), \mathbf{t}\oplus\mathbf{r})`; the query-side form is the one
    of Chami et al.'s hyperbolic models), and entities live in the tangent space (so
    :math:`\log_0 \mathbf{h} = \mathbf{e}_h`). The curvature is per relation rather than fixed at -1.

    Relation representations: translation ``(d,)``, diagonal scaling ``(d,)``, raw curvature ``()``.

    ---
    citation:
        author: Balažević
        year: 2019
        link: https://arxiv.org/abs/1905.09791
        arxiv: 1905.09791
    """

    relation_shape = ("d", "d", "")

    def query(self, h: FloatTensor, r: Sequence[FloatTensor], k: FloatTensor) -> FloatTensor:
        """:math:`\\exp_0^k(R \\odot h) \\oplus_k \\exp_0^k(r)` with ``r = (translation, R)``."""
        r_vec, r_diag = r
        return translate(r_diag * h, r_vec, k)


class _GivensHyperbolicInteraction(_HyperbolicDistanceInteraction):
    """RotH/RefH: an orthogonal map of coordinate pairs (origin-fixing) followed by a Möbius translation."""

    # translation (d,), one angle per coordinate pair (e = d/2; PyKEEN shape symbols are single letters),
    # raw curvature ()
    relation_shape = ("d", "e", "")

    @staticmethod
    def transform(angles: FloatTensor, x: FloatTensor) -> FloatTensor:  # pragma: no cover - abstract
        """The orthogonal map of coordinate pairs."""
        raise NotImplementedError

    def query(self, h: FloatTensor, r: Sequence[FloatTensor], k: FloatTensor) -> FloatTensor:
        """:math:`G(\\theta)\\exp_0^k(h) \\oplus_k \\exp_0^k(r)` with ``r = (translation, theta)``."""
        r_vec, angles = r
        # G exp_0(h) = exp_0(G h): orthogonal maps fix the origin and preserve norms.
        return translate(self.transform(angles, h), r_vec, k)


class RotHInteraction(_GivensHyperbolicInteraction):
    r"""The RotH interaction of [chami2020]_: a hyperbolic rotation followed by a Möbius translation.

    For a head embedding :math:`\mathbf{e}_h`, block-diagonal Givens rotation angles
    :math:`\boldsymbol{\theta}_r \in \mathbb{R}^{d/2}` and a translation :math:`\mathbf{r} \in \mathbb{R}^d`:

    .. math::
        q = \operatorname{Rot}(\boldsymbol{\theta}_r)\exp_0^{k_r}(\mathbf{e}_h) \oplus_{k_r}
            \exp_0^{k_r}(\mathbf{r}),\qquad
        f(h, r, t) = -d_{k_r}\big(q, \exp_0^{k_r}(\mathbf{e}_t)\big)^2 + b_h + b_t,

    with :math:`k_r = -\operatorname{softplus}(c_r)` (:func:`givens_rotation`). ``d`` must be even.

    Relation representations: translation ``(d,)``, rotation angles ``(e,)`` with ``e = d/2``,
    raw curvature ``()``.

    ---
    citation:
        author: Chami
        year: 2020
        link: https://aclanthology.org/2020.acl-main.617
        arxiv: 2005.00545
        github: HazyResearch/KGEmb
    """

    transform = staticmethod(givens_rotation)


class RefHInteraction(_GivensHyperbolicInteraction):
    r"""The RefH interaction of [chami2020]_: a hyperbolic reflection followed by a Möbius translation.

    As :class:`RotHInteraction` with the Givens reflection :math:`\operatorname{Ref}(\boldsymbol{\theta}_r)`
    (:func:`givens_reflection`) in place of the rotation:

    .. math::
        q = \operatorname{Ref}(\boldsymbol{\theta}_r)\exp_0^{k_r}(\mathbf{e}_h) \oplus_{k_r}
            \exp_0^{k_r}(\mathbf{r}),\qquad
        f(h, r, t) = -d_{k_r}\big(q, \exp_0^{k_r}(\mathbf{e}_t)\big)^2 + b_h + b_t .

    Relation representations: translation ``(d,)``, reflection angles ``(e,)`` with ``e = d/2``,
    raw curvature ``()``.

    ---
    citation:
        author: Chami
        year: 2020
        link: https://aclanthology.org/2020.acl-main.617
        arxiv: 2005.00545
        github: HazyResearch/KGEmb
    """

    transform = staticmethod(givens_reflection)


class AttHInteraction(_HyperbolicDistanceInteraction):
    r"""The AttH interaction of [chami2020]_: attention over a hyperbolic rotation and reflection, then translation.

    With the Givens rotation :math:`\mathbf{q}_{\mathrm{rot}} = \operatorname{Rot}(\boldsymbol{\theta}_r)\mathbf{e}_h`
    and reflection :math:`\mathbf{q}_{\mathrm{ref}} = \operatorname{Ref}(\boldsymbol{\phi}_r)\mathbf{e}_h` of the
    head (tangent vectors at the origin, i.e. :math:`\log_0` of the hyperbolic points) and a context vector
    :math:`\mathbf{a}_r`:

    .. math::
        (\alpha_{\mathrm{rot}}, \alpha_{\mathrm{ref}}) = \operatorname{softmax}\big(
            \langle\mathbf{a}_r, \mathbf{q}_{\mathrm{rot}}\rangle/\sqrt{d},\
            \langle\mathbf{a}_r, \mathbf{q}_{\mathrm{ref}}\rangle/\sqrt{d}\big),\qquad
        q = \exp_0^{k_r}(\alpha_{\mathrm{rot}}\mathbf{q}_{\mathrm{rot}} + \alpha_{\mathrm{ref}}\mathbf{q}_{\mathrm{ref}})
            \oplus_{k_r} \exp_0^{k_r}(\mathbf{r}),

    :math:`f(h, r, t) = -d_{k_r}(q, \exp_0^{k_r}(\mathbf{e}_t))^2 + b_h + b_t`, :math:`k_r = -\operatorname{softplus}(c_r)`
    (the scaled dot-product attention of the authors' code, HazyResearch/KGEmb). ``d`` must be even.

    Relation representations: translation ``(d,)``, rotation angles ``(e,)``, reflection angles ``(e,)`` with
    ``e = d/2``, context vector ``(d,)``, raw curvature ``()``.

    ---
    citation:
        author: Chami
        year: 2020
        link: https://aclanthology.org/2020.acl-main.617
        arxiv: 2005.00545
        github: HazyResearch/KGEmb
    """

    relation_shape = ("d", "e", "e", "d", "")

    def query(self, h: FloatTensor, r: Sequence[FloatTensor], k: FloatTensor) -> FloatTensor:
        """Attention-weighted rotation/reflection of ``h``, mapped to the ball and translated.

        ``r = (translation, rotation angles, reflection angles, context)``.
        """
        r_vec, rotation, reflection, context = r
        candidates = torch.stack(
            (givens_rotation(rotation, h), givens_reflection(reflection, h)), dim=-2
        )  # (*b, 2, d)
        logits = (context.unsqueeze(-2) * candidates).sum(dim=-1) / h.shape[-1] ** 0.5  # (*b, 2)
        attended = (logits.softmax(dim=-1).unsqueeze(-1) * candidates).sum(dim=-2)  # (*b, d)
        return translate(attended, r_vec, k)
