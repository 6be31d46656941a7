"""Summary numbers, the Markdown table and the plots of `ssni report`, from a fake run's records."""

from __future__ import annotations

import contextlib
import csv
import io
import json

import numpy as np
import pytest
from eval_fakes import FAKE_PRESET, FakeBackend, fake_data

from ssni.cli import main
from ssni.eval import report
from ssni.eval.methods import Method
from ssni.eval.records import ResultsLog, read_results
from ssni.eval.report import (
    accuracy_rows,
    accuracy_vs_t_series,
    frontier_lines,
    frontier_points,
    markdown_table,
    summarize,
    t_histograms,
)
from ssni.eval.runner import EvalConfig, run_eval


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "r.jsonl"
    names = ("constant", "constant@10", "constant@30", "ssni-n", "ssni-l")
    preset = FAKE_PRESET.with_overrides(methods=tuple(Method.parse(m) for m in names))
    config = EvalConfig(preset=preset, out=out, identities={"calibration_tau": "18.5"}, progress=False)
    run_eval(config, FakeBackend(), fake_data())
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


@pytest.fixture(scope="module")
def written(results, tmp_path_factory):
    """`ssni report --json` run once: (its folder, the summary it printed, per PNG the titles of its axes and the
    number of legends, each checked as it is saved to lie outside every axes of its figure)."""
    out_dir = tmp_path_factory.mktemp("written") / "rep"
    seen = {}
    save = report._save

    def check(fig, path):
        fig.tight_layout()  # as saved
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        for legend in legends:
            box = legend.get_window_extent(renderer)
            assert not any(box.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes), path.name
        seen[path.name] = ([ax.get_title() for ax in fig.axes], len(legends))
        return save(fig, path)

    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(stdout):
        mp.setattr(report, "_save", check)
        assert main(["report", str(results), "--out-dir", str(out_dir), "--json"]) == 0
    return out_dir, json.loads(stdout.getvalue()), seen


def test_report_command_writes_tables_and_plots(written):
    out_dir, summary, _ = written
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == [
        "accuracy_vs_t.png",
        "report.md",
        "results.csv",
        "results.tex",
        "score_norms.png",
        "t_distribution.png",
        "tradeoff.png",
    ]
    for png in out_dir.glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000
    assert "![score_norms](score_norms.png)" in (out_dir / "report.md").read_text()
    for key in (
        "clean_accuracy",
        "robust_accuracy",
        "mean_t",
        "score_norm_clean_mean",
        "score_norm_adv_mean",
        "network_calls",
        "defence_config",
        "attack_config",
    ):
        assert key in summary
    assert summary["robust_accuracy"]["ssni-n"]["pgd-linf"]["mean"] >= 0


