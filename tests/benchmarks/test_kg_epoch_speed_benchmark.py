"""``benchmarks/kg/epoch_speed.py --smoke``: runs every loop, records each run as it finishes, the two loops reach the
same test MRR after the same epochs (same seed, same batches), a rerun resumes, another configuration is refused."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from benchmarks_helpers import load_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "kg" / "epoch_speed.py"
DATA = ROOT.parent / "shared" / "data" / "kg"


def _load() -> ModuleType:
    # in-process (the subprocess start-up would dominate this test): load the script as a module
    return load_script(SCRIPT, "kg_epoch_speed")


def test_epoch_speed_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not (DATA / "WN18RR" / "train.txt").is_file():
        pytest.skip(f"WN18RR not found under {DATA}")
    bench = _load()
    args = ["--smoke", "--models", "MuRE", "--data-root", str(DATA), "--out-dir", str(tmp_path)]
    assert bench.main(args) == 0
    runs = [json.loads(line) for line in (tmp_path / "kg_epoch_speed_runs.jsonl").read_text().splitlines()]
    loops = {(r["loop"], r["epochs"]): r for r in runs}
    assert set(loops) == {("pykeen", 1), ("ours", 1), ("ours", 3), ("batch-breakdown", 0)}
    batch = loops["batch-breakdown", 0]
    assert batch["rows"] == 64 and batch["step_ms"] > 0 and batch["generic_ms"] > 0 and batch["loss_ms"] > 0
    trained = [r for r in runs if r["epochs"]]
    assert all(len(r["epoch_seconds"]) == r["epochs"] and r["seconds_per_epoch"] > 0 for r in trained)
    assert abs(loops["ours", 1]["mrr"] - loops["pykeen", 1]["mrr"]) < 1e-3
    report = (tmp_path / "kg_epoch_speed.md").read_text()
    assert "## kg_epoch_speed" in report and "| wn18rr  | MuRE" in report
    assert "MRR PyKEEN @1" in report and "loss share" in report

    capsys.readouterr()
    assert bench.main(args) == 0  # resumes: nothing left to run
    assert "s in all" not in capsys.readouterr().out
    assert len((tmp_path / "kg_epoch_speed_runs.jsonl").read_text().splitlines()) == len(runs)

    with pytest.raises(SystemExit, match="another configuration"):
        bench.main([*args, "--lr", "0.5"])


def test_epoch_speed_breakdown_times_cat_with_its_compiled_encoder(tmp_path: Path) -> None:
    if not (DATA / "WN18RR" / "train.txt").is_file():
        pytest.skip(f"WN18RR not found under {DATA}")
    args = [
        "--smoke",
        "--breakdown-only",
        "--models",
        "CAT",
        "--data-root",
        str(DATA),
        "--out-dir",
        str(tmp_path),
    ]
    assert _load().main(args) == 0
    (batch,) = [
        json.loads(line) for line in (tmp_path / "kg_epoch_speed_runs.jsonl").read_text().splitlines()
    ]
    assert batch["loop"] == "batch-breakdown" and batch["step_ms"] > 0
    assert set(batch["compiled_ms_by_backend"]) == {"eager"}  # --smoke captures graphs, generates no code
    assert batch["compiled_ms_by_backend"]["eager"] > 0
    assert batch["fused_ms"] is None  # CAT has no Euclidean distance decomposition
    assert batch["no_attention_dropout_ms"] > 0  # the same model with its attention through the fused path
    report = (tmp_path / "kg_epoch_speed.md").read_text()
    assert "compiled encoder ms" in report and "no attention dropout ms" in report


def test_a_compile_backend_that_fails_is_a_reported_cell_not_a_crash() -> None:
    bench = _load()

    def make(**kwargs: object) -> object:
        raise RuntimeError("AssertionError in the backend\nsecond line")

    failed = bench._variant_step_ms(make, None, None, None, compile_encoder="inductor")
    assert failed == "failed: RuntimeError: AssertionError in the backend"
    cell = bench._compiled_cell({"inductor": failed, "cudagraphs": 5.0}, step=10.0)
    assert cell == "inductor failed: RuntimeError: AssertionError in the backend; cudagraphs 5.00 (2.00x)"
