"""Part "correctness": the GPU tests of tests/ (they run on CUDA when there is one) as one pytest process, and its
JUnit XML report reduced to counts and the names of what failed."""

from __future__ import annotations

import importlib.util
import os
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

MAX_LISTED = 20  # failures listed by name (with the first line of their message)
TEST_TIMEOUT_S = 60  # per test, with pytest-timeout: a hung test fails alone instead of stopping the part


def pytest_command(tests: tuple[str, ...], junit: Path, parallel: bool) -> list[str]:
    """pytest over `tests`, with pytest-xdist workers when it is installed and `parallel` (Triton compiles each
    kernel variant on first use; the workers compile in parallel), and pytest-timeout when it is installed."""
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    if parallel and importlib.util.find_spec("xdist") is not None:
        command += ["-n", str(max(1, min(8, (os.cpu_count() or 2) // 2)))]
    if importlib.util.find_spec("pytest_timeout") is not None:
        command += [f"--timeout={TEST_TIMEOUT_S}"]
    return [*command, *tests]


def summarize(junit: Path) -> dict:
    """Counts (tests, failures, errors, skipped), the run's seconds and the first MAX_LISTED failures/errors."""
    root = ElementTree.parse(junit).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    counts["seconds"] = sum(float(s.get("time", 0)) for s in suites)
    problems = []
    for case in root.iter("testcase"):
        for kind in ("failure", "error"):
            found = case.find(kind)
            if found is not None:
                message = (found.get("message") or "").strip().splitlines()
                name = f"{case.get('classname')}::{case.get('name')}"
                problems.append(f"{kind}: {name}: {message[0][:200] if message else ''}")
    counts["problems"] = problems[:MAX_LISTED]
    return counts
