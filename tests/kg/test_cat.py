"""CAT as a PyKEEN interaction and model: 1-N scoring equals the broadcast, ablations, pipeline by name with inverse triples."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pykeen.datasets.base import Dataset
from pykeen.models import model_resolver
from pykeen.nn.modules import interaction_resolver
from pykeen.pipeline import pipeline

from geoattn.kg import CAT, CATInteraction
from geoattn.kg import interactions as hyperbolic_interactions
from geoattn.manifolds import SignedCurvature
from geoattn.nn import CurvatureAdaptiveAttention, ManifoldAttention

D = 8
SMALL: dict[str, Any] = dict(embedding_dim=D, num_layers=1, num_heads=2, dropout=0.0, input_dropout=0.0)


def test_registered_by_name() -> None:
    assert model_resolver.lookup("CAT") is CAT
    assert interaction_resolver.lookup("CAT") is CATInteraction


@pytest.mark.parametrize(
    ("tail_score", "score_geometry"),
    [("distance", "signed"), ("distance", "hyperbolic"), ("distance", "spherical"), ("dot", "signed")],
)
@pytest.mark.parametrize("use_cls", [True, False])
def test_one_to_many_equals_broadcast(tail_score: str, score_geometry: str, use_cls: bool) -> None:
    """score_t's shapes (B, 1, d) x (1, N, d) give the scores and gradients of the expanded (B, N, d) tails."""
    torch.manual_seed(0)
    interaction = CATInteraction(
        **SMALL, tail_score=tail_score, score_geometry=score_geometry, use_cls=use_cls
    ).double()
    if isinstance(interaction.curvature, SignedCurvature):  # away from 0, so its gradient path is exercised
        with torch.no_grad():
            interaction.curvature.theta.fill_(-0.7)
    b, n = 4, 9
    h = (0.5 * torch.randn(b, 1, D, dtype=torch.float64)).requires_grad_(True)
    r = (0.5 * torch.randn(b, 1, D, dtype=torch.float64)).requires_grad_(True)
    t_emb = (0.3 * torch.randn(1, n, D, dtype=torch.float64)).requires_grad_(True)
    t_bias = torch.randn(1, n, dtype=torch.float64).requires_grad_(True)
    fast = interaction(h=h, r=r, t=(t_emb, t_bias))
    slow = interaction(h=h, r=r, t=(t_emb.expand(b, n, D), t_bias.expand(b, n)))
    assert fast.shape == slow.shape == (b, n)
    torch.testing.assert_close(fast, slow)
    weights = torch.randn(b, n, dtype=torch.float64)
    leaves = [h, r, t_emb, t_bias, *interaction.parameters()]
    grads_fast = torch.autograd.grad((weights * fast).sum(), leaves, allow_unused=True)
    grads_slow = torch.autograd.grad((weights * slow).sum(), leaves, allow_unused=True)
    for g_fast, g_slow in zip(grads_fast, grads_slow, strict=True):
        assert (g_fast is None) == (g_slow is None)
        if g_fast is not None:
            torch.testing.assert_close(g_fast, g_slow)


def test_distance_score_is_the_geodesic_distance() -> None:
    """Euclidean scoring: -d_0(q, e_t)^2 + b_t with d_0 = 2 ||q - e_t||, q from encode()."""
    torch.manual_seed(1)
    interaction = CATInteraction(**SMALL, score_geometry="euclidean").eval()
    h, r = torch.randn(3, D), torch.randn(3, D)
    t_emb, t_bias = torch.randn(5, D), torch.randn(5)
    q = interaction.encode(h, r)
    expected = -4.0 * torch.cdist(q, t_emb) ** 2 + t_bias
    torch.testing.assert_close(interaction.score_t(h=h, r=r, all_entities=(t_emb, t_bias)), expected)
    dot = CATInteraction(**SMALL, tail_score="dot").eval()
    torch.testing.assert_close(
        dot.score_t(h=h, r=r, all_entities=(t_emb, t_bias)), dot.encode(h, r) @ t_emb.T + t_bias
    )


