"""TSPAttentionModel: rollouts are permutations from their start cities, step distributions respect the mask."""

from __future__ import annotations

import math

import pytest
import torch

from geoattn.nn import TSPAttentionModel


def _model(seed: int = 0, **kwargs: object) -> TSPAttentionModel:
    torch.manual_seed(seed)
    config: dict[str, object] = {"embed_dim": 16, "heads": 2, "layers": 2, "ff_dim": 32, **kwargs}
    return TSPAttentionModel(**config)  # type: ignore[arg-type]


@pytest.mark.parametrize("norm", ["instance", "layer"])
@pytest.mark.parametrize("mode", ["greedy", "sample"])
def test_rollout_tours_are_permutations_from_their_starts(norm: str, mode: str) -> None:
    model = _model(norm=norm)
    coords = torch.rand(3, 7, 2)
    starts = torch.tensor([[0, 3], [6, 6], [2, 1]])
    tours, log_likelihood = model.rollout(model.encode(coords), starts, mode=mode)  # type: ignore[arg-type]
    assert tours.shape == (3, 2, 7) and log_likelihood.shape == (3, 2)
    assert torch.equal(tours.sort(dim=-1).values, torch.arange(7).expand(3, 2, 7))
    assert torch.equal(tours[..., 0], starts)
    assert (log_likelihood <= 0).all() and torch.isfinite(log_likelihood).all()


def test_step_distribution_is_zero_on_visited_cities_and_sums_to_one() -> None:
    model = _model()
    enc = model.encode(torch.rand(2, 6, 2))
    visited = torch.zeros(2, 1, 6, dtype=torch.bool)
    visited[0, 0, [0, 4]] = True
    visited[1, 0, [1, 2, 3]] = True
    fixed = enc.graph_query + model.project_first(enc.nodes[:, :1])
    log_p = model.step_log_probs(enc, fixed, torch.tensor([[4], [3]]), visited)
    assert log_p.dtype == torch.float32
    assert torch.all(log_p[visited] == -math.inf)
    torch.testing.assert_close(log_p.exp().sum(-1), torch.ones(2, 1))
    # logits are clipped to (-C, C): no unvisited probability falls below e^{-2C} / n
    assert log_p[~visited].min() > -2 * model.clip - math.log(6)


def test_greedy_log_likelihood_is_differentiable_and_matches_the_steps() -> None:
    model = _model(layers=1)
    coords = torch.rand(1, 5, 2)
    enc = model.encode(coords)
    starts = torch.tensor([[2]])
    tours, log_likelihood = model.rollout(enc, starts)
    log_likelihood.sum().backward()
    assert model.embed.weight.grad is not None and model.embed.weight.grad.abs().sum() > 0
    # recompute the decisions one by one (steps 1..n-2; the last city is forced)
    with torch.no_grad():
        fixed = enc.graph_query + model.project_first(enc.nodes[:, tours[0, :, 0]])
        total = torch.zeros(())
        for t in range(1, 4):
            visited = torch.zeros(1, 1, 5, dtype=torch.bool)
            visited[0, 0, tours[0, 0, :t]] = True
            log_p = model.step_log_probs(enc, fixed, tours[:, :, t - 1], visited)
            assert log_p[0, 0].argmax() == tours[0, 0, t]
            total = total + log_p[0, 0, tours[0, 0, t]]
    torch.testing.assert_close(log_likelihood[0, 0].detach(), total)


def test_config_rebuilds_the_model_and_repr_shows_it() -> None:
    model = _model(clip=5.0)
    clone = TSPAttentionModel(**model.config())  # type: ignore[arg-type]
    clone.load_state_dict(model.state_dict())
    assert clone.config() == model.config()
    assert "embed_dim=16, heads=2, layers=2, ff_dim=32, clip=5.0, norm='instance'" in repr(model)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"embed_dim": 0}, "embed_dim must be an int >= 1"),
        ({"heads": 3}, "heads=3 must divide embed_dim=16"),
        ({"layers": -1}, "layers must be an int >= 0"),
        ({"clip": 0.0}, "clip must be a finite number > 0"),
        ({"norm": "batch"}, "norm must be 'instance' or 'layer'"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _model(**kwargs)  # type: ignore[arg-type]


def test_rollout_rejects_an_unknown_mode() -> None:
    model = _model()
    with pytest.raises(ValueError, match="mode must be 'greedy' or 'sample'"):
        model.rollout(model.encode(torch.rand(1, 4, 2)), torch.zeros(1, 1, dtype=torch.long), mode="beam")  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_teacher_forced_log_likelihood_equals_the_rollouts(dtype: torch.dtype) -> None:
    model = _model().to(dtype)
    enc = model.encode(torch.rand(3, 9, 2, dtype=dtype))
    tours, log_likelihood = model.rollout(enc, torch.tensor([[0, 4], [8, 2], [1, 1]]), mode="sample")
    torch.testing.assert_close(model.tour_log_likelihood(enc, tours), log_likelihood)
