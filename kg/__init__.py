"""PyKEEN integration for geoattn: hyperbolic interactions and models, found by name, and local KG datasets.

Importing this package registers :class:`MuRP`, :class:`RotH`, :class:`RefH` and :class:`AttH` with PyKEEN's
``model_resolver`` and their interactions with ``interaction_resolver``: PyKEEN 1.11 reads no entry points for
models or interactions (only for datasets), and its resolvers index PyKEEN's own subclasses when PyKEEN is
imported, so the registration happens here::

    import geoattn.kg
    from pykeen.pipeline import pipeline

    result = pipeline(dataset=geoattn.kg.local_kg_dataset("FB15k-237", root), model="RotH")
"""

from pykeen.models import model_resolver
from pykeen.nn.modules import interaction_resolver

from .datasets import LOCAL_KG_DATASETS, local_kg_dataset
from .interactions import AttHInteraction, MuRPInteraction, RefHInteraction, RotHInteraction
from .models import AttH, MuRP, RefH, RotH

__all__ = [
    "LOCAL_KG_DATASETS",
    "AttH",
    "AttHInteraction",
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
    for model in (MuRP, RotH, RefH, AttH):
        if model_resolver.lookup_dict.get(model_resolver.normalize_cls(model)) is not model:
            model_resolver.register(model)
    for interaction in (MuRPInteraction, RotHInteraction, RefHInteraction, AttHInteraction):
        if (
            interaction_resolver.lookup_dict.get(interaction_resolver.normalize_cls(interaction))
            is not interaction
        ):
            interaction_resolver.register(interaction)


register()
