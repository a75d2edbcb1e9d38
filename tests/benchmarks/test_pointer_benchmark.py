"""``benchmarks/pointer/evaluate.py --smoke``: the shipped ``delaunay_5`` and checkpoints of the other two problems,
scored on fresh test sets and reported next to the paper's numbers; test seeds the model saw are refused."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from benchmarks_helpers import load_script

from geoattn.train import Checkpoint, save_checkpoint
from geoattn.train.rng import get_rng_state
from geoattn.train.tasks.pointer import PointerTask

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "benchmarks/pointer/evaluate.py"


def _checkpoint(folder: Path, problem: str) -> Path:
    """An untrained tiny ``problem`` network's checkpoint, trained on n = 5-6 and validated on 6."""
    torch.manual_seed(0)
    task = PointerTask(problem, hidden_dim=8)  # type: ignore[arg-type]
    data = {"n_min": 5, "n_max": 6, "train_seed": 0, "val_seed": 1_000_000, "val_sizes": [6]}
    config = {
        "model": {"_target_": "geoattn.train.tasks.pointer.PointerTask", "problem": problem, "hidden_dim": 8}
    }
    checkpoint = Checkpoint(
        step=3,
        model=task.state_dict(),
        optimizer={},
        rng=get_rng_state(),
        data={},
        config={**config, "data": data},
    )
    return save_checkpoint(checkpoint, folder / problem / "checkpoints" / "step_00000003.pt")


def test_smoke_reports_every_problem_next_to_the_paper(
    tmp_path: Path, run_script: Callable[..., str]
) -> None:
    hull, tsp = _checkpoint(tmp_path, "convex_hull"), _checkpoint(tmp_path, "tsp")
    out = tmp_path / "pointer.md"
    args = ["--smoke", "--models", "delaunay_5", "--checkpoints", str(hull), str(tsp), "--out", str(out)]
    run_script(SCRIPT, *args, "--cache-dir", str(tmp_path / "labels"), timeout=300)
    report = out.read_text()
    cells = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in report.splitlines()
        if line.startswith("|")
    ]
    results = {(c[0], c[3], c[4]): c for c in cells if len(c) == 14}
    for decoding in ("greedy", "beam 2"):
        delaunay = results[("delaunay_5", "5", decoding)]
        assert delaunay[5] == "16" and delaunay[6].endswith("%") and delaunay[7].endswith("%"), delaunay
        assert results[(str(hull), "6", decoding)][8].endswith("%")  # the hull's fail rate
        tour = results[(str(tsp), "6", decoding)]
        assert float(tour[9]) >= float(tour[10]) - 1e-9 and float(tour[11]) >= -1e-6  # Held-Karp is optimal
    paper = results[("paper", "5", "beam search")]
    assert paper[6:8] == ["80.7%", "93.0%"]
    for text in ("47,205", "Adam lr 0.001", "seed: 2000000", "- git:", "- command:", "Vinyals"):
        assert text in report, text
    assert sorted(p.name for p in (tmp_path / "labels").iterdir())  # the test sets were cached


def test_seeds_of_training_or_validation_are_refused() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / SCRIPT), "--smoke", "--models", "delaunay_5", "--seed-base", "1000000"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert (
        "test seeds [1000005] (--seed-base 1000000 + n) were used for its training or validation"
        in done.stderr
    )


def test_the_recipe_names_the_schedule_and_masked_training() -> None:
    evaluate = load_script(ROOT / SCRIPT, "pointer_evaluate")
    trainer = {"lr_schedule": "cosine", "lr_final_ratio": 0.02}
    provenance = {"optimizer": {"_target_": "torch.optim.Adam", "lr": 0.001}, "trainer": trainer}
    for masked, recipe in (
        (True, "Adam lr 0.001, cosine to 0.02x, masked training"),
        (False, "Adam lr 0.001, cosine to 0.02x"),
    ):
        task = PointerTask("tsp", hidden_dim=8, masked_training=masked)
        row = evaluate.provenance_row(evaluate.Model("m", task, {"provenance": provenance}))
        assert row[5] == recipe
    row = evaluate.provenance_row(evaluate.Model("m", task, {"provenance": {**provenance, "trainer": {}}}))
    assert row[5] == "Adam lr 0.001"  # checkpoints from before the schedule option: a constant rate
