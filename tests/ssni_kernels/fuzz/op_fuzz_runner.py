"""Runs cases of a fuzz corpus in this process and prints one JSON line per case (flushed), so that the parent
knows how far it got if a case crashes the interpreter.

    python op_fuzz_runner.py CORPUS_FILE START

CORPUS_FILE defines `CASES`, a list of objects with `.id` and `.run()` (returns a JSON-able dict of facts about
the result). Runs CASES[START:]. The first line is {"ready": <number of cases>} once the corpus is imported; each
case then prints {"index", "id", "outcome": "ok" | "error", ...}: the facts of `run()`, or the exception's type
and message.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings


def load_cases(corpus_file: str) -> list:
    spec = importlib.util.spec_from_file_location("fuzz_corpus", corpus_file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up while the file runs)
    spec.loader.exec_module(module)
    return module.CASES


def outcome(case) -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return {"outcome": "ok", **case.run()}
    except Exception as error:  # the corpus asserts which errors are expected
        return {"outcome": "error", "type": type(error).__name__, "message": str(error)}


def main(corpus_file: str, start: int) -> None:
    cases = load_cases(corpus_file)
    print(json.dumps({"ready": len(cases)}), flush=True)
    for index in range(start, len(cases)):
        print(json.dumps({"index": index, "id": cases[index].id, **outcome(cases[index])}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
