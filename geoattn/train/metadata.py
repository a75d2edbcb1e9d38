"""What a run records about where it ran: git SHA, package versions, seed, start time.

Everything here is best effort and never raises: outside a git checkout, or without ``git``, the SHA is
``None``; a package that is not installed has version ``None``. ``GEOATTN_GIT_SHA`` in the environment names the
commit instead of ``git`` where the checkout's ``.git`` may be stale (a GPU host that receives a copy of the
working tree with an older ``.git``).
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import geoattn

__all__ = ["GIT_SHA_VARIABLE", "PACKAGES", "git_state", "package_versions", "run_info", "utc_now"]

#: The environment variable that names the commit of the code when ``git`` cannot be trusted to (module docstring).
GIT_SHA_VARIABLE = "GEOATTN_GIT_SHA"

PACKAGES = (
    "geoattn",
    "torch",
    "triton",
    "torch_geometric",
    "pykeen",
    "geoopt",
    "hydra-core",
    "omegaconf",
    "numpy",
)


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(path: Path | None = None) -> dict[str, Any]:
    """``{"sha": str | None, "dirty": bool | None}`` for the git checkout holding ``path``.

    ``path`` defaults to geoattn's source folder: the code that ran, not the current directory. With
    ``GEOATTN_GIT_SHA`` set: ``{"sha": its value, "dirty": None}``.
    """
    if override := os.environ.get(GIT_SHA_VARIABLE):
        return {"sha": override, "dirty": None}
    where = path if path is not None else Path(geoattn.__file__).resolve().parent
    sha = _git(["rev-parse", "HEAD"], where)
    if not sha:
        return {"sha": None, "dirty": None}
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return {"sha": sha, "dirty": None if status is None else bool(status)}


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed distribution versions by name (``None`` when not installed)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def utc_now() -> str:
    """The current UTC time in ISO 8601, to the second."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def run_info(*, seed: int, device: str, resumed_from: str | None, start_step: int) -> dict[str, Any]:
    """The contents of ``run.json`` at the start of a run."""
    git = git_state()
    return {
        "git_sha": git["sha"],
        "git_dirty": git["dirty"],
        "packages": package_versions(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "seed": seed,
        "device": device,
        "start_time": utc_now(),
        "resumed_from": resumed_from,
        "start_step": start_step,
        "status": "running",
    }
