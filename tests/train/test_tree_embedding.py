"""The tree-embedding task: data, metrics, loss, and that hyperbolic space beats the plane on a tree."""

from __future__ import annotations

import networkx as nx
import pytest
import torch

from geoattn.manifolds import FixedCurvature, HyperbolicCurvature, pairwise_dist
from geoattn.train.tasks import TreeDistances, TreeEmbedding, distortion, mean_average_precision


def test_tree_distances_match_networkx() -> None:
    data = TreeDistances(num_nodes=13, branching=3, batch_size=32)
    graph = nx.full_rary_tree(3, 13)
    assert data.distances.shape == (13, 13)
    assert torch.equal(data.distances, data.distances.T)
    assert data.distances[0, 12].item() == nx.shortest_path_length(graph, 0, 12) == 2
    assert data.distances[4, 12].item() == nx.shortest_path_length(graph, 4, 12) == 4
    assert data.adjacency.sum().item() == 2 * graph.number_of_edges()


def test_an_epoch_covers_every_pair_once_in_seeded_order() -> None:
    data = TreeDistances(num_nodes=13, branching=3, batch_size=32)
    batches = list(data.train_batches(torch.Generator().manual_seed(0)))
    assert [len(b["i"]) for b in batches] == [32, 32, 14]
    pairs = {(int(i), int(j)) for b in batches for i, j in zip(b["i"], b["j"], strict=True)}
    assert len(pairs) == 78 and all(i < j for i, j in pairs)
    assert all(torch.equal(b["dist"], data.distances[b["i"], b["j"]]) for b in batches)
    again = list(data.train_batches(torch.Generator().manual_seed(0)))
    assert all(torch.equal(a["i"], b["i"]) for a, b in zip(batches, again, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"num_nodes": 1}, "num_nodes"), ({"branching": 0}, "branching"), ({"batch_size": 0}, "batch_size")],
)
def test_tree_distances_validates_arguments(kwargs: dict[str, int], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TreeDistances(**kwargs)


def test_metrics_on_exact_and_scrambled_distances() -> None:
    data = TreeDistances(num_nodes=40, branching=3)
    assert distortion(data.distances, data.distances).item() == 0.0
    assert mean_average_precision(data.distances, data.adjacency).item() == pytest.approx(1.0)
    assert distortion(2 * data.distances, data.distances).item() == pytest.approx(1.0)
    # reversed order: neighbours ranked last, so precision is low
    assert mean_average_precision(-data.distances, data.adjacency).item() < 0.2


def test_mean_average_precision_by_hand() -> None:
    # node 0 has neighbours {1, 2}; ranked by distance 1, 3, 2 -> precisions 1/1 and 2/3 -> AP = 5/6.
    d = torch.tensor([[0.0, 1.0, 3.0, 2.0], [1.0, 0.0, 1.0, 1.0], [3.0, 1.0, 0.0, 1.0], [2.0, 1.0, 1.0, 0.0]])
    adjacency = torch.zeros(4, 4, dtype=torch.bool)
    adjacency[0, 1] = adjacency[0, 2] = True
    assert mean_average_precision(d, adjacency).item() == pytest.approx(5 / 6)


def test_loss_is_zero_for_a_perfect_embedding_and_gradients_reach_the_curvature() -> None:
    torch.manual_seed(0)
    model = TreeEmbedding(num_nodes=3, dim=2, curvature=HyperbolicCurvature(-1.0))
    x = model.points()
    d = pairwise_dist(x, x, k=model.curvature()).detach()
    batch = {"i": torch.tensor([0, 0, 1]), "j": torch.tensor([1, 2, 2])}
    assert model.training_loss({**batch, "dist": d[batch["i"], batch["j"]]}).item() < 1e-4
    loss = model.training_loss({**batch, "dist": torch.ones(3)})
    loss.backward()
    assert model.tangent.grad is not None and model.curvature.theta.grad is not None
    assert model.curvature.theta.grad.abs().item() > 0


def _fit(curvature: torch.nn.Module, steps: int = 300) -> dict[str, float]:
    torch.manual_seed(0)
    data = TreeDistances(num_nodes=40, branching=3, batch_size=None)
    model = TreeEmbedding(num_nodes=40, dim=2, curvature=curvature)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        for batch in data.train_batches(generator):
            optimizer.zero_grad()
            model.training_loss(batch).backward()
            optimizer.step()
    with torch.no_grad():
        return {k: float(v) for k, v in model.validation_metrics(data.val_batches()[0]).items()}


def test_hyperbolic_embeds_a_tree_better_than_the_plane() -> None:
    hyperbolic = _fit(HyperbolicCurvature(-1.0))
    euclidean = _fit(FixedCurvature(0.0))
    assert hyperbolic["distortion"] < 0.8 * euclidean["distortion"]
    assert hyperbolic["map"] > euclidean["map"]
    assert hyperbolic["k"] < 0 and euclidean["k"] == 0
