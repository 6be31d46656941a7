"""`ssni.__version__`: the installed version, or pyproject.toml's in an uninstalled checkout."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import ssni
from ssni._version import UNKNOWN, package_version

ROOT = Path(__file__).resolve().parents[2]


def _pyproject_version() -> str:
    return re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.MULTILINE).group(1)


def test_version_is_the_projects():
    assert ssni.__version__ == package_version() == _pyproject_version()


def test_falls_back_to_pyproject_then_unknown(tmp_path, monkeypatch):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert package_version() == _pyproject_version()
    other = tmp_path / "pyproject.toml"
    other.write_text('[build]\nversion = "9"\n\n[project]\nname = "x"\nversion = "1.2.3"\n\n[tool.x]\nversion = "7"\n')
    assert package_version(pyproject=other) == "1.2.3"
    assert package_version(pyproject=tmp_path / "missing.toml") == UNKNOWN
