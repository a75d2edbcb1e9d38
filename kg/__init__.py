"""PyKEEN integration for geoattn: hyperbolic interactions and models, found by name, and local KG datasets.

Importing this package registers :class:`MuRP`, :class:`RotH`, :class:`RefH`, :class:`AttH` and :class:`CAT` with
PyKEEN's ``model_resolver``, their interactions with ``interaction_resolver``, and geoopt's ``RiemannianAdam`` /
``RiemannianSGD`` with PyKEEN's optimizer resolver (``optimizer="RiemannianAdam"``, for
``entity_storage="manifold"``): PyKEEN 1.11 reads no entry points for
models or interactions (only for datasets), and its resolvers index PyKEEN's own subclasses when PyKEEN is
imported, so the registration happens here::

    import geoattn.kg
    from pykeen.pipeline import pipeline

    result = pipeline(dataset=geoattn.kg.local_kg_dataset("FB15k-237", root), model="RotH")
"""

import geoopt
from pykeen.models import model_resolver
from pykeen.nn.modules import interaction_resolver
from pykeen.optimizers import optimizer_resolver
from pykeen.training import training_loop_resolver

from .cat import CAT, CATInteraction
from .datasets import LOCAL_KG_DATASETS, local_kg_dataset
from .interactions import AttHInteraction, MuRPInteraction, RefHInteraction, RotHInteraction
from .manifold_embedding import ManifoldEmbedding
from .models import AttH, MuRP, RefH, RotH
from .training import FastLCWATrainingLoop

__all__ = [
    "CAT",
    "LOCAL_KG_DATASETS",
    "AttH",
    "AttHInteraction",
    "CATInteraction",
    "FastLCWATrainingLoop",
    "ManifoldEmbedding",
    "MuRP",
    "MuRPInteraction",
    "RefH",
    "RefHInteraction",
    "RotH",
    "RotHInteraction",
    "local_kg_dataset",
    "register",
]


def register() -> None:
    """Register the models and interactions with PyKEEN's resolvers; idempotent (called on import).

    Raises ``class_resolver.RegistrationNameConflict`` if PyKEEN already has a *different* class of that name.
    """
    for model in (MuRP, RotH, RefH, AttH, CAT):
        if model_resolver.lookup_dict.get(model_resolver.normalize_cls(model)) is not model:
            model_resolver.register(model)
    for interaction in (MuRPInteraction, RotHInteraction, RefHInteraction, AttHInteraction, CATInteraction):
        if (
            interaction_resolver.lookup_dict.get(interaction_resolver.normalize_cls(interaction))
            is not interaction
        ):
            interaction_resolver.register(interaction)
    # class_resolver indexes torch Optimizer subclasses once, without geoopt's Riemannian optimisers
    for optimizer in (geoopt.optim.RiemannianAdam, geoopt.optim.RiemannianSGD):
        if optimizer_resolver.lookup_dict.get(optimizer_resolver.normalize_cls(optimizer)) is not optimizer:
            optimizer_resolver.register(optimizer)
    # the 1-N training loop with labels on the device: training_loop="fastlcwa"
    if training_loop_resolver.lookup_dict.get(
        training_loop_resolver.normalize_cls(FastLCWATrainingLoop)
    ) is not (FastLCWATrainingLoop):
        training_loop_resolver.register(FastLCWATrainingLoop)


register()
