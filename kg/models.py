r"""PyKEEN models (``ERModel`` subclasses) over the hyperbolic interactions: :class:`MuRP`, :class:`RotH`,
:class:`RefH` and :class:`AttH`.

Each model stores three entity representations (the embedding in the tangent space at the origin, or with
``entity_storage="manifold"`` on the Poincaré ball for Riemannian optimisers, see
:mod:`geoattn.kg.manifold_embedding`; a head-position bias and a tail-position bias, as PyKEEN's ``MuRE``) and relation representations: a translation, the
relation-specific transforms (AttH: two angle sets and a context vector), and last the raw curvature :math:`c_r`
with :math:`k_r = -\operatorname{softplus}(c_r)`.
After ``import geoattn.kg`` all are found by name: ``pipeline(model="MuRP", ...)``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from pykeen.constants import DEFAULT_EMBEDDING_HPO_EMBEDDING_DIM_RANGE
from pykeen.models import ERModel
from pykeen.nn.representation import Embedding
from torch.nn import init

from ..manifolds.curvature import inverse_softplus
from .interactions import (
    AttHInteraction,
    EntityRepresentation,
    MuRPInteraction,
    RefHInteraction,
    RelationRepresentation,
    RotHInteraction,
    _HyperbolicDistanceInteraction,
)
from .manifold_embedding import EntityStorage, ManifoldEmbedding, check_entity_storage

__all__ = ["AttH", "MuRP", "RefH", "RotH"]

# Chami et al. initialise embeddings with N(0, 1e-3^2): small tangent vectors, all near the origin.
_INIT_STD = 1.0e-3


def _check_hyperparameters(model: str, embedding_dim: int, init_curvature: float, even: bool) -> None:
    if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int) or embedding_dim < 1:
        raise ValueError(f"{model}: embedding_dim must be a positive int, got {embedding_dim!r}")
    if even and embedding_dim % 2:
        raise ValueError(
            f"{model}: embedding_dim must be even (pairs of coordinates are rotated), got {embedding_dim}"
        )
    if not (isinstance(init_curvature, int | float) and math.isfinite(init_curvature) and init_curvature < 0):
        raise ValueError(f"{model}: init_curvature must be a finite negative float, got {init_curvature!r}")


def _entity_kwargs(model: str, embedding_dim: int, entity_storage: EntityStorage) -> dict[str, Any]:
    """``ERModel`` keyword arguments of the entity representations: the embedding (tangent vectors in an
    ``Embedding``, or points on the ball in a :class:`ManifoldEmbedding`), a head- and a tail-position bias."""
    check_entity_storage(model, entity_storage)
    if entity_storage == "manifold":
        embedding: dict[str, Any] = dict(shape=embedding_dim, init_std=_INIT_STD)
    else:
        embedding = dict(
            shape=embedding_dim, initializer=init.normal_, initializer_kwargs=dict(std=_INIT_STD)
        )
    return dict(
        entity_representations=[
            ManifoldEmbedding if entity_storage == "manifold" else Embedding,
            Embedding,
            Embedding,
        ],
        entity_representations_kwargs=[
            embedding,
            dict(shape=(), initializer=init.zeros_),  # head-position bias
            dict(shape=(), initializer=init.zeros_),  # tail-position bias
        ],
    )


def _curvature_kwargs(init_curvature: float) -> dict[str, Any]:
    raw = inverse_softplus(-init_curvature)
    return dict(shape=(), initializer=functools.partial(init.constant_, val=raw))


class _HyperbolicModel(ERModel[EntityRepresentation, RelationRepresentation, EntityRepresentation]):
    """The shared constructor: entity representations (:func:`_entity_kwargs`), the subclass's relation
    representations (:meth:`_relation_kwargs`) and interaction, hyper-parameters checked and stored."""

    hpo_default: ClassVar[Mapping[str, Any]] = dict(embedding_dim=DEFAULT_EMBEDDING_HPO_EMBEDDING_DIM_RANGE)
    _interaction_cls: ClassVar[type[_HyperbolicDistanceInteraction]]
    _even_dim: ClassVar[bool] = True  # pairs of coordinates are rotated / reflected

    def __init__(
        self,
        *,
        embedding_dim: int = 32,
        init_curvature: float = -1.0,
        entity_storage: EntityStorage = "tangent",
        **kwargs: Any,
    ) -> None:
        _check_hyperparameters(type(self).__name__, embedding_dim, init_curvature, even=self._even_dim)
        super().__init__(
            interaction=self._interaction_cls,
            **_entity_kwargs(type(self).__name__, embedding_dim, entity_storage),
            relation_representations_kwargs=[
                *self._relation_kwargs(embedding_dim),
                _curvature_kwargs(init_curvature),
            ],
            **kwargs,
        )
        self.embedding_dim = embedding_dim
        self.init_curvature = float(init_curvature)
        self.entity_storage = entity_storage

    @staticmethod
    def _relation_kwargs(embedding_dim: int) -> list[dict[str, Any]]:  # pragma: no cover - abstract
        """The relation representations before the curvature, in the interaction's ``relation_shape`` order."""
        raise NotImplementedError


