"""The project's user-facing error: bad input a user can fix (a path, a flag, a file's contents).

The CLI prints these as one clear line on stderr and exits non-zero, never with a traceback. Library code may
raise ValueError/TypeError for bad arguments as well; the CLI maps those the same way (see `ssni.cli`).
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