def test_one_to_many_builds_no_broadcast(monkeypatch: pytest.MonkeyPatch) -> None:
    """The distance path of score_t never reaches the elementwise distance (which would form (B, N, d))."""

    def forbidden(*args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError("elementwise sqdist called on the 1-N path")

    interaction = CATInteraction(**SMALL).eval()
    h, r, all_t = torch.randn(3, D), torch.randn(3, D), (torch.randn(11, D), torch.randn(11))
    expected = interaction.score_t(h=h, r=r, all_entities=all_t)
    monkeypatch.setattr(hyperbolic_interactions, "sqdist", forbidden)
    torch.testing.assert_close(interaction.score_t(h=h, r=r, all_entities=all_t), expected)


@pytest.mark.parametrize(
    ("geometries", "attention", "sign"),
    [
        (("euclidean", "hyperbolic", "spherical"), CurvatureAdaptiveAttention, None),
        (("spherical", "euclidean", "hyperbolic"), CurvatureAdaptiveAttention, None),
        ("euclidean", ManifoldAttention, 0.0),
        (["hyperbolic"], ManifoldAttention, -1.0),
        ("spherical", ManifoldAttention, 1.0),
    ],
)
def test_geometries_select_the_attention(geometries: Any, attention: type, sign: float | None) -> None:
    interaction = CATInteraction(**SMALL, geometries=geometries)
    layers = list(interaction.encoder.layers)
    assert layers and all(isinstance(layer.self_attn, attention) for layer in layers)
    if sign is not None:
        k = layers[0].self_attn.curvature().detach()
        assert (torch.sign(k) == sign).all()


@pytest.mark.parametrize(("attention_dropout", "fused"), [(0.1, False), (0.0, True)])
def test_attention_dropout_decides_the_training_path(
    attention_dropout: float, fused: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While training, attention-weight dropout sends the attention through the general (reference) path, op by op;
    without it the three branches run through ``cat_attention`` (the fused kernels on a GPU). In evaluation both use
    ``cat_attention``. (``benchmarks/kg/epoch_speed.py`` times the two training steps.)"""
    import geoattn.nn.curvature_adaptive_attention as module

    calls: list[bool] = []
    real = module.cat_attention

    def spy(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(True)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "cat_attention", spy)
    interaction = CATInteraction(
        **{**SMALL, "dropout": 0.1}, attention_kwargs={"dropout": attention_dropout}
    ).train()
    h, r = torch.randn(4, D), torch.randn(4, D)
    interaction.encode(h, r)
    assert bool(calls) is fused
    calls.clear()
    interaction.eval()
    interaction.encode(h, r)
    assert calls


def test_repr_is_one_line_without_learned_values() -> None:
    interaction = CATInteraction(**SMALL, geometries="hyperbolic")
    before = repr(interaction)
    assert before == (
        "CATInteraction(embedding_dim=8, attention='hyperbolic', num_layers=1, use_cls=True, "
        "tail_score='distance', score_geometry='signed')"
    )
    with torch.no_grad():
        for parameter in interaction.parameters():
            parameter.add_(0.5)
    assert repr(interaction) == before  # PyKEEN's checkpoint checksum hashes str(model)


def test_compiled_encoder_gives_the_same_scores_gradients_and_state() -> None:
    """compile_encoder runs the same modules through torch.compile (aot_eager here: tracing without code
    generation, fast on CPU); the state dict does not change."""
    torch.manual_seed(0)
    eager = CATInteraction(**SMALL)
    compiled = CATInteraction(**SMALL, compile_encoder="aot_eager")
    compiled.load_state_dict(eager.state_dict())
    assert list(compiled.state_dict()) == list(eager.state_dict())
    h, r = torch.randn(5, 1, D), torch.randn(5, 1, D)
    t = (torch.randn(1, 7, D), torch.randn(1, 7))
    out_eager, out_compiled = eager(h=h, r=r, t=t), compiled(h=h, r=r, t=t)
    torch.testing.assert_close(out_compiled, out_eager)
    for a, b in zip(
        torch.autograd.grad(out_eager.sum(), list(eager.parameters())),
        torch.autograd.grad(out_compiled.sum(), list(compiled.parameters())),
        strict=True,
    ):
        torch.testing.assert_close(b, a)
    with pytest.raises(TypeError, match="compile_encoder must be a bool or a backend name"):
        CATInteraction(**SMALL, compile_encoder=1)  # type: ignore[arg-type]


def test_errors_name_the_argument(tiny_inverse: Dataset) -> None:
    with pytest.raises(ValueError, match="geometries must name one geometry"):
        CATInteraction(**SMALL, geometries=("euclidean", "hyperbolic"))
    with pytest.raises(ValueError, match="geometries must be distinct names"):
        CATInteraction(**SMALL, geometries=("euclidean", "lorentz"))
    with pytest.raises(ValueError, match="geometries must be distinct names"):
        CATInteraction(**SMALL, geometries=("euclidean", "euclidean"))
    with pytest.raises(ValueError, match="tail_score"):
        CATInteraction(**SMALL, tail_score="cosine")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="score_geometry"):
        CATInteraction(**SMALL, score_geometry="lorentz")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_layers"):
        CATInteraction(**{**SMALL, "num_layers": 0})
    with pytest.raises(ValueError, match="set embedding_dim on the model"):
        CAT(triples_factory=tiny_inverse.training, interaction_kwargs=dict(embedding_dim=4))


# no accelerator for pinned memory on CPU
@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true:UserWarning")
def test_pipeline_lcwa_inverse_triples(tiny_inverse: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    """pipeline(model="CAT") with inverse triples, LCWA, cross-entropy and label smoothing trains, and head
    prediction runs through score_t of the inverse relation: every query is scored against all tails."""
    head_shapes: list[tuple[int, ...]] = []
    encode = CATInteraction.encode

    def spy(self: CATInteraction, h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        head_shapes.append(tuple(h.shape))
        return encode(self, h, r)

    monkeypatch.setattr(CATInteraction, "encode", spy)
    result = pipeline(
        dataset=tiny_inverse,
        model="CAT",
        model_kwargs=dict(embedding_dim=D, interaction_kwargs=dict(num_layers=1, num_heads=2)),
        training_loop="lcwa",
        loss="crossentropy",
        training_kwargs=dict(num_epochs=3, batch_size=128, label_smoothing=0.1, use_tqdm=False),
        evaluation_kwargs=dict(use_tqdm=False, batch_size=64),
        random_seed=0,
        device="cpu",
    )
    assert isinstance(result.model, CAT) and result.model.use_inverse_triples
    assert all(torch.isfinite(torch.tensor(loss)) for loss in result.losses)
    assert result.losses[-1] < result.losses[0]
    assert 0.0 <= result.metric_results.get_metric("both.realistic.inverse_harmonic_mean_rank") <= 1.0
    # every encoder call saw one query per row (B, 1, d) or (B, d), never all entities as heads (1, N, d)
    num_entities = tiny_inverse.training.num_entities
    assert head_shapes and all(shape[0] != 1 or num_entities not in shape for shape in head_shapes)
    assert all(len(shape) <= 2 or shape[-2] == 1 for shape in head_shapes)