def test_report_of_a_missing_file_is_a_user_error(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_report_states_the_configuration_and_per_seed_accuracies(results, written):
    """report.md names every setting of the defence and the attacks (from the records header) and every seed's
    accuracy beside the std over seeds and the interval over images; results.csv and results.tex hold the same."""
    out_dir = written[0]
    text = (out_dir / "report.md").read_text()
    assert "- Defence: host ddpm, t* = 20 (reverse steps: every index), 1 vote(s) per input." in text
    assert "- SSNI: K = 2 EPS score levels, τ = 18.5 (SSNI-N), b = 5." in text
    assert "adversarial examples made once at seed 121, evaluated under every seed; 22 images" in text
    head = "| attack | kind | norm | ε | step | iterations | EOT | surrogate steps | random start | L2 step |"
    assert head in text
    assert "| pgd-linf | pgd | Linf | 0.1 | 0.05 | 3 | 1 | 2 | no (x) | – | – |" in text
    assert "| pgd-l2 | pgd | L2 | 0.5 | 0.2 | 2 | 1 | 2 | no (x) | normalized | – |" in text
    assert "| method | inputs | seed 121 | seed 122 | mean ± std (seeds) | 95% CI (images) |" in text
    log = read_results(results)
    rows = accuracy_rows(summarize(log))
    assert len(rows) == 5 * 3  # methods × (clean, pgd-linf, pgd-l2)
    for row in rows:
        attack = "none" if row["inputs"] == "clean" else row["inputs"]
        for seed in (121, 122):
            picked = [
                r["correct"]
                for r in log.records
                if (r["method"], r["attack"], r["seed"]) == (row["method"], attack, seed)
            ]
            assert row[f"seed_{seed}"] == pytest.approx(100 * np.mean(picked))
        assert row["ci_low"] <= row["mean"] <= row["ci_high"]
        cells = f"| {row['mean']:.1f} ± {row['std_over_seeds']:.1f} | [{row['ci_low']:.1f}, {row['ci_high']:.1f}] |"
        assert f"| {row['method']} | {row['inputs']} | {row['seed_121']:.1f} | {row['seed_122']:.1f} {cells}" in text
    with open(out_dir / "results.csv") as f:
        written = list(csv.DictReader(f))
    assert [(r["method"], r["inputs"]) for r in written] == [(r["method"], r["inputs"]) for r in rows]
    assert [float(r["seed_122"]) for r in written] == pytest.approx([r["seed_122"] for r in rows])
    tex = (out_dir / "results.tex").read_text().splitlines()
    assert "\\begin{tabular}{lccc}" in tex and "method & clean & pgd-linf & pgd-l2 \\\\" in tex
    ssni_n = next(r for r in rows if (r["method"], r["inputs"]) == ("ssni-n", "pgd-l2"))
    cell = f"${ssni_n['mean']:.1f} \\pm {ssni_n['std_over_seeds']:.1f}$ {{\\scriptsize [{ssni_n['ci_low']:.1f}, "
    assert any(line.startswith("ssni-n & ") and cell in line for line in tex)


def _log(records: list[dict]) -> ResultsLog:
    return ResultsLog(header={}, records=records, commits=[], committed_bytes=0)


def _record(method: str, attack: str, sample: int, t: int, correct: bool = True) -> dict:
    return {
        "method": method,
        "attack": attack,
        "seed": 121,
        "sample_id": sample,
        "t": t,
        "correct": correct,
        "score_norm": float(t),
    }


def test_t_histogram_bins_are_integers_over_the_shared_range():
    """A saturated adversarial t (every adversarial input at 154) is one full bin, not an invisible sliver."""
    clean_t = [50, 52, 52, 80]
    records = [_record("ssni-n", "none", i, t) for i, t in enumerate(clean_t)]
    records += [_record("ssni-n", "pgd-linf", i, 154) for i in range(4)]
    h = t_histograms(_log(records), summarize(_log(records)))["ssni-n"]
    assert h["edges"][0] == 49.5 and h["edges"][-1] == 154.5 and np.all(np.diff(h["edges"]) == 1)
    assert h["adversarial"][-1] == 4 and h["adversarial"].sum() == 4
    centres = (h["edges"][:-1] + h["edges"][1:]) / 2
    assert dict(zip(centres[h["clean"] > 0], h["clean"][h["clean"] > 0])) == {50: 1, 52: 2, 80: 1}


def test_accuracy_vs_t_puts_ssni_at_the_t_of_the_inputs_measured():
    """SSNI's robust point sits at the mean t of the adversarial inputs (not the clean one), with the 95% interval
    as its error bar; the constant-t sweep is sorted by t."""
    records = []
    for i in range(6):
        records += [_record("constant", a, i, 20, correct=i < 3) for a in ("none", "pgd-linf")]
        records += [_record("constant@40", a, i, 40, correct=i < 4) for a in ("none", "pgd-linf")]
        records += [_record("ssni-n", "none", i, 10 + i), _record("ssni-n", "pgd-linf", i, 30 + i, correct=i < 5)]
    summary = summarize(_log(records))
    series = {(s.method, s.inputs): s for s in accuracy_vs_t_series(summary)}
    robust = series[("ssni-n", "pgd-linf")]
    assert robust.t.tolist() == [pytest.approx(32.5)] and summary.mean_t["ssni-n"]["clean"] == pytest.approx(12.5)
    stat = summary.robust_accuracy["ssni-n"]["pgd-linf"]
    assert robust.accuracy.tolist() == [pytest.approx(100 * 5 / 6)]
    assert robust.yerr[:, 0].tolist() == pytest.approx([stat.mean - stat.ci.low, stat.ci.high - stat.mean])
    assert series[("ssni-n", "clean")].t.tolist() == [pytest.approx(12.5)]
    sweep = series[("constant", "pgd-linf")]
    assert sweep.t.tolist() == [20, 40] and sweep.accuracy.tolist() == pytest.approx([50.0, 100 * 4 / 6])


def test_plot_legends_sit_outside_the_axes_and_titles_name_eps(written):
    """No legend overlaps the plotting area of any axes, so it never covers data (checked as each PNG is saved);
    accuracy vs t names every attack's ε."""
    seen = written[2]
    assert set(seen) == {"score_norms.png", "t_distribution.png", "accuracy_vs_t.png", "tradeoff.png"}
    assert all(count > 0 for _, count in seen.values())
    assert seen["accuracy_vs_t.png"][0] == ["Accuracy vs t; pgd-linf: Linf ε = 0.1; pgd-l2: L2 ε = 0.5"]


def test_frontier_points_and_ssni_beside_them(results):
    s = summarize(read_results(results))
    points = frontier_points(s, "pgd-l2")
    assert [t for t, _, _ in points] == [10.0, 20.0, 30.0]  # constant@10, the baseline's t* 20, constant@30
    for t, clean, robust in points:
        method = "constant" if t == 20.0 else f"constant@{t:g}"
        assert clean == s.clean_accuracy[method].mean and robust == s.robust_accuracy[method]["pgd-l2"].mean
    lines = frontier_lines(s)
    assert lines[0].startswith("Frontier under pgd-linf, constant t (clean / robust %): t = 10: ")
    t_clean = s.mean_t["ssni-n"]["clean"]
    ts, clean, robust = (np.array(v) for v in zip(*points))
    expected = f"{np.interp(t_clean, ts, clean):.1f} / {np.interp(t_clean, ts, robust):.1f}"
    start = next(i for i, x in enumerate(lines) if x.startswith("Frontier under pgd-l2"))
    line = next(x for x in lines[start:] if x.startswith("  ssni-n:"))
    assert f"the constant frontier at t = {t_clean:.1f}: {expected}" in line
