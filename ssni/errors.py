"""The project's user-facing error: bad input a user can fix (a path, a flag, a file's contents).

The CLI prints these (and their subclasses: a bad checkpoint file, a calibration made for other settings) as one
clear line on stderr and exits with status 2, never with a traceback. Library code raises ValueError/TypeError
for bad arguments; the CLI validates its input before it reaches the library (`ssni.eval.requests`), so any other
exception is a bug and shows its traceback.
"""

from __future__ import annotations

import re


class SSNIUserError(Exception):
    """Bad user input: wrong image size/channels/range, NaN, unknown preset, missing checkpoint, mismatched
    calibration, a results file from another configuration. The message says what is wrong and what to do."""


def one_line(text: object) -> str:
    """`text` as one line: newlines, tabs and terminal control codes become single spaces (for messages that quote
    another library's error text)."""
    return " ".join(_CONTROL.sub(" ", str(text)).split())


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
