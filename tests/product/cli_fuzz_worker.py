"""Runs CLI fuzz cases in one process for tests/product/test_cli_fuzz.py (not a test module itself).

    python cli_fuzz_worker.py CASES.json RESULTS.jsonl

CASES.json: [{"name", "argv", "folder"}]. Each case runs `ssni.cli.main(argv)` in its own folder (prepared by the
test) with stdout and stderr captured; its exit status, output and any escaping exception (a traceback: a bug)
are appended to RESULTS.jsonl as soon as it ends, so a crash of the whole process names the case it was running.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import time
import traceback


def run_case(case: dict) -> dict:
    from ssni.cli import main

    os.chdir(case["folder"])
    stdout, stderr = io.StringIO(), io.StringIO()
    code, exception = None, None
    start = time.perf_counter()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(case["argv"])
        except SystemExit as e:  # argparse: --help, or a malformed command line
            code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
        except BaseException:
            exception = traceback.format_exc()
    return {"name": case["name"], "code": code, "stdout": stdout.getvalue(), "stderr": stderr.getvalue(),
            "exception": exception, "seconds": round(time.perf_counter() - start, 3)}  # fmt: skip


def main() -> None:
    cases_path, results_path = sys.argv[1:3]
    with open(cases_path, encoding="utf-8") as f:
        cases = json.load(f)
    with open(results_path, "a", encoding="utf-8") as out:
        for case in cases:
            out.write(json.dumps({"name": case["name"], "started": True}) + "\n")
            out.flush()
            out.write(json.dumps(run_case(case)) + "\n")
            out.flush()


if __name__ == "__main__":
    main()
