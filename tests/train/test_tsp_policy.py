"""The TSP policy task: every ``experiment=tsp/*`` trains on CPU, resumes exactly, stops at a time limit."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig

from geoattn.tasks import tour_length
from geoattn.train import load_checkpoint, train
from geoattn.train.tasks.tsp_policy import CONCORDE_MEAN_LENGTH, RandomTSPInstances, TSPPolicy, pomo_loss

Compose = Callable[..., DictConfig]

# A tiny policy and a two-stage curriculum (n = 6, then n = 8) so a step takes milliseconds.
TINY_TSP = [
    "model.embed_dim=16",
    "model.heads=2",
    "model.layers=1",
    "model.ff_dim=32",
    "model.val_num_starts=4",
    "data.stages=[{n: 6, batch_size: 3, steps: 2},{n: 8, batch_size: 2, steps: null}]",
    "data.val_sizes=[20]",
    "data.val_count=2",
]
# For imitation: pools of 4 instances per size, labelled exactly (Held-Karp, n <= 12) in this process
# (and the "lkh" validation references by LKH-3 in this process too).
TINY_LABELS = ["data.label_count=4", "data.label_workers=1"]
EXPERIMENTS = sorted(
    p.name.removesuffix(".yaml")
    for p in files("geoattn.configs").joinpath("experiment", "tsp").iterdir()
    if p.name.endswith(".yaml")
)


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_there_are_tsp_experiments() -> None:
    assert "pomo_curriculum" in EXPERIMENTS


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_tsp_experiment_trains_two_steps(name: str, compose_train: Compose, tmp_path: Path) -> None:
    overrides = [f"experiment=tsp/{name}", *TINY_TSP, "trainer.max_steps=2"]
    data = compose_train(*overrides).data
    if data.label_count is not None:
        overrides += TINY_LABELS
    if data.val_reference == "lkh":
        pytest.importorskip("elkai")
    result = train(compose_train(*overrides), run_dir=tmp_path)
    assert result.step == 2 and load_checkpoint(tmp_path).step == 2
    assert {"greedy_len_n20", "aug_len_n20", "greedy_gap_n20", "aug_gap_n20"} <= set(result.val_metrics)
    assert all(math.isfinite(v) for v in result.val_metrics.values())
    # the multi-start x8 tours are never longer than the greedy tour from city 0 (city 0 is a start)
    assert result.val_metrics["aug_len_n20"] <= result.val_metrics["greedy_len_n20"] + 1e-5
    train_rows = [r for r in _rows(tmp_path) if r["split"] == "train"]
    assert len(train_rows) == 2 and all(
        r[next(k for k in r if k.startswith(("train_len_n", "train_nll_n")))] > 0 for r in train_rows
    )


def test_tsp_resume_matches_a_straight_run(
    assert_resume_matches: Callable[..., dict[str, dict[str, torch.Tensor]]],
) -> None:
    # 3 steps straight vs 1 step, then 2 more: crosses the curriculum's stage boundary after the resume.
    states = assert_resume_matches("experiment=tsp/pomo_curriculum", *TINY_TSP, total=3, first=1)
    assert not torch.equal(states["straight"]["policy.embed.weight"], states["first"]["policy.embed.weight"])


def test_time_limit_stops_with_a_checkpoint_and_resumes(compose_train: Compose, tmp_path: Path) -> None:
    common = ["experiment=tsp/pomo_curriculum", *TINY_TSP, "trainer.max_steps=3", "trainer.ckpt_every=100"]
    stopped = train(compose_train(*common, "trainer.time_limit_s=1e-9"), run_dir=tmp_path / "a")
    assert stopped.step == 1 and stopped.last_checkpoint is not None and stopped.val_metrics
    assert json.loads((tmp_path / "a" / "run.json").read_text())["status"] == "time_limit"
    resumed = train(compose_train(*common, f"resume={tmp_path / 'a'}"), run_dir=tmp_path / "b")
    assert resumed.step == 3
    assert json.loads((tmp_path / "b" / "run.json").read_text())["status"] == "completed"


def test_pomo_loss_is_the_shared_baseline_policy_gradient() -> None:
    lengths = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
    log_likelihood = torch.zeros(2, 2, requires_grad=True)
    pomo_loss(lengths, log_likelihood).backward()
    assert log_likelihood.grad is not None
    # advantage / (B P): the shorter tour's likelihood is pushed up, equal tours get no signal
    assert torch.equal(log_likelihood.grad, torch.tensor([[-0.25, 0.25], [0.0, 0.0]]))


def test_imitation_batches_are_optimal_tours_of_their_images() -> None:
    data = RandomTSPInstances([{"n": 7, "batch_size": 16, "steps": None}], label_count=3, label_workers=1)
    points, labels = data.labelled_pool(7)
    optimum = tour_length(points, labels)
    batch = next(data.train_batches(torch.Generator().manual_seed(0)))
    coords, tours = batch["coords"], batch["tours"]
    assert coords.shape == (16, 7, 2) and tours.shape == (16, 7)
    lengths = tour_length(coords, tours)  # checks the permutations
    # every batch row is a pool instance in some symmetric image, with a tour as short as the optimum
    match = (lengths[:, None] - optimum[None]).abs() < 1e-5
    assert match.any(dim=1).all()
    assert len({(int(t[0]), int(t[1])) for t in tours}) > 3  # random starts and directions


def test_imitation_loss_is_the_mean_negative_log_likelihood_per_decision() -> None:
    torch.manual_seed(0)
    task = TSPPolicy(signal="imitation", embed_dim=8, heads=2, layers=1, ff_dim=8)
    coords, tours = torch.rand(2, 6, 2), torch.stack([torch.randperm(6), torch.randperm(6)])
    loss = task.training_loss({"coords": coords, "tours": tours})
    expected = -task.policy.tour_log_likelihood(task.policy.encode(coords), tours[:, None]).mean() / 4
    torch.testing.assert_close(loss, expected)
    assert list(task.training_metrics()) == ["train_nll_n6"]
    with pytest.raises(ValueError, match=r"needs batches with 'tours': set data\.label_count"):
        task.training_loss({"coords": coords})
    with pytest.raises(ValueError, match="signal must be 'pomo' or 'imitation'"):
        TSPPolicy(signal="supervised", embed_dim=8, heads=2)  # type: ignore[arg-type]


def test_training_metrics_reset_after_reading() -> None:
    torch.manual_seed(0)
    task = TSPPolicy(embed_dim=8, heads=2, layers=1, ff_dim=8)
    task.training_loss({"coords": torch.rand(2, 5, 2)})
    first = task.training_metrics()
    assert list(first) == ["train_len_n5"] and first["train_len_n5"] > 0
    assert task.training_metrics() == {}


def test_data_curriculum_and_validation_set() -> None:
    data = RandomTSPInstances(
        [{"n": 5, "batch_size": 2, "steps": 2}, {"n": 7, "batch_size": 3, "steps": None}],
        val_sizes=[20, 50],
        val_count=3,
    )
    batches = data.train_batches(torch.Generator().manual_seed(0))
    shapes = [tuple(next(batches)["coords"].shape) for _ in range(4)]
    assert shapes == [(2, 5, 2), (2, 5, 2), (3, 7, 2), (3, 7, 2)]
    val = data.val_batches()
    assert [b["coords"].shape[1] for b in val] == [20, 50]
    assert torch.equal(val[0]["reference"], torch.full((3,), CONCORDE_MEAN_LENGTH[20]))
    assert data.val_batches() is val  # built once


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"stages": []}, "at least one stage"),
        ({"stages": [{"n": 2, "batch_size": 1, "steps": None}]}, r"stages\[0\]\.n must be an int >= 3"),
        (
            {"stages": [{"n": 5, "batch_size": 1, "steps": None}, {"n": 5, "batch_size": 1, "steps": 1}]},
            "only in the last",
        ),
        ({"stages": [{"n": 5, "batch_size": 1, "size": 3}]}, "unknown keys"),
        (
            {"stages": [{"n": 5, "batch_size": 1}], "val_sizes": [30]},
            r"knows sizes \[20, 50, 100\], not \[30\]",
        ),
        ({"stages": [{"n": 5, "batch_size": 1}], "val_reference": "exact"}, "val_reference"),
    ],
)
def test_data_rejects_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RandomTSPInstances(**kwargs)  # type: ignore[arg-type]
