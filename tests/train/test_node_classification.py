"""The node-classification task: metrics, the classifier for every layer kind, the training loop, the data source."""

from __future__ import annotations

import inspect
from importlib.resources import files
from pathlib import Path
from typing import cast

import pytest
import torch
from omegaconf import OmegaConf

from geoattn.kernels.manifold_attention import Aggregation, Score
from geoattn.nn import BRANCHES, CurvatureAdaptiveConv, ManifoldAttentionConv
from geoattn.train.protocol import DataSource, TaskModel
from geoattn.train.tasks import (
    CONVS,
    NodeClassificationData,
    NodeClassifier,
    classification_metrics,
    f1_per_class,
    fit_full_batch,
)
from geoattn.train.tasks.node_classification import ConvName


def two_communities(n: int = 40, seed: int = 0) -> dict[str, torch.Tensor]:
    """Two dense communities joined by one edge; features are noisy class indicators; 50/25/25 split."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) >= n // 2).long()
    same = (y[:, None] == y[None, :]) & (torch.rand(n, n, generator=g) < 0.3)
    adj = (same | same.t()) & ~torch.eye(n, dtype=torch.bool)
    adj[0, n - 1] = adj[n - 1, 0] = True
    x = torch.nn.functional.one_hot(y, 2).float() + 0.8 * torch.randn(n, 2, generator=g)
    order = torch.randperm(n, generator=g)
    masks = [torch.zeros(n, dtype=torch.bool) for _ in range(3)]
    masks[0][order[: n // 2]] = True
    masks[1][order[n // 2 : 3 * n // 4]] = True
    masks[2][order[3 * n // 4 :]] = True
    return {
        "x": x,
        "edge_index": adj.nonzero().t(),
        "y": y,
        "train_mask": masks[0],
        "val_mask": masks[1],
        "test_mask": masks[2],
    }


def test_metrics_match_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 4, (60,), generator=g)
    logits = torch.randn(60, 5, generator=g)  # class 4 never a target, sometimes predicted
    pred = logits.argmax(-1)
    ours = classification_metrics(logits, target)
    assert ours["accuracy"].item() == pytest.approx(metrics.accuracy_score(target, pred))
    assert ours["macro_f1"].item() == pytest.approx(metrics.f1_score(target, pred, average="macro"))
    per_class = metrics.f1_score(target, pred, average=None, labels=list(range(5)), zero_division=0)
    assert f1_per_class(pred, target, 5).tolist() == pytest.approx(per_class.tolist())
    assert ours["loss"].item() == pytest.approx(torch.nn.functional.cross_entropy(logits, target).item())


@pytest.mark.parametrize("conv", CONVS)
def test_classifier_shapes_loss_and_metrics(conv: str) -> None:
    torch.manual_seed(0)
    batch = two_communities()
    model = NodeClassifier(2, 2, conv, hidden_channels=4, heads=2, num_layers=2)  # type: ignore[arg-type]
    assert isinstance(model, TaskModel)
    logits, routing = model(batch["x"], batch["edge_index"], return_routing=True)
    assert logits.shape == (40, 2)
    assert routing.shape == ((2, 40, 3) if conv == "cat" else (0, 40, 3))
    if conv == "cat":
        assert torch.allclose(routing.sum(-1), torch.ones(2, 40))
    loss = model.training_loss(batch)
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.input.parameters())
    model.eval()
    with torch.no_grad():
        metrics = model.validation_metrics(batch)
    assert {"loss", "accuracy", "macro_f1"} <= set(metrics)
    sign = {"euclidean": 0.0, "hyperbolic": -1.0, "spherical": 1.0}
    if conv in sign:
        assert torch.sign(metrics["k"]).item() == sign[conv]
    if conv == "cat":
        assert metrics["k_hyperbolic"] < 0 < metrics["k_spherical"]
        assert sum(float(metrics[f"routing_{b}"]) for b in BRANCHES) == pytest.approx(1.0)
    assert f"conv={conv!r}" in repr(model)


@pytest.mark.parametrize("conv", ["hyperbolic", "cat"])
@pytest.mark.parametrize(
    ("score", "aggregation"),
    [("distance", "tangent"), ("tangent_dot", "midpoint"), ("tangent_dot", "tangent")],
)
def test_score_and_aggregation_reach_every_layer(
    conv: ConvName, score: Score, aggregation: Aggregation
) -> None:
    torch.manual_seed(0)
    model = NodeClassifier(2, 2, conv, hidden_channels=4, heads=2, score=score, aggregation=aggregation)
    geometries = [cast(ManifoldAttentionConv | CurvatureAdaptiveConv, c).geometry for c in model.convs]
    assert all(g.score == score and g.aggregation == aggregation for g in geometries)
    loss = model.training_loss(two_communities())
    loss.backward()
    assert torch.isfinite(loss)
    assert f"score={score!r}, aggregation={aggregation!r}" in repr(model)


def test_cat_projections_per_branch() -> None:
    torch.manual_seed(0)
    shared = NodeClassifier(2, 2, "cat", hidden_channels=4, heads=2)
    separate = NodeClassifier(2, 2, "cat", hidden_channels=4, heads=2, shared_projections=False)
    assert all(c.shared_projections for c in shared.convs)
    assert not any(c.shared_projections for c in separate.convs)
    assert sum(p.numel() for p in separate.parameters()) > sum(p.numel() for p in shared.parameters())
    loss = separate.training_loss(two_communities())
    loss.backward()
    assert torch.isfinite(loss) and "shared_projections=False" in repr(separate)


def test_defaults_are_the_configs_and_gat_accepts_them() -> None:
    """configs/model/node_classifier.yaml spells out the class's defaults (the benchmark's); GATConv takes
    the defaults of the options it does not have."""
    config = OmegaConf.to_container(
        OmegaConf.create(files("geoattn.configs").joinpath("model/node_classifier.yaml").read_text())
    )
    assert isinstance(config, dict)
    defaults = {
        name: p.default
        for name, p in inspect.signature(NodeClassifier).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    assert {k: v for k, v in config.items() if k in defaults} == defaults
    assert (defaults["score"], defaults["aggregation"], defaults["shared_projections"]) == (
        "distance",
        "midpoint",
        True,
    )
    NodeClassifier(2, 2, "gat", heads=1, score="distance", aggregation="midpoint", shared_projections=True)


def test_fixed_curvature_is_not_learned() -> None:
    model = NodeClassifier(2, 2, "hyperbolic", hidden_channels=4, heads=2, learnable_curvature=False)
    assert model.curvatures()["k"].item() == -1.0
    assert not any("curvature" in name for name, _ in model.named_parameters())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"conv": "mixed"}, "conv must be one of"),
        ({"heads": 0}, "heads must be an int >= 1"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
        ({"routing_weight": -1.0}, "routing_weight must be >= 0"),
        ({"score": "dot"}, "score must be one of"),
        ({"aggregation": "sum"}, "aggregation must be one of"),
        ({"conv": "gat", "score": "tangent_dot"}, "conv='gat' has no score"),
        ({"conv": "gat", "aggregation": "tangent"}, "conv='gat' has no aggregation"),
        ({"conv": "gat", "shared_projections": False}, "conv='gat' has no shared_projections"),
        ({"conv": "spherical", "shared_projections": False}, "conv='spherical' has no shared_projections"),
    ],
)
def test_classifier_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NodeClassifier(2, 2, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("conv", ["cat", "gat"])
def test_fit_full_batch_learns_and_reports_the_best_epoch(conv: str) -> None:
    torch.manual_seed(0)
    batch = two_communities()
    model = NodeClassifier(2, 2, conv, hidden_channels=4, heads=2, dropout=0.0)  # type: ignore[arg-type]
    result = fit_full_batch(model, batch, lr=0.05, epochs=20, patience=5, keep_routing=True)
    assert not result.diverged and 1 <= result.best_epoch <= result.epochs <= 20
    assert result.epochs == 20 or result.epochs - result.best_epoch == 5  # stopped by patience
    assert result.val["accuracy"] >= 0.9 and result.test["accuracy"] >= 0.8
    assert len(result.test_f1_per_class) == 2 and result.seconds > 0
    assert (result.routing is not None) == (conv == "cat")
    if result.routing is not None:
        assert result.routing.shape == (2, 40, 3)


def test_fit_full_batch_stops_on_a_non_finite_loss() -> None:
    batch = two_communities()
    batch["x"] = batch["x"].clone()
    batch["x"][0, 0] = float("nan")
    model = NodeClassifier(2, 2, "gat", hidden_channels=4, heads=1, dropout=0.0)
    result = fit_full_batch(model, batch, lr=0.01, epochs=5)
    assert result.diverged and result.epochs == 1 and result.best_epoch == 0
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        fit_full_batch(model, batch, lr=0.01, epochs=0)


def test_data_source_checks_its_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    root = Path(__file__).resolve().parents[3] / "shared" / "data" / "graphs"
    if not (root / "disease_nc").is_dir():
        pytest.skip(f"graph data not found at {root}")
    data = NodeClassificationData("disease", root, num_features=1044, num_classes=2)
    assert isinstance(data, DataSource)
    (batch,) = list(data.train_batches(torch.Generator()))
    assert batch["x"].shape == (1044, 1044) and data.val_batches() == [batch]
    with pytest.raises(
        ValueError, match=r"num_features=7 but the loaded graph has 1044; set data.num_features=1044"
    ):
        NodeClassificationData("disease", root, num_features=7)
