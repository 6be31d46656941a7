"""The evaluation loop with a fake backend: resume after SIGKILL, torchrun sharding, summary contents."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from eval_fakes import FAKE_PRESET, FakeBackend, fake_data

from ssni.errors import SSNIUserError
from ssni.eval.records import read_results
from ssni.eval.report import summarize
from ssni.eval.runner import EvalConfig, run_eval

SCRIPT = Path(__file__).with_name("eval_fakes.py")
ROOT = Path(__file__).resolve().parents[3]


# Records agree bitwise only at one thread count (each commit records it): subprocesses use this process's.
def _same_threads() -> dict[str, str]:
    """The subprocess runs at this process's thread count at the time of the call (records carry num_threads; an
    earlier test may have changed it since collection)."""
    return {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(torch.get_num_threads())}


def _run(out: Path, **kw):
    return summarize(
        run_eval(EvalConfig(preset=FAKE_PRESET, out=out, progress=False, **kw), FakeBackend(), fake_data())
    )


def _without_work_counters(path: Path) -> list[dict]:
    """The file's lines with the commits' work counters left out: a kill between SSNI-N's and SSNI-L's clean groups
    loses the score norms SSNI-L would have reused, so the resumed run does (and charges) that work again; every
    record and every other field is the same."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    drop = ("network_calls", "samples_evaluated")
    return [{k: v for k, v in d.items() if k not in drop} if d.get("type") == "commit" else d for d in lines]


def _group_counts(path: Path) -> dict:
    counts: dict = {}
    for r in read_results(path).records:
        key = (r["seed"], r["method"], r["attack"], r["sample_id"])
        counts[key] = counts.get(key, 0) + 1
    return counts


def test_summary_and_plan(tmp_path):
    summary = _run(tmp_path / "r.jsonl")
    n_chunks = 6  # 22 samples in chunks of 4
    log = read_results(tmp_path / "r.jsonl")
    assert len(log.commits) == 2 * n_chunks * 3 * 3
    assert len(log.records) == 2 * 22 * 3 * 3
    assert summary.complete and summary.num_samples == 22 and summary.seeds == [121, 122]
    assert set(summary.robust_accuracy["ssni-l"]) == {"pgd-linf", "pgd-l2"}
    acc = [
        r["correct"] for r in log.records if r["method"] == "constant" and r["attack"] == "none" and r["seed"] == 121
    ]
    assert summary.clean_accuracy["constant"].per_seed[121] == pytest.approx(100 * sum(acc) / len(acc))
    assert summary.network_calls["total"] == sum(c["network_calls"] for c in log.commits) > 0
    adv = [r for r in log.records if r["attack"] == "pgd-linf"]
    assert max(r["perturbation_linf"] for r in adv) <= 0.1 + 1e-6


class _CountingBackend(FakeBackend):
    def __init__(self):
        super().__init__()
        self.attack_seeds = []

    def attack(self, method, attack, x, y, *, seed, **kw):
        self.attack_seeds.append(seed)
        return super().attack(method, attack, x, y, seed=seed, **kw)


def test_shared_attacks_run_once_at_the_first_seed_and_survive_a_resume(tmp_path):
    out = tmp_path / "r.jsonl"
    backend = _CountingBackend()
    run_eval(EvalConfig(preset=FAKE_PRESET, out=out, progress=False), backend, fake_data())
    n_groups = 6 * 3 * 2  # chunks × methods × attacks
    assert backend.attack_seeds == [121] * n_groups
    log = read_results(out)
    assert {c["attack_seed"] for c in log.commits if c["attack"] != "none"} == {121}
    by_key = {(r["seed"], r["method"], r["attack"], r["sample_id"]): r for r in log.records}
    for (seed, method, attack, sid), r in by_key.items():
        if seed == 122 and attack != "none":  # the same adversarial input under another purification seed
            assert r["perturbation_linf"] == by_key[(121, method, attack, sid)]["perturbation_linf"]
    stored = list((tmp_path / "r.jsonl.adversarial").glob("*/*.safetensors"))
    assert len(stored) == n_groups
    # Drop the second seed's groups: a resumed run evaluates the stored inputs and attacks nothing.
    text = out.read_text().splitlines()
    keep = [line for line in text if '"seed":122' not in line]
    out.write_text("\n".join(keep) + "\n")
    again = _CountingBackend()
    run_eval(EvalConfig(preset=FAKE_PRESET, out=out, progress=False), again, fake_data())
    assert again.attack_seeds == [] and read_results(out).records == log.records


def test_per_seed_attacks(tmp_path):
    backend = _CountingBackend()
    preset = FAKE_PRESET.with_overrides(attack_seeds="per-seed")
    out = tmp_path / "r.jsonl"
    run_eval(EvalConfig(preset=preset, out=out, progress=False), backend, fake_data())
    assert sorted(set(backend.attack_seeds)) == [121, 122] and len(backend.attack_seeds) == 2 * 36
    assert not (tmp_path / "r.jsonl.adversarial").exists()
    log = read_results(out)
    assert {(c["seed"], c["attack_seed"]) for c in log.commits if c["attack"] != "none"} == {(121, 121), (122, 122)}


def test_rerun_completed_is_a_no_op(tmp_path):
    out = tmp_path / "r.jsonl"
    _run(out)
    before = out.read_bytes()
    backend = FakeBackend()
    run_eval(EvalConfig(preset=FAKE_PRESET, out=out, progress=False), backend, fake_data())
    assert out.read_bytes() == before and backend.network_calls == 0


def test_changed_config_is_refused(tmp_path):
    out = tmp_path / "r.jsonl"
    _run(out)
    other = FAKE_PRESET.with_overrides(seeds=(121,))
    with pytest.raises(SSNIUserError, match="another configuration"):
        run_eval(EvalConfig(preset=other, out=out, progress=False), FakeBackend(), fake_data())


def test_sigkill_and_resume_equals_uninterrupted(tmp_path):
    reference = tmp_path / "reference.jsonl"
    _run(reference)
    out = tmp_path / "killed.jsonl"
    env = {**os.environ, **_same_threads()}
    cmd = [sys.executable, str(SCRIPT), str(out), "--sleep", "0.01"]
    for attempt in range(2):  # kill at two different moments, resuming each time
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until this attempt has committed something new
            if proc.poll() is not None or (out.exists() and out.read_bytes().count(b'"commit"') > 4 * (attempt + 1)):
                break
            time.sleep(0.02)
        time.sleep(0.013 * (attempt + 1))
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert _without_work_counters(out) == _without_work_counters(reference)
    assert all(v == 1 for v in _group_counts(out).values())
    assert "resuming" in done.stdout
    assert json.loads(done.stdout.strip().splitlines()[-1])["complete"] is True


def test_two_process_torchrun_merges_to_the_one_process_result(tmp_path):
    reference = tmp_path / "reference.jsonl"
    _run(reference)
    out = tmp_path / "dist.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        str(SCRIPT),
        str(out),
    ]
    env = {**os.environ, **_same_threads()}  # torchrun would set OMP_NUM_THREADS=1 itself
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert out.read_bytes() == reference.read_bytes()
    assert {c["num_threads"] for c in read_results(out).commits} == {torch.get_num_threads()}
    shards = sorted(p.name for p in tmp_path.glob("dist.rank*"))
    assert shards == ["dist.rank0-of-2.jsonl", "dist.rank1-of-2.jsonl"]
    chunks = {r["chunk"] % 2 for r in read_results(tmp_path / shards[1]).records}
    assert chunks == {1}
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["complete"] is True and summary["num_samples"] == 22