class MuRP(_HyperbolicModel):
    r"""MuRP [balazevic2019]_ with a learnable curvature per relation, scored by
    :class:`~geoattn.kg.interactions.MuRPInteraction`.

    Args:
        embedding_dim: the dimension ``d`` of entity and relation vectors. Default ``32``.
        init_curvature: the initial (negative) curvature of every relation. Default ``-1.0``.
        entity_storage: ``"tangent"`` (tangent vectors at the origin, default) or ``"manifold"`` (points on the
            ball of curvature -1, for ``optimizer="RiemannianAdam"``; see :mod:`geoattn.kg.manifold_embedding`).
        kwargs: passed on to :class:`pykeen.models.ERModel` (``triples_factory``, ``loss``, ...).

    ---
    citation:
        author: Balažević
        year: 2019
        link: https://arxiv.org/abs/1905.09791
        arxiv: 1905.09791
    """

    _interaction_cls = MuRPInteraction
    _even_dim = False

    @staticmethod
    def _relation_kwargs(embedding_dim: int) -> list[dict[str, Any]]:
        return [
            _translation_kwargs(embedding_dim),
            # diagonal relation matrix, as pykeen's MuRE
            dict(shape=embedding_dim, initializer=init.uniform_, initializer_kwargs=dict(a=-1.0, b=1.0)),
        ]


def _translation_kwargs(embedding_dim: int) -> dict[str, Any]:
    """A translation: a tangent vector at the origin."""
    return dict(shape=embedding_dim, initializer=init.normal_, initializer_kwargs=dict(std=_INIT_STD))


def _angles_kwargs(embedding_dim: int) -> dict[str, Any]:
    """Givens angles, one per coordinate pair."""
    return dict(
        shape=embedding_dim // 2, initializer=init.uniform_, initializer_kwargs=dict(a=-math.pi, b=math.pi)
    )


class _GivensHyperbolicModel(_HyperbolicModel):
    """RotH/RefH: translation, one angle per coordinate pair and a curvature per relation."""

    @staticmethod
    def _relation_kwargs(embedding_dim: int) -> list[dict[str, Any]]:
        return [_translation_kwargs(embedding_dim), _angles_kwargs(embedding_dim)]


class RotH(_GivensHyperbolicModel):
    r"""RotH [chami2020]_: hyperbolic rotation and translation with a learnable curvature per relation, scored by
    :class:`~geoattn.kg.interactions.RotHInteraction`.

    Args:
        embedding_dim: the dimension ``d`` of entity and relation vectors; even. Default ``32``.
        init_curvature: the initial (negative) curvature of every relation. Default ``-1.0``.
        entity_storage: ``"tangent"`` (tangent vectors at the origin, default) or ``"manifold"`` (points on the
            ball of curvature -1, for ``optimizer="RiemannianAdam"``; see :mod:`geoattn.kg.manifold_embedding`).
        kwargs: passed on to :class:`pykeen.models.ERModel` (``triples_factory``, ``loss``, ...).

    ---
    citation:
        author: Chami
        year: 2020
        link: https://aclanthology.org/2020.acl-main.617
        arxiv: 2005.00545
        github: HazyResearch/KGEmb
    """

    _interaction_cls = RotHInteraction


class RefH(_GivensHyperbolicModel):
    r"""RefH [chami2020]_: hyperbolic reflection and translation with a learnable curvature per relation, scored by
    :class:`~geoattn.kg.interactions.RefHInteraction`.

    Args:
        embedding_dim: the dimension ``d`` of entity and relation vectors; even. Default ``32``.
        init_curvature: the initial (negative) curvature of every relation. Default ``-1.0``.
        entity_storage: ``"tangent"`` (tangent vectors at the origin, default) or ``"manifold"`` (points on the
            ball of curvature -1, for ``optimizer="RiemannianAdam"``; see :mod:`geoattn.kg.manifold_embedding`).
        kwargs: passed on to :class:`pykeen.models.ERModel` (``triples_factory``, ``loss``, ...).

    ---
    citation:
        author: Chami
        year: 2020
        link: https://aclanthology.org/2020.acl-main.617
        arxiv: 2005.00545
        github: HazyResearch/KGEmb
    """

    _interaction_cls = RefHInteraction


class AttH(_HyperbolicModel):
    r"""AttH [chami2020]_: attention over hyperbolic rotation and reflection, with a learnable curvature per
    relation, scored by :class:`~geoattn.kg.interactions.AttHInteraction`.

    Args:
        embedding_dim: the dimension ``d`` of entity and relation vectors; even. Default ``32``.
        init_curvature: the initial (negative) curvature of every relation. Default ``-1.0``.
        entity_storage: ``"tangent"`` (tangent vectors at the origin, default) or ``"manifold"`` (points on the
            ball of curvature -1, for ``optimizer="RiemannianAdam"``; see :mod:`geoattn.kg.manifold_embedding`).
        kwargs: passed on to :class:`pykeen.models.ERModel` (``triples_factory``, ``loss``, ...).

    ---
    citation:
        author: Chami
        year: 2020
        link: https://aclanthology.org/2020.acl-main.617
        arxiv: 2005.00545
        github: HazyResearch/KGEmb
    """

    _interaction_cls = AttHInteraction

    @staticmethod
    def _relation_kwargs(embedding_dim: int) -> list[dict[str, Any]]:
        return [
            _translation_kwargs(embedding_dim),
            _angles_kwargs(embedding_dim),  # rotation
            _angles_kwargs(embedding_dim),  # reflection
            # attention context vector
            dict(shape=embedding_dim, initializer=init.normal_, initializer_kwargs=dict(std=_INIT_STD)),
        ]
