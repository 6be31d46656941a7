"""`ssni.__version__`: the installed distribution's version, or in a source checkout without an install the
version in its pyproject.toml."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
UNKNOWN = "0+unknown"


def package_version(distribution: str = "ssni", pyproject: Path = PYPROJECT) -> str:
    """The version of the installed `distribution`; if it is not installed, `version = "…"` of the [project]
    table of `pyproject`; UNKNOWN when neither exists."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        pass
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return UNKNOWN
    project = re.search(r"^\[project\]\s*$(.*?)(?=^\[|\Z)", text, re.MULTILINE | re.DOTALL)
    found = project and re.search(r'^version\s*=\s*"([^"]+)"', project.group(1), re.MULTILINE)
    return found.group(1) if found else UNKNOWN
