"""``benchmarks/kg/results_table.py --smoke``: one experiment on a tiny slice, logged, skipped on restart (retrained
once its config changed), tabled."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from benchmarks_helpers import load_script

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "kg"


@pytest.fixture
def run_table(run_script: Callable[..., str]) -> Callable[..., str]:
    """``run(out, *extra)``: ``benchmarks/kg/results_table.py --smoke`` for one tiny experiment, writing to
    ``out``."""

    def run(out: Path, *extra: str) -> str:
        args = ["--smoke", "--datasets", "fb15k237", "--models", "cat_hyperbolic", "--data-root", str(DATA)]
        return run_script("benchmarks/kg/results_table.py", *args, *extra, "--out-dir", str(out), timeout=300)

    return run


def test_results_table_smoke(tmp_path: Path, run_table: Callable[..., str]) -> None:
    if not (DATA / "FB15k-237").is_dir():
        pytest.skip(f"FB15k-237 not found under {DATA}")
    run_table(tmp_path, "--checkpoint-minutes", "7")
    (run,) = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert run["experiment"] == "fb15k237_cat_hyperbolic" and run["seed"] == 0 and run["num_epochs"] == 1
    assert 0.0 < run["test"]["mrr"] <= 1.0 and run["num_parameters"] > 0
    # the checkpoint interval reached the runner, but neither the logged overrides nor the fingerprint
    run_dir = tmp_path / "runs" / f"fb15k237_cat_hyperbolic_seed0_{run['config_sha']}"
    assert "checkpoint_frequency: 7\n" in (run_dir / "config.yaml").read_text()
    assert "runner.checkpoint_frequency=7" not in run["overrides"]
    assert "skip fb15k237_cat_hyperbolic_seed0" in run_table(tmp_path)  # the restart reuses the logged run
    report = (tmp_path / "kg_results.md").read_text()
    for text in ("### FB15k-237 (filtered, test split)", "| CAT, hyperbolic only ", "- git:", "dropped"):
        assert text in report
    # as if the experiment's yaml had changed since the run was logged: same overrides, another config
    log = tmp_path / "runs.jsonl"
    log.write_text(json.dumps({**run, "config_sha": "0" * 16}) + "\n")
    assert "retrain fb15k237_cat_hyperbolic_seed0: its config changed since it was logged" in run_table(
        tmp_path
    )
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["config_sha"] for r in rows] == ["0" * 16, run["config_sha"]]  # the stale row stays, unused


def test_results_table_selects_the_learning_rate_on_validation(
    tmp_path: Path, run_table: Callable[..., str]
) -> None:
    if not (DATA / "FB15k-237").is_dir():
        pytest.skip(f"FB15k-237 not found under {DATA}")
    # the two tuning runs train at once (--jobs 2), in whichever order they finish
    printed = run_table(tmp_path, "--lrs", "0.1,0.001", "--jobs", "2", "--threads", "1")
    runs = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    # one tuning run per candidate on the first seed; the chosen one is also the seed's table row (not rerun)
    assert sorted(r["overrides"][-1] for r in runs) == ["optimizer.lr=0.001", "optimizer.lr=0.1"]
    val = {r["overrides"][-1].split("=")[1]: r["validation"]["mrr"] for r in runs}
    best = max(val, key=lambda lr: val[lr])
    assert f"skip fb15k237_cat_hyperbolic_lr{float(best):g}_seed0" in printed
    report = (tmp_path / "kg_results.md").read_text()
    assert f"| {float(best):g} (val MRR 0.1: {val['0.1']:.3f} / 0.001: {val['0.001']:.3f}) |" in report


def test_a_diverging_candidate_loses_the_selection(tmp_path: Path, run_table: Callable[..., str]) -> None:
    if not (DATA / "FB15k-237").is_dir():
        pytest.skip(f"FB15k-237 not found under {DATA}")
    # lr 1e30 makes PyKEEN stop with a non-finite loss: logged as diverged, and 0.001 is chosen
    printed = run_table(tmp_path, "--lrs", "1e30,0.001", "--jobs", "2", "--threads", "1")
    runs = {
        r["overrides"][-1]: r for r in map(json.loads, (tmp_path / "runs.jsonl").read_text().splitlines())
    }
    assert runs["optimizer.lr=1e+30"]["diverged"].startswith("NonFiniteLossError")
    assert 0.0 < runs["optimizer.lr=0.001"]["test"]["mrr"] <= 1.0
    assert "fb15k237_cat_hyperbolic_lr1e+30_seed0: diverged" in printed
    report = (tmp_path / "kg_results.md").read_text()
    assert "| 0.001 (val MRR 1e+30: diverged / 0.001: " in report


def test_a_failing_run_does_not_lose_the_runs_beside_it(tmp_path: Path) -> None:
    if not (DATA / "FB15k-237").is_dir():
        pytest.skip(f"FB15k-237 not found under {DATA}")
    # no experiment config exists for the second model: its run fails while the first trains beside it
    args = [
        "--smoke",
        "--datasets",
        "fb15k237",
        "--models",
        "cat_hyperbolic,no_such_model",
        "--data-root",
        str(DATA),
    ]
    args += ["--jobs", "2", "--threads", "1", "--out-dir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "kg" / "results_table.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode != 0
    assert "results_table: 1 run(s) failed: fb15k237_no_such_model_seed0 (" in done.stderr
    assert (
        "kg/fb15k237_no_such_model" in done.stderr.split("results_table:")[0]
    )  # the worker's traceback first
    (run,) = [json.loads(line) for line in (tmp_path / "runs.jsonl").read_text().splitlines()]
    assert run["experiment"] == "fb15k237_cat_hyperbolic" and 0.0 < run["test"]["mrr"] <= 1.0


def test_the_table_gives_each_seeds_peak_validation_epoch() -> None:
    """``peak val epoch``: where each seed's validation curve peaked — not the stopper's ``best_epoch``, which
    counts only gains above its relative delta — except where the stopper stopped training (``*``: its best epoch,
    whose weights PyKEEN restored); ``-`` for a run without a curve (logged before curves were recorded)."""
    module = load_script(ROOT / "benchmarks" / "kg" / "results_table.py", "kg_results_table")
    metrics = {"mrr": 0.4, "hits_at_1": 0.3, "hits_at_3": 0.45, "hits_at_10": 0.5}
    run = {"experiment": "wn18rr_cat", "test": metrics, "validation": metrics, "train_seconds": 1.0,
           "num_parameters": 10, "num_epochs": 50, "dropped_test_triples": 210}  # fmt: skip
    epochs = [10, 20, 30, 40, 50]
    runs = [  # seed 0: the last gain (0.453 -> 0.455) is under 1%, so the stopper's best stays at 40
        {**run, "seed": 0, "early_stopping": {"best_epoch": 40, "stopped": False, "epochs": epochs,
                                              "values": [0.2, 0.3, 0.4, 0.453, 0.455]}},
        {**run, "seed": 1, "early_stopping": {"best_epoch": 20, "stopped": True, "epochs": epochs,
                                              "values": [0.2, 0.3, 0.3, 0.3, 0.3]}},
        {**run, "seed": 2},
    ]  # fmt: skip
    text = module.table(runs, ["wn18rr"], ["cat"])
    header, row = (
        [c.strip() for c in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith(("| model ", "| CAT "))
    )
    assert dict(zip(header, row, strict=True))["peak val epoch"] == "50/20*/-"
