"""Output files that appear complete or not at all: written under a temporary name beside the target, flushed to
disk, then renamed over it (a rename within one folder is atomic on POSIX and Windows).

A run that fails or is killed midway leaves the earlier file (or none) under the target name, never a partial one
that a later run could take for complete. A failure deletes the temporary file; only a killed process leaves one,
hidden as `.<stem>.tmp-<pid><suffix>`. Several outputs of one run nest their `atomic_output` blocks: a failure
anywhere inside leaves every target untouched.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_output", "write_text_atomic"]


def _fsync(path: Path, flags: int = os.O_RDONLY) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield the temporary path to write `path`'s content to; when the block succeeds, fsync it, rename it to
    `path` and fsync the folder. The temporary name keeps `path`'s suffix (writers that infer the format from it
    still work)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # e.g. the folder is not a folder: the original error says more
            pass
        raise
    _fsync(path.parent)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Replace `path` by `text` (UTF-8) in one step. Returns `path`."""
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
