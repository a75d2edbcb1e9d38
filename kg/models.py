r"""PyKEEN models (``ERModel`` subclasses) over the hyperbolic interactions: :class:`MuRP`, :class:`RotH`,
:class:`RefH` and :class:`AttH`.

Each model stores three entity representations (the embedding in the tangent space at the origin, a head-position
bias and a tail-position bias, as PyKEEN's ``MuRE``) and relation representations: a translation, the
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
from torch.nn import init

from ..manifolds.curvature import inverse_softplus
from .interactions import (
    AttHInteraction,
    EntityRepresentation,
    MuRPInteraction,
    RefHInteraction,
    RelationRepresentation,
    RotHInteraction,
    _GivensHyperbolicInteraction,
)

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


def _entity_kwargs(embedding_dim: int) -> list[dict[str, Any]]:
    return [
        dict(shape=embedding_dim, initializer=init.normal_, initializer_kwargs=dict(std=_INIT_STD)),
        dict(shape=(), initializer=init.zeros_),  # head-position bias
        dict(shape=(), initializer=init.zeros_),  # tail-position bias
    ]


def _curvature_kwargs(init_curvature: float) -> dict[str, Any]:
    raw = inverse_softplus(-init_curvature)
    return dict(shape=(), initializer=functools.partial(init.constant_, val=raw))


class MuRP(ERModel[EntityRepresentation, RelationRepresentation, EntityRepresentation]):
    r"""MuRP [balazevic2019]_ with a learnable curvature per relation, scored by
    :class:`~geoattn.kg.interactions.MuRPInteraction`.

    Args:
        embedding_dim: the dimension ``d`` of entity and relation vectors. Default ``32``.
        init_curvature: the initial (negative) curvature of every relation. Default ``-1.0``.
        kwargs: passed on to :class:`pykeen.models.ERModel` (``triples_factory``, ``loss``, ...).

    ---
    citation:
        author: Balažević
        year: 2019
        link: https://arxiv.org/abs/1905.09791
        arxiv: 1905.09791
    """

    hpo_default: ClassVar[Mapping[str, Any]] = dict(embedding_dim=DEFAULT_EMBEDDING_HPO_EMBEDDING_DIM_RANGE)

    def __init__(self, *, embedding_dim: int = 32, init_curvature: float = -1.0, **kwargs: Any) -> None:
        _check_hyperparameters("MuRP", embedding_dim, init_curvature, even=False)
        super().__init__(
            interaction=MuRPInteraction,
            entity_representations_kwargs=_entity_kwargs(embedding_dim),
            relation_representations_kwargs=[
                _translation_kwargs(embedding_dim),
                # diagonal relation matrix, as pykeen's MuRE
                dict(shape=embedding_dim, initializer=init.uniform_, initializer_kwargs=dict(a=-1.0, b=1.0)),
                _curvature_kwargs(init_curvature),
            ],
            **kwargs,
        )
        self.embedding_dim = embedding_dim
        self.init_curvature = float(init_curvature)


def _translation_kwargs(embedding_dim: int) -> dict[str, Any]:
    """A translation: a tangent vector at the origin."""
    return dict(shape=embedding_dim, initializer=init.normal_, initializer_kwargs=dict(std=_INIT_STD))


def _angles_kwargs(embedding_dim: int) -> dict[str, Any]:
    """Givens angles, one per coordinate pair."""
    return dict(
        shape=embedding_dim // 2, initializer=init.uniform_, initializer_kwargs=dict(a=-math.pi, b=math.pi)
    )


class _GivensHyperbolicModel(ERModel[EntityRepresentation, RelationRepresentation, EntityRepresentation]):
    """RotH/RefH: translation, one angle per coordinate pair and a curvature per relation."""

    hpo_default: ClassVar[Mapping[str, Any]] = dict(embedding_dim=DEFAULT_EMBEDDING_HPO_EMBEDDING_DIM_RANGE)
    _interaction_cls: ClassVar[type[_GivensHyperbolicInteraction]]

    def __init__(self, *, embedding_dim: int = 32, init_curvature: float = -1.0, **kwargs: Any) -> None:
        _check_hyperparameters(type(self).__name__, embedding_dim, init_curvature, even=True)
        super().__init__(
            interaction=self._interaction_cls,
            entity_representations_kwargs=_entity_kwargs(embedding_dim),
            relation_representations_kwargs=[
                _translation_kwargs(embedding_dim),
                _angles_kwargs(embedding_dim),
                _curvature_kwargs(init_curvature),
            ],
            **kwargs,
        )
        self.embedding_dim = embedding_dim
        self.init_curvature = float(init_curvature)


class RotH(_GivensHyperbolicModel):
    r"""RotH [chami2020]_: hyperbolic rotation and translation with a learnable curvature per relation, scored by
    :class:`~geoattn.kg.interactions.RotHInteraction`.

    Args:
        embedding_dim: the dimension ``d`` of entity and relation vectors; even. Default ``32``.
        init_curvature: the initial (negative) curvature of every relation. Default ``-1.0``.
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


class AttH(ERModel[EntityRepresentation, RelationRepresentation, EntityRepresentation]):
    r"""AttH [chami2020]_: attention over hyperbolic rotation and reflection, with a learnable curvature per
    relation, scored by :class:`~geoattn.kg.interactions.AttHInteraction`.

    Args:
        embedding_dim: the dimension ``d`` of entity and relation vectors; even. Default ``32``.
        init_curvature: the initial (negative) curvature of every relation. Default ``-1.0``.
        kwargs: passed on to :class:`pykeen.models.ERModel` (``triples_factory``, ``loss``, ...).

    ---
    citation:
        author: Chami
        year: 2020
        link: https://aclanthology.org/2020.acl-main.617
        arxiv: 2005.00545
        github: HazyResearch/KGEmb
    """

    hpo_default: ClassVar[Mapping[str, Any]] = dict(embedding_dim=DEFAULT_EMBEDDING_HPO_EMBEDDING_DIM_RANGE)

    def __init__(self, *, embedding_dim: int = 32, init_curvature: float = -1.0, **kwargs: Any) -> None:
        _check_hyperparameters("AttH", embedding_dim, init_curvature, even=True)
        super().__init__(
            interaction=AttHInteraction,
            entity_representations_kwargs=_entity_kwargs(embedding_dim),
            relation_representations_kwargs=[
                _translation_kwargs(embedding_dim),
                _angles_kwargs(embedding_dim),  # rotation
                _angles_kwargs(embedding_dim),  # reflection
                # attention context vector
                dict(shape=embedding_dim, initializer=init.normal_, initializer_kwargs=dict(std=_INIT_STD)),
                _curvature_kwargs(init_curvature),
            ],
            **kwargs,
        )
        self.embedding_dim = embedding_dim
        self.init_curvature = float(init_curvature)
