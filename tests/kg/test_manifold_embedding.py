"""Entity embeddings on the Poincaré ball (entity_storage="manifold") trained with geoopt's RiemannianAdam."""

from __future__ import annotations

import geoopt
import pytest
import torch
from pykeen.datasets.base import Dataset
from pykeen.optimizers import optimizer_resolver
from pykeen.pipeline import pipeline

from geoattn.kg import AttH, ManifoldEmbedding, MuRP, RotH
from geoattn.manifolds import expmap0


def test_riemannian_optimizers_are_registered() -> None:
    assert optimizer_resolver.lookup("RiemannianAdam") is geoopt.optim.RiemannianAdam
    assert optimizer_resolver.lookup("riemanniansgd") is geoopt.optim.RiemannianSGD


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_is_the_log_map(dtype: torch.dtype) -> None:
    emb = ManifoldEmbedding(max_id=5, shape=4, curvature=-2.0, init_std=0.5).to(dtype)
    assert isinstance(emb.weight, geoopt.ManifoldParameter)
    assert emb.weight.manifold.check_point_on_manifold(emb.weight)
    tangent = emb(None)
    assert tangent.shape == (5, 4) and tangent.dtype == dtype
    torch.testing.assert_close(expmap0(tangent, k=-2.0), emb.weight.detach())
    torch.testing.assert_close(emb(torch.tensor([[3, 0]])), tangent[[3, 0]].unsqueeze(0))


@pytest.mark.parametrize("cls", [MuRP, RotH, AttH])
def test_scores_equal_the_tangent_parametrisation(tiny: Dataset, cls: type) -> None:
    """The same tangent vectors give the same scores whether stored as vectors or as points on the ball."""
    torch.manual_seed(0)
    tangent = cls(triples_factory=tiny.training, embedding_dim=8)
    manifold = cls(triples_factory=tiny.training, embedding_dim=8, entity_storage="manifold")
    assert manifold.entity_storage == "manifold"
    manifold.load_state_dict(tangent.state_dict(), strict=False)  # relations and biases
    vectors = 0.3 * torch.randn(tangent.num_entities, 8)
    with torch.no_grad():
        tangent.entity_representations[0]._embeddings.weight.copy_(vectors)
        manifold.entity_representations[0].weight.copy_(expmap0(vectors, k=-1.0))
    hr = tiny.training.mapped_triples[:6, :2]
    torch.testing.assert_close(manifold.score_t(hr), tangent.score_t(hr), rtol=1e-4, atol=1e-4)


def test_riemannian_steps_stay_in_the_ball() -> None:
    """Points near the boundary: RiemannianAdam's step stays on the ball, the same Euclidean Adam step leaves it."""
    torch.manual_seed(1)
    start = expmap0(torch.nn.functional.normalize(torch.randn(16, 4), dim=-1) * 4.0, k=-1.0)  # |x| ~ 0.9993
    ends = []
    for optimizer_cls in (geoopt.optim.RiemannianAdam, torch.optim.Adam):
        emb = ManifoldEmbedding(max_id=16, shape=4)
        with torch.no_grad():
            emb.weight.copy_(start)
        optimizer = optimizer_cls(emb.parameters(), lr=0.5)
        for _ in range(3):
            optimizer.zero_grad()
            emb(None).sum().backward()  # push every point outwards along (1, ..., 1)
            optimizer.step()
        ends.append(emb.weight.detach())
    riemannian, euclidean = ends
    assert geoopt.Stereographic(k=-1.0).check_point_on_manifold(riemannian)
    assert (riemannian.norm(dim=-1) < 1.0).all()
    assert not (euclidean.norm(dim=-1) < 1.0).all()


@pytest.mark.parametrize("dim", [2, 32])
def test_riemannian_adam_steps_are_2_sqrt_d_shorter_than_adams(dim: int) -> None:
    """The module docstring's advice to tune RiemannianAdam's rate apart: one second moment per point against
    Adam's per coordinate, so for a steady gradient ten steps near the origin move a point ``rate`` per step in
    hyperbolic distance on the ball, and ``2 rate sqrt(d)`` as Adam steps of its tangent vector."""
    torch.manual_seed(0)
    ball = geoopt.Stereographic(k=-1.0)
    tangent0, grad = 1e-4 * torch.randn(1, dim), torch.randn(1, dim)
    origin = expmap0(tangent0, k=-1.0)
    tangent = torch.nn.Parameter(tangent0.clone())
    point = geoopt.ManifoldParameter(origin.clone(), manifold=ball)
    for param, optimizer_cls in ((tangent, torch.optim.Adam), (point, geoopt.optim.RiemannianAdam)):
        optimizer = optimizer_cls([param], lr=1e-3)
        for _ in range(10):
            param.grad = grad.clone()
            optimizer.step()
    adam_moved = ball.dist(origin, expmap0(tangent.detach(), k=-1.0)).item()
    riemannian_moved = ball.dist(origin, point.detach()).item()
    assert riemannian_moved == pytest.approx(10 * 1e-3, rel=1e-3)
    assert adam_moved / riemannian_moved == pytest.approx(2 * dim**0.5, rel=1e-2)


# pykeen's sLCWA loop warns about its own deprecated argument; no accelerator for pinned memory on CPU
@pytest.mark.filterwarnings("ignore:Training instances are always shuffled:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true:UserWarning")
@pytest.mark.parametrize("name", ["MuRP", "RotH", "AttH"])
def test_pipeline_trains_on_the_manifold(tiny: Dataset, name: str) -> None:
    """pipeline(model_kwargs=dict(entity_storage="manifold"), optimizer="RiemannianAdam"): the points move and
    stay on the ball."""
    result = pipeline(
        dataset=tiny,
        model=name,
        model_kwargs=dict(embedding_dim=8, entity_storage="manifold"),
        optimizer="RiemannianAdam",
        optimizer_kwargs=dict(lr=0.1),
        clear_optimizer=False,
        training_kwargs=dict(num_epochs=3, batch_size=128, use_tqdm=False),
        evaluation_kwargs=dict(use_tqdm=False),
        random_seed=0,
        device="cpu",
    )
    assert isinstance(result.training_loop.optimizer, geoopt.optim.RiemannianAdam)
    representation = result.model.entity_representations[0]
    assert isinstance(representation, ManifoldEmbedding)
    points = representation.weight.detach()
    assert representation.weight.manifold.check_point_on_manifold(points)
    assert (points.norm(dim=-1) < 1.0).all()
    # trained: far from the N(0, 1e-3^2) initialisation (|x| ~ 1e-3 * sqrt(d) / 2)
    assert points.norm(dim=-1).max() > 0.05
    assert all(torch.isfinite(torch.tensor(loss)) for loss in result.losses)


def test_bad_storage_is_rejected(tiny: Dataset) -> None:
    with pytest.raises(ValueError, match="RotH: entity_storage must be one of"):
        RotH(triples_factory=tiny.training, entity_storage="lorentz")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="curvature must be a finite negative"):
        ManifoldEmbedding(max_id=3, shape=2, curvature=1.0)
