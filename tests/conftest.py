"""Test-wide settings: the hub stays offline (nothing is downloaded). Reference data is vendored in tests/data."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
