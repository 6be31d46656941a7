"""Records file: atomic groups, torn tails, resume bookkeeping, refusal of another configuration, merging."""

from __future__ import annotations

import json

import pytest

from ssni.errors import SSNIUserError
from ssni.eval.records import GroupKey, RecordWriter, config_hash, read_results, write_merged

CONFIG = {"preset": {"name": "x"}, "num_groups": 3}
KEYS = [GroupKey(121, 0, "constant", "none"), GroupKey(121, 0, "ssni-n", "none"), GroupKey(121, 1, "constant", "none")]


def _rows(key: GroupKey, n: int = 3) -> list[dict]:
    return [
        {"sample_id": key.chunk * 10 + i, "label": i, "pred": i, "correct": True, "t": 5, "score_norm": 1.5}
        for i in range(n)
    ]


def _write_two(path) -> RecordWriter:
    w = RecordWriter(path, CONFIG)
    for key in KEYS[:2]:
        w.append_group(key, _rows(key), network_calls=7)
    return w


def test_roundtrip_and_done_keys(tmp_path):
    path = tmp_path / "r.jsonl"
    _write_two(path)
    log = read_results(path)
    assert log.header["config_hash"] == config_hash(CONFIG)
    assert len(log.records) == 6 and len(log.commits) == 2
    assert log.done == set(KEYS[:2])
    assert all(r["seed"] == 121 and r["type"] == "record" for r in log.records)
    assert RecordWriter(path, CONFIG).done == set(KEYS[:2])


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


@pytest.mark.parametrize("cut", ["torn_commit", "records_without_commit", "torn_record"])
def test_uncommitted_tail_is_dropped_and_truncated(tmp_path, cut):
    path = tmp_path / "r.jsonl"
    _write_two(path)
    good = path.read_bytes()
    key = KEYS[2]
    rows = "".join(json.dumps({"type": "record", **key.as_dict(), **r}) + "\n" for r in _rows(key))
    commit = json.dumps({"type": "commit", **key.as_dict(), "n": 3})
    tail = {"torn_commit": rows + commit[:-5], "records_without_commit": rows, "torn_record": rows[:-20]}[cut]
    path.write_bytes(good + tail.encode())
    log = read_results(path)
    assert log.done == set(KEYS[:2]) and len(log.records) == 6
    w = RecordWriter(path, CONFIG)  # resuming cuts the tail off
    assert path.read_bytes() == good
    w.append_group(key, _rows(key), network_calls=7)
    assert read_results(path).done == set(KEYS)
    assert len(read_results(path).records) == 9


def test_commit_count_mismatch_is_not_committed(tmp_path):
    path = tmp_path / "r.jsonl"
    _write_two(path)
    key = KEYS[2]
    rows = "".join(json.dumps({"type": "record", **key.as_dict(), **r}) + "\n" for r in _rows(key, 2))
    with open(path, "a") as f:
        f.write(rows + json.dumps({"type": "commit", **key.as_dict(), "n": 3}) + "\n")
    assert read_results(path).done == set(KEYS[:2])


def test_other_config_is_refused_unless_overwrite(tmp_path):
    path = tmp_path / "r.jsonl"
    _write_two(path)
    other = {**CONFIG, "num_groups": 4}
    with pytest.raises(SSNIUserError, match="another configuration"):
        RecordWriter(path, other)
    w = RecordWriter(path, other, overwrite=True)
    assert w.done == set() and read_results(path).records == []


def test_torn_header_starts_over(tmp_path):
    header = RecordWriter(tmp_path / "whole.jsonl", CONFIG).path.read_bytes()
    path = tmp_path / "r.jsonl"
    path.write_bytes(header[: len(header) // 2])  # an earlier ssni killed while writing its header
    w = RecordWriter(path, CONFIG)
    assert w.done == set() and read_results(path).header["config_hash"] == config_hash(CONFIG)


@pytest.mark.parametrize(
    "content",
    ['{"a": 1}', '{"a": 1}\n', "[]\n", "plain text\nsecond line\n", '{"type": "hea', "\x00\xff"],
    ids=["json-no-newline", "json", "list", "text", "other-torn-header", "binary"],
)
def test_a_file_that_is_not_ours_is_never_touched(tmp_path, content):
    path = tmp_path / "r.jsonl"
    path.write_text(content, encoding="latin-1")
    with pytest.raises(SSNIUserError, match="not an ssni results file.*--overwrite"):
        RecordWriter(path, CONFIG)
    assert path.read_text(encoding="latin-1") == content
    assert RecordWriter(path, CONFIG, overwrite=True).done == set()
    assert read_results(path).header["config_hash"] == config_hash(CONFIG)


def test_damage_before_the_tail_is_refused_not_truncated(tmp_path):
    path = tmp_path / "r.jsonl"
    _write_two(path)
    lines = path.read_bytes().split(b"\n")
    lines[2] = b'{"type": "record", "garbled'  # a record of the first group, with committed groups after it
    path.write_bytes(b"\n".join(lines))
    before = path.read_bytes()
    with pytest.raises(SSNIUserError, match="damaged at line 3"):
        read_results(path)
    with pytest.raises(SSNIUserError, match="damaged at line 3.*--overwrite"):
        RecordWriter(path, CONFIG)
    assert path.read_bytes() == before


def test_commits_carry_the_thread_count(tmp_path):
    import torch

    path = tmp_path / "r.jsonl"
    _write_two(path)
    assert {c["num_threads"] for c in read_results(path).commits} == {torch.get_num_threads()}


def test_not_a_results_file(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"hello": 1}\n')
    with pytest.raises(SSNIUserError, match="not an ssni results file"):
        read_results(path)
    with pytest.raises(SSNIUserError, match="does not exist"):
        read_results(tmp_path / "missing.jsonl")


def test_merge_orders_groups_and_requires_all(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    wa, wb = RecordWriter(a, CONFIG), RecordWriter(b, CONFIG)
    wb.append_group(KEYS[2], _rows(KEYS[2]))
    for key in KEYS[:2]:
        wa.append_group(key, _rows(key))
    merged = write_merged(tmp_path / "m.jsonl", wa.header, [read_results(b), read_results(a)], KEYS)
    assert [GroupKey.of(c) for c in merged.commits] == KEYS
    single = tmp_path / "s.jsonl"
    ws = RecordWriter(single, CONFIG)
    for key in KEYS:
        ws.append_group(key, _rows(key))
    assert (tmp_path / "m.jsonl").read_bytes() == single.read_bytes()
    with pytest.raises(RuntimeError, match="not run by any rank"):
        write_merged(tmp_path / "m2.jsonl", wa.header, [read_results(a)], KEYS)
