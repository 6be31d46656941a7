"""Test-wide fixtures: offline hub, `shared_dir` (skips when ../shared is absent), deterministic threads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("SSNI_SHARED_DIR", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The steering repo's shared/ folder (spec, manifests, test vectors); skip when this clone has none."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"{SHARED_DIR} not present (a user's clone has no ../shared)")
    return SHARED_DIR
