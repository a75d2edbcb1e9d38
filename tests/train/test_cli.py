"""``geoattn-train`` end to end in a subprocess: the console script, ``python -m``, resume and errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geoattn.train import load_checkpoint

BIN = Path(sys.executable).parent
SMOKE = [
    "data.num_nodes=13",
    "trainer.max_steps=2",
    "trainer.val_every=1",
    "trainer.log_every=1",
    "trainer.device=cpu",
]


def _run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HYDRA_FULL_ERROR": "1"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_console_script_trains_and_resumes(tmp_path: Path) -> None:
    if not (BIN / "geoattn-train").exists():
        pytest.skip("the geoattn-train console script is not installed next to this python")
    first = _run(
        ["geoattn-train", "experiment=tree_embedding_hyperbolic", *SMOKE, f"hydra.run.dir={tmp_path / 'a'}"],
        tmp_path,
    )
    assert first.returncode == 0, first.stderr
    run_dir = tmp_path / "a"
    assert {"config.yaml", "run.json", "metrics.jsonl", "checkpoints", ".hydra"} <= {
        p.name for p in run_dir.iterdir()
    }
    assert load_checkpoint(run_dir).step == 2
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"

    second = _run(
        [
            "geoattn-train",
            "experiment=tree_embedding_hyperbolic",
            *SMOKE,
            "trainer.max_steps=3",
            f"resume={run_dir}",
            f"hydra.run.dir={tmp_path / 'b'}",
        ],
        tmp_path,
    )
    assert second.returncode == 0, second.stderr
    info = json.loads((tmp_path / "b" / "run.json").read_text())
    assert info["start_step"] == 2 and info["end_step"] == 3
    assert info["resumed_from"].endswith("step_00000002.pt")


def test_python_dash_m_reports_a_bad_option_clearly(tmp_path: Path) -> None:
    done = _run(
        [
            sys.executable,
            "-m",
            "geoattn.train.main",
            *SMOKE,
            "trainer.device=tpu",
            f"hydra.run.dir={tmp_path}",
        ],
        tmp_path,
    )
    assert done.returncode != 0
    assert (
        "trainer.device='tpu'" in done.stderr and "expected 'auto', 'cpu', 'cuda' or 'cuda:N'" in done.stderr
    )
