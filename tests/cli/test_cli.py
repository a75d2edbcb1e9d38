"""The `geoattn` command: --version, info, and errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import geoattn
from geoattn.cli import main
from geoattn.environment import REPORTED_PACKAGES, collect_environment
from geoattn.kernels import KERNELS


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["--version"])
    assert excinfo.value.code == 0
    assert capsys.readouterr().out.strip() == f"geoattn {geoattn.__version__}"


def test_info_reports_versions_cuda_and_kernel_backends(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for name in REPORTED_PACKAGES:
        assert name in out
    assert "torch" in out and "cuda" in out
    for kernel in KERNELS:
        assert f"kernel {kernel}" in out
    report = collect_environment()
    assert report.versions["torch"] is not None
    expected = "no" if not report.cuda_available else "yes"
    assert any(line.startswith("cuda") and expected in line for line in out.splitlines())


def test_kernel_registry_matches_the_kernel_folders() -> None:
    root = Path(__file__).resolve().parents[2] / "kernels"
    folders = {p.parent.name for p in root.glob("*/__init__.py")}
    assert set(KERNELS) == folders


def test_no_command_prints_usage_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: geoattn" in capsys.readouterr().err


def test_unknown_command_is_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as excinfo:
        main(["fly"])
    assert excinfo.value.code == 2
    assert "invalid choice: 'fly'" in capsys.readouterr().err


def test_console_script_is_installed() -> None:
    exe = shutil.which("geoattn", path=str(Path(sys.executable).parent))
    assert exe is not None, "the geoattn console script is not installed next to this python"
    result = subprocess.run([exe, "info"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "kernel pairwise_dist" in result.stdout
