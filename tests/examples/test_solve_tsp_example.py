"""``examples/solve_tsp.py --smoke`` solves berlin52 three ways and random cities with a tiny policy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "solve_tsp.py"


def test_solve_tsp_example_smoke() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 5
    assert [line.split()[2] for line in lines[:3]] == ["greedy", "multistart", "multistart"]
    assert all(line.split()[0] == "berlin52" and "to 7542" in line for line in lines[:3])
    assert lines[3].split()[:2] == ["uniform60", "n=60"] and "optimum unknown" in lines[3]
    assert lines[4].startswith("first cities of the tour: [")
