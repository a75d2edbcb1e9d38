"""MuRP, RotH, RefH and AttH as PyKEEN models: found by name, trained by ``pipeline`` on a tiny local slice, 1-N consistent."""

from __future__ import annotations

import pytest
import torch
from pykeen.datasets.base import Dataset
from pykeen.models import model_resolver
from pykeen.nn.modules import interaction_resolver
from pykeen.pipeline import pipeline

import geoattn.kg
from geoattn.kg import (
    AttH,
    AttHInteraction,
    MuRP,
    MuRPInteraction,
    RefH,
    RefHInteraction,
    RotH,
    RotHInteraction,
)


def test_registered_by_name() -> None:
    assert model_resolver.lookup("MuRP") is MuRP
    assert model_resolver.lookup("roth") is RotH
    assert interaction_resolver.lookup("MuRP") is MuRPInteraction
    assert interaction_resolver.lookup("RotHInteraction") is RotHInteraction
    assert model_resolver.lookup("RefH") is RefH
    assert interaction_resolver.lookup("refh") is RefHInteraction
    assert model_resolver.lookup("AttH") is AttH
    assert interaction_resolver.lookup("AttH") is AttHInteraction
    geoattn.kg.register()  # idempotent
    assert model_resolver.lookup("MuRP") is MuRP


# pykeen's sLCWA training loop warns about its own deprecated argument; no accelerator for pinned memory on CPU
@pytest.mark.filterwarnings("ignore:Training instances are always shuffled:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true:UserWarning")
@pytest.mark.parametrize("name", ["MuRP", "RotH", "RefH", "AttH"])
def test_pipeline_by_name(tiny: Dataset, name: str) -> None:
    result = pipeline(
        dataset=tiny,
        model=name,
        model_kwargs=dict(embedding_dim=8),
        training_kwargs=dict(num_epochs=1, batch_size=256, use_tqdm=False),
        evaluation_kwargs=dict(use_tqdm=False),
        random_seed=0,
        device="cpu",
    )
    assert type(result.model).__name__ == name
    mrr = result.metric_results.get_metric("mrr")
    assert 0.0 <= mrr <= 1.0


@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true:UserWarning")
def test_lcwa_training_uses_one_to_many(tiny: Dataset) -> None:
    """LCWA training scores all tails (score_t, the pairwise path) and backpropagates through it."""
    result = pipeline(
        dataset=tiny,
        model="AttH",
        model_kwargs=dict(embedding_dim=8),
        training_loop="lcwa",
        training_kwargs=dict(num_epochs=2, batch_size=256, use_tqdm=False),
        evaluation_kwargs=dict(use_tqdm=False),
        random_seed=0,
        device="cpu",
    )
    assert all(torch.isfinite(torch.tensor(loss)) for loss in result.losses)
    assert 0.0 <= result.metric_results.get_metric("mrr") <= 1.0


@pytest.mark.parametrize("cls", [MuRP, RotH, RefH, AttH])
def test_model_one_to_many_matches_triples(tiny: Dataset, cls: type) -> None:
    """score_t (the pairwise path) equals score_hrt on every (h, r, t) with the default dimension 32."""
    torch.manual_seed(0)
    model = cls(triples_factory=tiny.training)
    assert model.embedding_dim == 32
    with torch.no_grad():  # move away from the origin so the check is not trivial
        model.entity_representations[0]._embeddings.weight.normal_(std=0.3)
    hr = tiny.training.mapped_triples[:4, :2]
    n = model.num_entities
    all_scores = model.score_t(hr)
    assert all_scores.shape == (4, n)
    triples = torch.cat([hr.repeat_interleave(n, dim=0), torch.arange(n).repeat(4)[:, None]], dim=1)
    expected = model.score_hrt(triples).view(4, n)
    torch.testing.assert_close(all_scores, expected, rtol=1e-4, atol=1e-4)


def test_hyperparameters_validated(tiny: Dataset) -> None:
    with pytest.raises(ValueError, match="embedding_dim must be even"):
        RotH(triples_factory=tiny.training, embedding_dim=7)
    with pytest.raises(ValueError, match="embedding_dim must be even"):
        AttH(triples_factory=tiny.training, embedding_dim=5)
    with pytest.raises(ValueError, match="init_curvature"):
        MuRP(triples_factory=tiny.training, init_curvature=0.5)
    model = MuRP(triples_factory=tiny.training, embedding_dim=4, init_curvature=-2.0)
    k = geoattn.kg.interactions.relation_curvature(model.relation_representations[2]())
    torch.testing.assert_close(k, torch.full_like(k, -2.0))
