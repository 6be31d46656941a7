"""Outputs appear complete or not at all: a failure inside `atomic_output` leaves the target as it was."""

from __future__ import annotations

import pytest

from ssni.atomic_files import atomic_output, write_text_atomic


def test_success_replaces_and_failure_leaves_the_target_untouched(tmp_path):
    target = tmp_path / "out.pt"
    write_text_atomic(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".pt" and tmp.name.startswith(".out.tmp-")
            tmp.write_text("half written")
            raise RuntimeError("killed midway")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["out.pt"]
    with atomic_output(target) as tmp:
        tmp.write_text("new")
        assert target.read_text() == "old"  # nothing changes under the final name before the block ends
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["out.pt"]


def test_nested_outputs_fail_together(tmp_path):
    first, second = tmp_path / "a.pt", tmp_path / "a.csv"
    with pytest.raises(OSError):
        with atomic_output(first) as tmp_first:
            tmp_first.write_text("images")
            with atomic_output(second) as tmp_second:
                tmp_second.write_text("table")
                raise OSError("disk full")
    assert list(tmp_path.iterdir()) == []
