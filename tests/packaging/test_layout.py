"""The package-dir mapping: every package folder is listed, and the built wheel holds them all."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _setuptools_config() -> dict:  # type: ignore[type-arg]
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)["tool"]["setuptools"]  # type: ignore[no-any-return]


def _package_folders() -> dict[str, Path]:
    """Every folder holding an ``__init__.py`` under a mapped root, by its dotted package name."""
    mapping = _setuptools_config()["package-dir"]
    found = {}
    for package, folder in mapping.items():
        root = ROOT / folder
        for init in root.rglob("__init__.py"):
            relative = init.parent.relative_to(root)
            if "__pycache__" in relative.parts:
                continue
            name = ".".join([package, *relative.parts]) if relative.parts else package
            found[name] = init.parent
    return found


def test_every_package_folder_is_listed() -> None:
    listed = set(_setuptools_config()["packages"])
    folders = set(_package_folders())
    missing = sorted(folders - listed)
    assert not missing, (
        f"package folders missing from [tool.setuptools] packages in pyproject.toml: {missing}"
    )
    stale = sorted(listed - folders)
    assert not stale, f"listed packages without a folder: {stale}"


def test_mapped_subpackages_import_from_their_top_level_folders() -> None:
    import geoattn.configs
    import geoattn.kernels
    import geoattn.kg
    import geoattn.manifolds

    for module, folder in [
        (geoattn.kg, "kg"),
        (geoattn.manifolds, "manifolds"),
        (geoattn.kernels, "kernels"),
        (geoattn.configs, "configs"),
    ]:
        assert module.__file__ is not None
        assert Path(module.__file__).resolve().parent == ROOT / folder


def test_wheel_contains_every_subpackage_and_the_configs(tmp_path: Path) -> None:
    """Build the wheel (no isolation: the running environment's setuptools) and list its contents."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("geoattn-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package, folder in _package_folders().items():
        path = package.replace(".", "/") + "/__init__.py"
        assert path in names, f"{package} (from {folder.relative_to(ROOT)}) is missing from the wheel"
    yaml_files = sorted((ROOT / "configs").rglob("*.yaml"))
    assert yaml_files, "configs/ holds no YAML"
    for config in yaml_files:
        path = "geoattn/configs/" + config.relative_to(ROOT / "configs").as_posix()
        assert path in names, f"config {path} is missing from the wheel"
    assert "geoattn/py.typed" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "geoattn = geoattn.cli:main" in text and "geoattn-train = geoattn.train.main:main" in text
