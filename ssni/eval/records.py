"""Per-sample evaluation records in an append-only JSONL file that survives SIGKILL at any moment.

File layout (one JSON object per line):

    {"type": "header", "version": 1, "config_hash": "…", "config": {…}}
    {"type": "record", "seed": 121, "chunk": 0, "method": "ssni-n", "attack": "none", "sample_id": 7, …}
    …                                                   # every record of one group
    {"type": "commit", "seed": 121, "chunk": 0, "method": "ssni-n", "attack": "none", "n": 16, "num_threads": 2, …}

A *group* is the unit of work (seed, chunk of samples, method, attack). Its records and its commit line go to
disk in one `write` followed by flush + fsync, and a group counts as done only once its commit line is complete.
Whatever follows the last complete commit line (a torn line, the records of a group killed mid-write) is cut off
when the file is reopened, so a rerun of the same command redoes exactly the unfinished groups: no record is
lost or doubled, and since every result depends only on (seed, sample ids, chunk), the file ends up identical
to an uninterrupted run's at the same thread count (each commit line records it: `num_threads`). A file that is
not an ssni records file, or one damaged before its tail, is never written to or truncated.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from ssni.atomic_files import write_text_atomic
from ssni.errors import SSNIUserError, one_line

RECORDS_VERSION = 1
CLEAN = "none"  # the attack name of a clean (unattacked) group


@dataclass(frozen=True, order=True)
class GroupKey:
    """One unit of work: all samples of one chunk, for one seed, method and attack ("none" = clean)."""

    seed: int
    chunk: int
    method: str
    attack: str

    def as_dict(self) -> dict:
        return {"seed": self.seed, "chunk": self.chunk, "method": self.method, "attack": self.attack}

    @classmethod
    def of(cls, row: dict) -> GroupKey:
        return cls(int(row["seed"]), int(row["chunk"]), str(row["method"]), str(row["attack"]))


def config_hash(config: dict) -> str:
    """Stable short hash of a JSON-serialisable configuration (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _dumps(row: dict) -> str:
    return json.dumps(row, sort_keys=True, separators=(",", ":"), allow_nan=False)


@dataclass
class ResultsLog:
    """What a records file holds once its uncommitted tail is ignored."""

    header: dict
    records: list[dict]
    commits: list[dict]
    committed_bytes: int  # offset just past the last complete commit line

    @property
    def done(self) -> set[GroupKey]:
        return {GroupKey.of(c) for c in self.commits}


def _group_row(raw: bytes) -> dict | None:
    """A record or commit line as a dict; None when the line is not one (torn, or not written by ssni)."""
    try:
        row = json.loads(raw)
        if isinstance(row, dict) and row.get("type") in ("record", "commit"):
            GroupKey.of(row)
            n = row.get("n")
            if row["type"] == "record" or (isinstance(n, int) and not isinstance(n, bool)):
                return row
    except (KeyError, TypeError, ValueError):  # ValueError: JSONDecodeError, UnicodeDecodeError, int("x")
        pass
    return None


def read_results(path: str | Path) -> ResultsLog:
    """Read a records file, keeping only committed groups (a torn or uncommitted tail is ignored).

    SSNIUserError when `path` is missing or unreadable, is not a records file, or is damaged before its end (a
    line that is not a group's, or a group whose commit does not match its records, followed by more commits:
    not a tail a killed run could leave, so resuming would silently drop the groups after it)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise SSNIUserError(f"results file {path} does not exist") from None
    except IsADirectoryError:
        raise SSNIUserError(f"results file {path} is a folder, not a records file") from None
    except OSError as e:
        raise SSNIUserError(f"cannot read results file {path} ({one_line(e)})") from None
    lines = data.split(b"\n")
    try:
        header = json.loads(lines[0])
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        raise SSNIUserError(f"{path} is not an ssni results file (unreadable header line)") from None
    if not isinstance(header, dict) or header.get("type") != "header":
        raise SSNIUserError(f"{path} is not an ssni results file (no header line)")
    if header.get("version") != RECORDS_VERSION:
        raise SSNIUserError(f"{path} has records version {header.get('version')}, this ssni reads {RECORDS_VERSION}")
    records: list[dict] = []
    commits: list[dict] = []
    pending: list[dict] = []
    offset = len(lines[0]) + 1
    committed = offset
    for number, raw in enumerate(lines[1:], start=2):
        end = offset + len(raw) + 1
        if end > len(data) and raw:  # the last piece has no "\n": a torn line
            break
        offset = end
        if not raw:
            continue
        row = _group_row(raw)
        if row is not None and row["type"] == "record":
            pending.append(row)
            continue
        if row is not None and len(pending) == row["n"] and all(GroupKey.of(r) == GroupKey.of(row) for r in pending):
            records.extend(pending)
            commits.append(row)
            pending = []
            committed = offset
            continue
        if any((later := _group_row(r)) is not None and later["type"] == "commit" for r in lines[number:]):
            raise SSNIUserError(
                f"{path} is damaged at line {number} (not a record of the group being committed, and committed "
                "groups follow it)"
            )
        break  # the uncommitted tail of a killed run
    return ResultsLog(header, records, commits, committed)


class RecordWriter:
    """Append-only writer of one records file, resuming what an earlier (possibly killed) run left.

    Opening a file made with another configuration is refused (SSNIUserError) unless `overwrite` is set.
    """

    def __init__(self, path: str | Path, config: dict, *, overwrite: bool = False):
        self.path = Path(path)
        self.header = {
            "type": "header",
            "version": RECORDS_VERSION,
            "config_hash": config_hash(config),
            "config": config,
        }
        self.done: set[GroupKey] = set()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.path.is_file() and not overwrite and self.path.stat().st_size > 0:
                self._resume()
            else:
                write_text_atomic(self.path, _dumps(self.header) + "\n")
        except OSError as e:
            raise SSNIUserError(f"cannot write records file {self.path} ({one_line(e)})") from None

    def _resume(self) -> None:
        try:
            log = read_results(self.path)
        except SSNIUserError as e:
            header_line = (_dumps(self.header) + "\n").encode()
            if header_line.startswith(self.path.read_bytes()):  # an earlier ssni, killed while writing the header
                write_text_atomic(self.path, header_line.decode())
                return
            raise SSNIUserError(f"{e}; refusing to write into it: choose another --out or pass --overwrite") from None
        if log.header.get("config_hash") != self.header["config_hash"]:
            raise SSNIUserError(
                f"{self.path} holds results of another configuration (config hash {log.header.get('config_hash')}, "
                f"this run {self.header['config_hash']}); pass --overwrite to start over or choose another --out"
            )
        if log.committed_bytes < self.path.stat().st_size:
            os.truncate(self.path, log.committed_bytes)  # drop the torn / uncommitted tail of a killed run
        self.done = log.done

    def append_group(self, key: GroupKey, records: Iterable[dict], **commit_fields) -> None:
        """Write one group's records and its commit line in one write, then flush and fsync. The commit line
        carries `num_threads`, torch's intra-op thread count the group was computed with: float reductions
        (score norms) can differ in the last bits between thread counts, so records of two runs agree bitwise
        only at the same count."""
        rows = [{"type": "record", **key.as_dict(), **r} for r in records]
        commit = {"type": "commit", **key.as_dict(), "n": len(rows), "num_threads": torch.get_num_threads()}
        commit.update(commit_fields)
        text = "".join(_dumps(r) + "\n" for r in rows) + _dumps(commit) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        self.done.add(key)


def write_merged(path: str | Path, header: dict, logs: Iterable[ResultsLog], order: list[GroupKey]) -> ResultsLog:
    """Merge committed groups of several records files (one per rank) into `path`, groups in `order` (the order
    a single process runs them in, so a merged file equals a one-process run's at the same thread count). Groups
    not in `order` are dropped; groups of `order` missing from every log raise RuntimeError."""
    groups: dict[GroupKey, tuple[dict, list[dict]]] = {}
    for log in logs:
        by_key: dict[GroupKey, list[dict]] = {}
        for r in log.records:
            by_key.setdefault(GroupKey.of(r), []).append(r)
        for c in log.commits:
            groups[GroupKey.of(c)] = (c, by_key.get(GroupKey.of(c), []))
    missing = [k for k in order if k not in groups]
    if missing:
        raise RuntimeError(f"cannot merge: {len(missing)} groups were not run by any rank, e.g. {missing[0]}")
    lines = [_dumps(header)]
    for key in order:
        commit, rows = groups[key]
        lines += [_dumps(r) for r in rows] + [_dumps(commit)]
    write_text_atomic(Path(path), "\n".join(lines) + "\n")
    return read_results(path)
