"""Summary numbers, the Markdown table and the plots of `ssni report`, from a fake run's records."""

from __future__ import annotations

import json

import numpy as np
import pytest
from eval_fakes import FAKE_PRESET, FakeBackend, fake_data

from ssni.cli import main
from ssni.eval.methods import Method
from ssni.eval.records import read_results
from ssni.eval.report import markdown_table, summarize
from ssni.eval.runner import EvalConfig, run_eval


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "r.jsonl"
    names = ("constant", "constant@10", "constant@30", "ssni-n", "ssni-l")
    preset = FAKE_PRESET.with_overrides(methods=tuple(Method.parse(m) for m in names))
    run_eval(EvalConfig(preset=preset, out=out, progress=False), FakeBackend(), fake_data())
    return out


def test_summary_statistics_match_the_records(results):
    log = read_results(results)
    s = summarize(log)
    for method in s.methods:
        per_seed = {
            seed: 100
            * np.mean(
                [r["correct"] for r in log.records if (r["method"], r["attack"], r["seed"]) == (method, "pgd-l2", seed)]
            )
            for seed in (121, 122)
        }
        stat = s.robust_accuracy[method]["pgd-l2"]
        assert stat.per_seed == pytest.approx(per_seed)
        assert stat.mean == pytest.approx(np.mean(list(per_seed.values())))
        assert stat.std == pytest.approx(np.std(list(per_seed.values())))
    clean = [r["score_norm"] for r in log.records if r["attack"] == "none"]
    adv = [r["score_norm"] for r in log.records if r["attack"] != "none"]
    assert s.score_norm_clean_mean == pytest.approx(np.mean(clean))
    assert s.score_norm_adv_mean == pytest.approx(np.mean(adv))
    assert s.mean_t["constant"]["clean"] == 20.0
    assert s.complete


def test_intervals_differences_and_detection(results):
    log = read_results(results)
    s = summarize(log)
    const = s.clean_accuracy["constant"]
    assert const.ci.low <= const.mean <= const.ci.high
    for method in ("constant@10", "ssni-n", "ssni-l"):
        for kind in ("clean", "pgd-linf", "pgd-l2"):
            d = s.differences[method][kind]
            expected = (s.robust_accuracy[method][kind].mean if kind != "clean" else s.clean_accuracy[method].mean) - (
                s.robust_accuracy["constant"][kind].mean if kind != "clean" else const.mean
            )
            assert d.value == pytest.approx(expected) and d.low <= d.value <= d.high
    assert "constant" not in s.differences
    reached = [r["t"] for r in log.records if (r["method"], r["attack"]) == ("ssni-n", "pgd-l2")]
    assert s.reached["ssni-n"]["pgd-l2"]["mean_t"] == pytest.approx(np.mean(reached))
    auc = s.detection_auroc["ssni-n"]["pgd-linf"]
    assert 0 <= auc.low <= auc.value <= auc.high <= 1


def test_markdown_table(results):
    table = markdown_table(summarize(read_results(results)))
    lines = table.splitlines()
    assert lines[0].startswith("| method | clean acc. (%) | pgd-linf robust acc. (%) | pgd-l2 robust acc. (%)")
    first_table = lines[: lines.index("")]
    assert sum(line.startswith("| ssni-") for line in first_table) == 2
    assert "| method | pgd-linf: mean t / e reached | pgd-l2: mean t / e reached |" in lines
    assert " [" in lines[2] and "seeds 121, 122" in table and "Mean EPS score norm: clean" in table
    assert "ssni-n − constant (paired, percentage points): clean" in table and "AUROC of e(x)" in table


def test_markdown_names_the_attack_forms(results):
    """The report says which L2 step form (and BPDA schedule) ran, from the records header."""
    lines = markdown_table(summarize(read_results(results))).splitlines()
    assert "Attack pgd-l2: L2 eps 0.5, 2 iterations, EOT 1, normalised-gradient step 0.2 (L2 length)." in lines


def test_attack_specs_of_older_headers_say_what_ran():
    """Records written before l2_step/bpda_schedule existed ran the normalised L2 step and the defence schedule."""
    from ssni.eval.presets import AttackSpec

    old = {"name": "pgd-l2", "norm": "L2", "eps": 0.5, "step_size": 0.007, "iterations": 200, "eot": 20}
    assert AttackSpec.from_record(old).l2_step == "normalized"
    bpda = {**old, "name": "bpda-linf", "norm": "Linf", "kind": "bpda"}
    assert AttackSpec.from_record(bpda).bpda_schedule == "defence"


def test_report_command_writes_table_and_plots(results, tmp_path, capsys):
    out_dir = tmp_path / "rep"
    assert main(["report", str(results), "--out-dir", str(out_dir)]) == 0
    assert "| method |" in capsys.readouterr().out
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["accuracy_vs_t.png", "report.md", "score_norms.png", "t_distribution.png", "tradeoff.png"]
    for png in out_dir.glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    assert "![score_norms](score_norms.png)" in (out_dir / "report.md").read_text()
    assert main(["report", str(results), "--out-dir", str(out_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in (
        "clean_accuracy",
        "robust_accuracy",
        "mean_t",
        "score_norm_clean_mean",
        "score_norm_adv_mean",
        "network_calls",
    ):
        assert key in summary
    assert summary["robust_accuracy"]["ssni-n"]["pgd-linf"]["mean"] >= 0


def test_report_of_a_missing_file_is_a_user_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
