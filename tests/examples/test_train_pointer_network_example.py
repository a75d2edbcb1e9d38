"""``examples/train_pointer_network.py --smoke`` trains, reloads and scores a tiny network, so it cannot rot."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def test_train_pointer_network_example_smoke(tmp_path: Path, run_example: Callable[..., str]) -> None:
    lines = run_example("train_pointer_network.py", "--smoke", "--out", str(tmp_path)).splitlines()
    assert lines[0] == "trained 4 steps" and (tmp_path / "checkpoints").is_dir()
    assert lines[1].split() == ["decoding", "accuracy", "area_coverage", "area_fail_rate"]
    rows = {" ".join(line.split()[:-3]): [float(v) for v in line.split()[-3:]] for line in lines[2:]}
    assert set(rows) == {"n=6 greedy", "n=6 beam 4", "n=8 greedy", "n=8 beam 4"}
    # fractions; a simple polygon on the points never covers more than their hull
    assert all(0.0 <= v <= 1.0 + 1e-9 for values in rows.values() for v in values)


def test_train_pointer_network_example_scores_a_shipped_network(run_example: Callable[..., str]) -> None:
    args = ("--experiment", "delaunay_5", "--pretrained", "delaunay_5", "--smoke")
    lines = run_example("train_pointer_network.py", *args).splitlines()
    assert lines[0].split() == ["decoding", "accuracy", "triangle_coverage"]
    rows = {" ".join(line.split()[:-2]): [float(v) for v in line.split()[-2:]] for line in lines[1:]}
    assert set(rows) == {"n=5 greedy", "n=5 beam 4"}
    # trained to ~75% exact triangulations: on 8 instances the coverage cannot be near chance
    assert all(coverage > 0.6 for _, coverage in rows.values()), rows
