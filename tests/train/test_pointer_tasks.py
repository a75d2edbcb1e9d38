"""The pointer-network tasks: every ``experiment=pointer/*`` trains on CPU, resumes exactly, and learns."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import DictConfig

from geoattn.nn.pointer_network import sequence_log_likelihood
from geoattn.tasks import convex_hull_label, delaunay_label, tour_length, tsp_label
from geoattn.train import load_checkpoint, train
from geoattn.train.tasks.pointer import PointerInstances, PointerTask, pointer_targets, problem_mask

Compose = Callable[..., DictConfig]
ResumeCheck = Callable[..., dict[str, dict[str, torch.Tensor]]]

# Tiny networks and pools labelled in this process; TSP stays at n <= 12 (Held-Karp, no elkai needed).
TINY_PTR = [
    "model.hidden_dim=8",
    "data.batch_size=4",
    "data.train_count=4",
    "data.val_count=3",
    "data.label_workers=1",
]
TINY_SIZES = {
    "convex_hull_50": ["data.n_min=6", "data.n_max=6", "data.val_sizes=[6]"],
    "convex_hull_5_50": ["data.n_min=5", "data.n_max=7", "data.val_sizes=[6,8]"],
    "delaunay_5": [],
    "tsp_20": ["data.n_min=5", "data.n_max=7", "data.val_sizes=[7]"],
}
EXPECTED_METRICS = {
    "convex_hull_50": {"accuracy_n6", "area_fail_rate_n6"},
    "convex_hull_5_50": {"accuracy_n6", "area_fail_rate_n6", "accuracy_n8", "area_fail_rate_n8"},
    "delaunay_5": {"accuracy_n5", "triangle_coverage_n5"},
    "tsp_20": {"tour_length_n7", "label_length_n7", "gap_n7"},
}
EXPERIMENTS = sorted(
    p.name.removesuffix(".yaml")
    for p in files("geoattn.configs").joinpath("experiment", "pointer").iterdir()
    if p.name.endswith(".yaml")
)


def _overrides(name: str, *extra: str) -> list[str]:
    return [f"experiment=pointer/{name}", *TINY_PTR, *TINY_SIZES[name], *extra]


def _rows(run_dir: Path, split: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if r["split"] == split]


def test_the_three_experiments_exist() -> None:
    assert sorted(TINY_SIZES) == EXPERIMENTS


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_pointer_experiment_trains_two_steps(name: str, compose_train: Compose, tmp_path: Path) -> None:
    cfg = compose_train(*_overrides(name, "trainer.max_steps=2"))
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer.lr == 1e-3
    assert cfg.trainer.grad_clip == 2.0 and cfg.data.batch_size == 4
    result = train(cfg, run_dir=tmp_path)
    assert result.step == 2 and load_checkpoint(tmp_path).step == 2
    metrics = result.val_metrics
    assert EXPECTED_METRICS[name] <= set(metrics) and all(math.isfinite(v) for v in metrics.values())
    for key, value in metrics.items():
        if key.startswith(("accuracy", "area_fail_rate", "triangle_coverage", "area_coverage")):
            # a simple polygon on the points lies inside their hull: coverage <= 1
            assert 0.0 <= value <= 1.0 + 1e-9, (key, value)
    if name == "tsp_20":  # Held-Karp labels are optimal: no decoded tour is shorter
        assert metrics["gap_n7"] >= -1e-9 and metrics["tour_length_n7"] >= metrics["label_length_n7"] - 1e-9
    train_rows = _rows(tmp_path, "train")
    assert len(train_rows) == 2 and all(r["train_nll"] > 0 for r in train_rows)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_resume_matches_a_straight_run(name: str, assert_resume_matches: ResumeCheck) -> None:
    # 4 steps straight vs 2, then 2 more from the checkpoint: the resumed run redraws the same sizes.
    states = assert_resume_matches(*_overrides(name), total=4, first=2)
    key = "network.embedding.weight"
    assert not torch.equal(states["straight"][key], states["first"][key])


def test_fast_forward_lands_where_the_batches_would_have() -> None:
    data = PointerInstances("convex_hull", 5, 7, batch_size=3, train_count=4, label_workers=1)
    stream = data.train_batches(torch.Generator().manual_seed(0))
    batches = [next(stream) for _ in range(6)]
    generator = torch.Generator().manual_seed(0)
    data.fast_forward(generator, 4)
    skipped = data.train_batches(generator)
    for expected in batches[4:]:
        got = next(skipped)
        assert torch.equal(got["points"], expected["points"])
        assert torch.equal(got["targets"], expected["targets"])


def test_hull_loss_decreases_when_overfitting(compose_train: Compose, tmp_path: Path) -> None:
    # 4 instances of n = 6 in batches of 32 (unmasked, the loss starts at 7 ln 7 = 13.6 nats per sequence).
    cfg = compose_train(
        "experiment=pointer/convex_hull_50",
        "model.masked_training=false",
        "trainer.lr_schedule=constant",
        "optimizer.lr=0.03",
        "model.hidden_dim=64",
        "data.n_min=6",
        "data.n_max=6",
        "data.train_count=4",
        "data.batch_size=32",
        "data.val_sizes=[6]",
        "data.val_count=2",
        "data.label_workers=1",
        "trainer.max_steps=30",
        "trainer.val_every=100",
        "trainer.ckpt_every=100",
    )
    train(cfg, run_dir=tmp_path)
    nll = [r["train_nll"] for r in _rows(tmp_path, "train")]
    assert len(nll) == 30 and np.mean(nll[:5]) > 12.0
    assert np.mean(nll[-5:]) < 0.8 * np.mean(nll[:5]), nll


def test_pointer_targets_follow_the_network_conventions() -> None:
    hulls = torch.tensor([[0, 3, 1, -1], [2, 0, 1, 4]])
    assert pointer_targets("convex_hull", hulls).tolist() == [
        [1, 4, 2, 1, 0, -1],
        [3, 1, 2, 5, 3, 0],
    ]
    triangles = torch.tensor([[[0, 1, 2], [0, 2, 3]], [[1, 2, 4], [-1, -1, -1]]])
    assert pointer_targets("delaunay", triangles).tolist() == [
        [1, 2, 3, 1, 3, 4, 0],
        [2, 3, 5, 0, -1, -1, -1],
    ]
    tours = torch.tensor([[0, 2, 1, 3]])
    assert torch.equal(pointer_targets("tsp", tours), tours)
    with pytest.raises(ValueError, match="starting at city 0"):
        pointer_targets("tsp", torch.tensor([[1, 0, 2]]))
    with pytest.raises(ValueError, match=r"\[B, m, 3\] triangles"):
        pointer_targets("delaunay", hulls)
    with pytest.raises(ValueError, match="problem must be one of"):
        pointer_targets("sorting", hulls)


@pytest.mark.parametrize("problem", ["convex_hull", "delaunay", "tsp"])
def test_labels_are_sequences_the_decoding_mask_allows(problem: str) -> None:
    data = PointerInstances(problem, 6, 8, 5, train_count=6, val_sizes=[7], val_count=4, label_workers=1)  # type: ignore[arg-type]
    batch = next(data.train_batches(torch.Generator().manual_seed(0)))
    assert batch["points"].shape[0] == 5 and 6 <= batch["points"].shape[1] <= 8
    assert bool((batch["targets"] >= 0).all(dim=1).any())  # no padding column nobody uses
    torch.manual_seed(0)
    task = PointerTask(problem, hidden_dim=8)  # type: ignore[arg-type]
    eos, mask = problem_mask(problem)
    assert task.network.eos == eos
    log_probs = task.network(batch["points"], batch["targets"], mask=mask)
    assert torch.isfinite(sequence_log_likelihood(log_probs, batch["targets"])).all()


@pytest.mark.parametrize("problem", ["convex_hull", "delaunay", "tsp"])
def test_validation_metrics_score_exact_predictions_as_perfect(
    problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = PointerInstances(problem, 7, 7, 2, train_count=2, val_count=5, label_workers=1)  # type: ignore[arg-type]
    (batch,) = data.val_batches()
    assert data.val_batches()[0] is batch  # built once
    label = {"convex_hull": convex_hull_label, "delaunay": delaunay_label, "tsp": tsp_label}[problem]
    exact = [label(x) for x in batch["points"].numpy()]
    if problem == "convex_hull":  # closed as decoding closes it
        exact = [np.append(h, h[0]) for h in exact]
    task = PointerTask(problem, hidden_dim=8)  # type: ignore[arg-type]
    monkeypatch.setattr(task, "predict", lambda points: exact)
    metrics = task.validation_metrics(batch)
    if problem == "convex_hull":
        assert metrics == {
            "accuracy_n7": 1.0,
            "area_fail_rate_n7": 0.0,
            "area_coverage_n7": pytest.approx(1.0),
        }
    elif problem == "delaunay":
        assert metrics == {"accuracy_n7": 1.0, "triangle_coverage_n7": 1.0}
    else:
        length = float(tour_length(batch["points"].double(), torch.as_tensor(np.stack(exact))).mean())
        assert metrics["tour_length_n7"] == pytest.approx(length)
        assert metrics["label_length_n7"] == pytest.approx(length) and metrics["gap_n7"] == pytest.approx(0.0)


def test_decoded_predictions_are_input_indices() -> None:
    torch.manual_seed(0)
    points = torch.rand(3, 6, 2)
    for problem, beam in (("convex_hull", 1), ("delaunay", 2), ("tsp", 3)):
        task = PointerTask(problem, beam_width=beam, hidden_dim=8)  # type: ignore[arg-type]
        with torch.no_grad():
            predictions = task.predict(points)
        assert len(predictions) == 3
        for p in predictions:
            assert p.dtype == np.int64 and ((p >= 0) & (p < 6)).all()
            if problem == "delaunay":
                assert p.ndim == 2 and p.shape[1] == 3
            elif problem == "tsp":
                assert sorted(p.tolist()) == list(range(6)) and p[0] == 0
            elif p.size:
                assert p[0] == p[-1] and len(set(p.tolist())) == p.size - 1 >= 3


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="problem must be one of"):
        PointerTask("sorting")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eos is set by the problem"):
        PointerTask("tsp", eos=True)
    with pytest.raises(ValueError, match="beam_width must be an int >= 1"):
        PointerTask("tsp", beam_width=0)
    with pytest.raises(ValueError, match="n_max must be an int >= 6"):
        PointerInstances("tsp", 6, 5, 4)
    with pytest.raises(ValueError, match="val_sizes must list at least one size"):
        PointerInstances("tsp", 5, 6, 4, val_sizes=[])
    with pytest.raises(ValueError, match=r"n must be in \[5, 6\], got 9"):
        PointerInstances("tsp", 5, 6, 4).pool(9)
