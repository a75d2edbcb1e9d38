"""``examples/node_classification.py --smoke`` trains CAT and GATConv on Cora for two epochs, so it cannot rot."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("GEOATTN_DATA") or ROOT.parent / "shared" / "data" / "graphs")


def test_node_classification_example_smoke(run_example: Callable[..., str]) -> None:
    if not (DATA / "planetoid" / "Cora").is_dir():
        pytest.skip(f"Cora not found under {DATA} (set GEOATTN_DATA)")
    out = run_example("node_classification.py", "--smoke", "--data-root", str(DATA), "--device", "cpu")
    assert out.startswith("cora: 2708 nodes")
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("cat ", "gat "))}
    assert set(rows) == {"cat", "gat"} and all(row[1] == "2" for row in rows.values())  # 2 epochs each
    routing = [line for line in out.splitlines() if "routing layer" in line]
    assert len(routing) == 2
    weights = [float(w) for w in routing[0].split()[-5::2]]
    assert sum(weights) == pytest.approx(1.0, abs=2e-3)
