"""``examples/solve_tsp.py --smoke`` solves berlin52 three ways and random cities with a tiny policy."""

from __future__ import annotations

from collections.abc import Callable


def test_solve_tsp_example_smoke(run_example: Callable[..., str]) -> None:
    lines = run_example("solve_tsp.py", "--smoke", "--device", "cpu").strip().splitlines()
    assert len(lines) == 5
    assert [line.split()[2] for line in lines[:3]] == ["greedy", "multistart", "multistart"]
    assert all(line.split()[0] == "berlin52" and "to 7542" in line for line in lines[:3])
    assert lines[3].split()[:2] == ["uniform60", "n=60"] and "optimum unknown" in lines[3]
    assert lines[4].startswith("first cities of the tour: [")
