"""The op fuzz corpus (op_fuzz_corpus.py), run in subprocesses: no case crashes, valid input of any integer dtype
works exactly as int64 does, and every bad input raises the expected error type with a one-line message naming
the argument. Also checks the crash isolation itself."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from crash_isolation import run_isolated
from op_fuzz_corpus import CASES, OK

CORPUS = Path(__file__).with_name("op_fuzz_corpus.py")


@pytest.fixture(scope="module")
def outcomes() -> dict[int, dict]:
    return run_isolated(CORPUS)


def _names(message: str, argument: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(argument)}(?!\w)", message) is not None


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case.id for case in CASES])
def test_op_fuzz_case(outcomes, index):
    case, got = CASES[index], outcomes[index]
    assert got["outcome"] != "crash", f"the case crashed the interpreter ({got['returncode']}):\n{got['stderr']}"
    assert got["id"] == case.id
    if isinstance(case.expect, OK):
        assert got["outcome"] == "ok", f"{got.get('type')}: {got.get('message')}"
        assert got["shape_ok"] and got["dtype_ok"] and got["device_ok"], got
        assert got.get("same", True), "the output differs from the equivalent call's"
        return
    expect = case.expect
    assert got["outcome"] == "error", f"no error, expected {expect.error.__name__} naming {expect.argument}"
    message = got["message"]
    assert got["type"] == expect.error.__name__, f"{got['type']}: {message}"
    assert "\n" not in message
    assert not expect.prefix or message.startswith(f"{case.op}: "), message
    assert _names(message, expect.argument), f"{message!r} does not name {expect.argument}"
    assert re.search(expect.match, message), f"{message!r} does not match {expect.match!r}"


def test_crash_and_hang_are_isolated(tmp_path):
    """A segfaulting case and a hanging one are recorded as crashes; the cases after them still run."""
    corpus = tmp_path / "corpus.py"
    corpus.write_text(
        textwrap.dedent(
            """
            import ctypes
            import time

            class Case:
                def __init__(self, id, action):
                    self.id, self.action = id, action

                def run(self):
                    return {"value": self.action()}

            CASES = [
                Case("fine", lambda: 1),
                Case("segfault", lambda: ctypes.string_at(0)),
                Case("raises", lambda: int("x")),
                Case("hangs", lambda: time.sleep(600)),
                Case("fine-again", lambda: 2),
            ]
            """
        )
    )
    outcomes = run_isolated(corpus, timeout=5)
    assert [outcomes[i]["outcome"] for i in range(5)] == ["ok", "crash", "error", "crash", "ok"]
    assert outcomes[1]["returncode"] != 0 and outcomes[3]["returncode"] == "timeout"
    assert outcomes[2]["type"] == "ValueError" and outcomes[4]["value"] == 2
