"""``benchmarks/tsp/*.py --smoke``: run on the CPU, write their rows and reports, and resume from the cache."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TSPLIB = ROOT.parent / "shared" / "data" / "tsplib"


@pytest.fixture
def run_benchmark(run_script: Callable[..., str]) -> Callable[..., str]:
    """``run(script, out, *extra)``: ``benchmarks/tsp/<script> --smoke`` writing to ``out`` (cache inside)."""

    def run(script: str, out: Path, *extra: str) -> str:
        args = ["--smoke", "--workers", "1", *extra, "--out-dir", str(out), "--cache", str(out / "cache")]
        return run_script(f"benchmarks/tsp/{script}", *args, timeout=300)

    return run


def test_random_uniform_smoke_resumes(tmp_path: Path, run_benchmark: Callable[..., str]) -> None:
    pytest.importorskip("elkai")
    out = run_benchmark("random_uniform.py", tmp_path)
    rows = [
        json.loads(line) for line in (tmp_path / "tsp_random_uniform_runs.jsonl").read_text().splitlines()
    ]
    methods = [
        "LKH-3 (elkai)",
        "greedy",
        "multistart",
        "multistart+aug",
        "+2-opt",
        "+2-opt+Or-opt",
        "Christofides (networkx)",
    ]
    assert [(r["n"], r["method"]) for r in rows] == [(n, m) for n in (10, 20) for m in methods]
    by = {(r["n"], r["method"]): r for r in rows}
    for n in (10, 20):
        assert by[(n, "LKH-3 (elkai)")]["mean_gap_percent"] == 0.0
        assert by[(n, "+2-opt")]["mean_length"] <= by[(n, "multistart+aug")]["mean_length"]
        assert by[(n, "+2-opt+Or-opt")]["mean_length"] <= by[(n, "+2-opt")]["mean_length"] + 1e-12
        assert by[(n, "multistart+aug")]["mean_length"] <= by[(n, "multistart")]["mean_length"] + 1e-12
        # LKH is optimal at n <= 20 (up to its integer rounding of the distances, ~1e-7 relative)
        assert all(by[(n, m)]["mean_gap_percent"] >= -1e-3 for m in methods)
    report = (tmp_path / "tsp_random_uniform.md").read_text()
    for text in (
        "| 20 | +2-opt ",
        "gap to LKH-3 %",
        "Concorde (optimal), mean length 3.83",
        "Kool et al., ICLR 2019",
        "- git:",
        "- command:",
    ):
        assert text in report, text
    assert "chunks cached, computing 1" in out
    again = run_benchmark("random_uniform.py", tmp_path)
    assert "chunks cached" not in again  # every row is in the runs file: nothing is recomputed
    (tmp_path / "tsp_random_uniform_runs.jsonl").write_text("")  # the rows lost, the reference cache kept
    again = run_benchmark("random_uniform.py", tmp_path)
    assert "1/1 chunks cached, computing 0" in again and "computing 1" not in again
    assert len((tmp_path / "tsp_random_uniform_runs.jsonl").read_text().splitlines()) == len(rows)


def test_tsplib_sample_smoke(tmp_path: Path, run_benchmark: Callable[..., str]) -> None:
    pytest.importorskip("elkai")
    if not (TSPLIB / "optimal.csv").is_file():
        pytest.skip(f"{TSPLIB} not found")
    run_benchmark("tsplib_sample.py", tmp_path, "--data", str(TSPLIB))
    report = (tmp_path / "tsp_tsplib_sample.md").read_text()
    lines = [line for line in report.splitlines() if line.startswith(("| burma14", "| att48", "| eil51"))]
    assert len(lines) == 3
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    assert [c[2] for c in cells] == ["GEO", "ATT", "EUC_2D"]
    assert all(c[-2].startswith("0.00% /") for c in cells)  # LKH-3 reaches these optima
    assert all(float(c[-3].split("%")[0]) >= 0 for c in cells)  # ours, default pipeline
    assert "Goals, `default (cpu)`" in report and "- n <= 200: mean gap" in report


def test_christofides_reference_accepts_duplicate_cities(tmp_path: Path) -> None:
    """Zero distances (duplicate cities, as in a280) must stay edges of the complete graph."""
    sys.path.insert(0, str(ROOT / "benchmarks" / "tsp"))
    try:
        from _references import reference_tours
    finally:
        sys.path.remove(str(ROOT / "benchmarks" / "tsp"))
    import numpy as np

    points = np.array([[[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]])
    tours, seconds = reference_tours(
        "christofides", points, kind=None, cache=tmp_path, prefix="dup", workers=1, log=lambda _: None
    )
    assert sorted(tours[0].tolist()) == [0, 1, 2, 3, 4] and seconds.shape == (1,)


def test_decoding_smoke(tmp_path: Path, run_script: Callable[..., str]) -> None:
    """benchmarks/tsp/decoding.py --smoke: every method decodes the same tours (CPU: no CUDA graph column),
    the end-to-end rows agree on the mean length, and a report is written."""
    out = tmp_path / "tsp_decoding.md"
    printed = run_script("benchmarks/tsp/decoding.py", "--smoke", "--out", str(out), timeout=300)
    cells = [
        [c.strip() for c in line.strip("|").split("|")]
        for line in printed.splitlines()
        if line[:3] in ("| 5", "| 1")
    ]
    assert [(c[0], c[1], c[2]) for c in cells] == [
        (n, b, p) for n in ("5", "12") for p in ("1", "4") for b in ("1", "3")
    ]
    assert all(c[4] == "n/a (CPU)" and c[-1] == "100.00%" and float(c[6]) > 0 for c in cells), printed
    e2e = [
        [c.strip() for c in line.strip("|").split("|")] for line in printed.splitlines() if "+ 2-opt" in line
    ]
    names = ["greedy + 2-opt", "greedy + 2-opt + Or-opt", "POMO x8 + 2-opt", "POMO x8 + 2-opt + Or-opt"]
    assert [c[0] for c in e2e] == names
    assert all(c[-1] == c[-2] for c in e2e), printed  # the same mean length on both paths
    length = {c[0]: float(c[-1]) for c in e2e}
    assert all(
        length[f"{name} + Or-opt"] <= length[name] + 1e-9 for name in names[::2]
    )  # Or-opt never worsens
    report = out.read_text()
    assert "seed: 0" in report and "git:" in report and "End to end" in report
