"""Runs a fuzz corpus case by case in subprocesses: a case that kills its interpreter (segfault, abort, hang) is
recorded as "crash" and the next subprocess resumes after it, so one bad case never hides the others."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

RUNNER = Path(__file__).with_name("op_fuzz_runner.py")
REPO = Path(__file__).resolve().parents[3]


def run_isolated(corpus_file: Path, *, timeout: float = 600.0) -> dict[int, dict]:
    """index → outcome of every case of `corpus_file` (see op_fuzz_runner.py); crashed or hung cases get
    {"outcome": "crash", "returncode", "stderr"}."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    outcomes: dict[int, dict] = {}
    start, total = 0, None
    while total is None or start < total:
        command = [sys.executable, str(RUNNER), str(corpus_file), str(start)]
        try:
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
            stdout, stderr, returncode = result.stdout, result.stderr, result.returncode
        except subprocess.TimeoutExpired as expired:
            stdout, stderr, returncode = _text(expired.stdout), _text(expired.stderr), "timeout"
        lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        if not lines or "ready" not in lines[0]:
            raise RuntimeError(f"the fuzz corpus {corpus_file} did not load (exit {returncode}):\n{stderr[-3000:]}")
        total = lines[0]["ready"]
        for line in lines[1:]:
            outcomes[line["index"]] = line
        start = max(outcomes, default=-1) + 1
        if start < total and returncode == 0:
            raise RuntimeError(
                f"the fuzz runner stopped at case {start} of {total} without an error:\n{stderr[-3000:]}"
            )
        if start < total:  # the case at `start` took the interpreter down
            outcomes[start] = {"index": start, "outcome": "crash", "returncode": returncode, "stderr": stderr[-3000:]}
            start += 1
    return outcomes


def _text(output) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""
