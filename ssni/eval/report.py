"""From per-sample records to numbers: the summary (`--json`), the Markdown table and the plots of `ssni report`.

Accuracies are percentages. Per seed, accuracy = 100 · mean(correct) over the samples; the summary keeps mean ± std
over seeds (population std, numpy's default, as the paper's tables) and, as the uncertainty that matters for a
conclusion, a 95% bootstrap interval over images (`ssni.eval.stats`). Differences between a method and the
constant-t* baseline are paired (same images, same seeds). Detection: the AUROC of the score norm e(x) for clean
inputs against each attack's adversarial inputs, at the first seed (the attack seed of the reference protocol).
Score norms and t are averaged over every record of a kind (clean: attack "none"; adversarial: any other attack).

`ssni report` writes report.md (the results, per-seed accuracies, the full configuration of the defence and the
attacks, taken from the records header that `ssni eval` writes, and the plots), results.csv and results.tex (the
same accuracies for a spreadsheet or a paper) and the PNGs. The data each plot draws comes from a function of its
own (`t_histograms`, `accuracy_vs_t_series`), so tests check what is drawn.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ssni.atomic_files import atomic_output, write_text_atomic
from ssni.errors import SSNIUserError
from ssni.eval import stats
from ssni.eval.attacks import RANDOM_START, STEP_KINDS
from ssni.eval.presets import AttackSpec
from ssni.eval.records import CLEAN, ResultsLog
from ssni.eval.stats import Estimate

BASELINE = "constant"  # the method the paired differences are taken against
#: A derived attack: robust only when robust under both AutoAttack versions (DiffPure's reported number).
WORST_CASE = ("autoattack-worst", ("autoattack-rand", "autoattack-standard"))


@dataclass(frozen=True)
class Stat:
    """An accuracy: mean ± std over seeds, the per-seed values, and the 95% interval over images."""

    mean: float
    std: float
    per_seed: dict[int, float]
    ci: Estimate

    @classmethod
    def of(cls, correct: np.ndarray, seeds: list[int]) -> Stat:
        """correct: bool [N, S] (images × seeds, in `seeds` order)."""
        per_seed = 100.0 * correct.mean(axis=0)
        return cls(
            float(per_seed.mean()),
            float(per_seed.std()),
            dict(zip(seeds, map(float, per_seed))),
            stats.accuracy(correct),
        )

    def __str__(self) -> str:
        return f"{self.mean:.1f} ± {self.std:.1f} [{self.ci.low:.1f}, {self.ci.high:.1f}]"


@dataclass
class Summary:
    """Machine-readable results of an evaluation (what `ssni eval --json` prints)."""

    preset: str
    note: str | None
    seeds: list[int]
    num_samples: int
    methods: list[str]
    attacks: list[str]
    attack_protocol: dict[str, str]  # attack name → how it ran (L2 step form, BPDA schedule, budget)
    defence_config: dict[str, object]  # the defence's settings (`run_configuration`)
    attack_config: list[dict[str, object]]  # every attack's settings, one dict each (`run_configuration`)
    clean_accuracy: dict[str, Stat]
    robust_accuracy: dict[str, dict[str, Stat]]
    differences: dict[str, dict[str, Estimate]]  # method → kind ("clean" or an attack) → method − constant, in pp
    detection_auroc: dict[str, dict[str, Estimate]]  # method → attack → AUROC of e(x), clean vs adversarial
    reached: dict[str, dict[str, dict[str, float | None]]]  # method → attack → mean t and e of its adversarial inputs
    mean_t: dict[str, dict[str, float | None]]
    score_norm_clean_mean: float | None
    score_norm_adv_mean: float | None
    score_norm_adv_mean_by_attack: dict[str, float]
    score_norm_by_method: dict[str, dict[str, float | None]]
    network_calls: dict[str, int]
    samples_evaluated: dict[str, int]
    evaluations_per_image: dict[str, float]
    complete: bool

    def to_json(self) -> dict:
        out = asdict(self)
        out["accuracy_unit"] = "percent"
        return out


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _matrix(rows: dict[int, dict[int, bool]], seeds: list[int]) -> np.ndarray | None:
    """bool [N, S] of the images present under every seed (None when a seed has none)."""
    if any(not rows.get(s) for s in seeds):
        return None
    ids = sorted(set.intersection(*(set(rows[s]) for s in seeds)))
    return np.array([[rows[s][i] for s in seeds] for i in ids], dtype=bool) if ids else None


@dataclass
class _Tally:
    """The committed records of a results file, gathered by what the summary averages."""

    seeds: list[int]
    samples: set[int]
    # (method, attack) → seed → sample id → correct
    correct: dict[tuple[str, str], dict[int, dict[int, bool]]]
    t: dict[tuple[str, bool], list[float]]  # (method, adversarial?) → t
    norms_clean: list[float]
    norms_adv: dict[str, list[float]]  # attack → e
    norms_method: dict[tuple[str, bool], list[float]]  # (method, adversarial?) → e
    first_seed_norms: dict[tuple[str, str], list[float]]  # (method, attack) → e at the first seed
    reached: dict[tuple[str, str, str], list[float]]  # (method, attack, "t" | "e") → values

    @classmethod
    def of(cls, log: ResultsLog) -> _Tally:
        seeds = sorted({int(r["seed"]) for r in log.records})
        tally = cls(
            seeds,
            set(),
            defaultdict(lambda: defaultdict(dict)),
            defaultdict(list),
            [],
            defaultdict(list),
            defaultdict(list),
            defaultdict(list),
            defaultdict(list),
        )
        for r in log.records:
            method, attack, seed, adv = r["method"], r["attack"], int(r["seed"]), r["attack"] != CLEAN
            tally.correct[(method, attack)][seed][int(r["sample_id"])] = bool(r["correct"])
            tally.samples.add(int(r["sample_id"]))
            if r.get("t") is not None:
                tally.t[(method, adv)].append(float(r["t"]))
                tally.reached[(method, attack, "t")].append(float(r["t"]))
            if r.get("score_norm") is not None:
                e = float(r["score_norm"])
                tally.reached[(method, attack, "e")].append(e)
                (tally.norms_adv[attack] if adv else tally.norms_clean).append(e)
                tally.norms_method[(method, adv)].append(e)
                if seed == seeds[0]:
                    tally.first_seed_norms[(method, attack)].append(e)
        return tally


def _correct_matrices(tally: _Tally, methods: list[str], attacks: list[str]) -> dict[tuple[str, str], np.ndarray]:
    """(method, attack) → bool [N, S]; adds the AutoAttack worst case (and its name to `attacks`) where a method
    ran both versions on the same images."""
    matrices = {key: m for key, rows in tally.correct.items() if (m := _matrix(rows, tally.seeds)) is not None}
    worst, parts = WORST_CASE
    for m in methods:
        pair = [matrices.get((m, a)) for a in parts]
        if all(p is not None for p in pair) and pair[0].shape == pair[1].shape:
            matrices[(m, worst)] = pair[0] & pair[1]
            if worst not in attacks:
                attacks.append(worst)
    return matrices


def _differences(matrices, methods: list[str], attacks: list[str]) -> dict[str, dict[str, Estimate]]:
    """method → "clean" or attack → paired difference to the constant baseline, in percentage points."""
    differences: dict[str, dict[str, Estimate]] = {}
    for m in methods:
        if m == BASELINE:
            continue
        kinds = {}
        for kind in (CLEAN, *attacks):
            a, b = matrices.get((m, kind)), matrices.get((BASELINE, kind))
            if a is not None and b is not None and a.shape == b.shape:
                kinds["clean" if kind == CLEAN else kind] = stats.paired_difference(a, b)
        if kinds:
            differences[m] = kinds
    return differences


def _detection(tally: _Tally, methods: list[str], attacks: list[str]) -> dict[str, dict[str, Estimate]]:
    """method → attack → AUROC of e(x), clean against that attack's inputs, at the first seed."""
    norms = tally.first_seed_norms
    detection = {
        m: {
            a: stats.auroc(norms[(m, a)], norms[(m, CLEAN)])
            for a in attacks
            if norms.get((m, a)) and norms.get((m, CLEAN))
        }
        for m in methods
    }
    return {m: d for m, d in detection.items() if d}


def _work(log: ResultsLog) -> tuple[dict[str, int], dict[str, int], dict[str, float]]:
    """Network calls and samples evaluated per method/attack (with totals), and network evaluations per clean image."""
    calls: dict[str, int] = defaultdict(int)
    evaluated: dict[str, int] = defaultdict(int)
    clean_groups: dict[str, int] = defaultdict(int)
    for c in log.commits:
        calls[f"{c['method']}/{c['attack']}"] += int(c.get("network_calls", 0))
        evaluated[f"{c['method']}/{c['attack']}"] += int(c.get("samples_evaluated", 0))
        if c["attack"] == CLEAN:
            clean_groups[c["method"]] += int(c["n"])
    return (
        {"total": sum(calls.values()), **dict(sorted(calls.items()))},
        {"total": sum(evaluated.values()), **dict(sorted(evaluated.items()))},
        {m: evaluated[f"{m}/{CLEAN}"] / n for m, n in clean_groups.items()},
    )


def summarize(log: ResultsLog) -> Summary:
    """Aggregate the committed records of a results file."""
    config = log.header.get("config", {})
    tally = _Tally.of(log)
    methods = list(dict.fromkeys(m for m, _ in tally.correct))
    attacks = list(dict.fromkeys(a for _, a in tally.correct if a != CLEAN))
    matrices = _correct_matrices(tally, methods, attacks)

    def stat(method: str, attack: str) -> Stat | None:
        return Stat.of(matrices[(method, attack)], tally.seeds) if (method, attack) in matrices else None

    def by_kind(values: dict[tuple[str, bool], list[float]], method: str) -> dict[str, float | None]:
        return {"clean": _mean(values[(method, False)]), "adversarial": _mean(values[(method, True)])}

    calls, evaluated, per_image = _work(log)
    expected = config.get("num_groups")
    specs = [AttackSpec.from_record(a) for a in config.get("preset", {}).get("attacks", [])]
    defence_config, attack_config = run_configuration(log.header)
    reached = tally.reached
    return Summary(
        preset=config.get("preset", {}).get("name", "?"),
        note=config.get("preset", {}).get("demo_note"),
        seeds=tally.seeds,
        num_samples=len(tally.samples),
        methods=methods,
        attacks=attacks,
        attack_protocol={a.name: a.describe() for a in specs if a.name in attacks},
        defence_config=defence_config,
        attack_config=[a for a in attack_config if a["attack"] in attacks],
        clean_accuracy={m: s for m in methods if (s := stat(m, CLEAN)) is not None},
        robust_accuracy={m: {a: s for a in attacks if (s := stat(m, a)) is not None} for m in methods},
        differences=_differences(matrices, methods, attacks),
        detection_auroc=_detection(tally, methods, attacks),
        reached={
            m: {
                a: {"mean_t": _mean(reached[(m, a, "t")]), "mean_e": _mean(reached[(m, a, "e")])}
                for a in attacks
                if reached.get((m, a, "t"))
            }
            for m in methods
        },
        mean_t={m: by_kind(tally.t, m) for m in methods},
        score_norm_clean_mean=_mean(tally.norms_clean),
        score_norm_adv_mean=_mean([v for vs in tally.norms_adv.values() for v in vs]),
        score_norm_adv_mean_by_attack={a: float(np.mean(v)) for a, v in tally.norms_adv.items()},
        score_norm_by_method={m: by_kind(tally.norms_method, m) for m in methods},
        network_calls=calls,
        samples_evaluated=evaluated,
        evaluations_per_image=per_image,
        complete=expected is None or len(log.commits) == expected,
    )


def markdown_table(summary: Summary) -> str:
    """Accuracy with its 95% interval, mean t and mean score norm per method (one row per method), then the paired
    differences against the constant-t* baseline and the detection AUROC of the score norm."""
    head = [
        "method",
        "clean acc. (%)",
        *[f"{a} robust acc. (%)" for a in summary.attacks],
        "mean t clean / adv",
        "mean e clean / adv",
        "net evals/image (clean)",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in summary.methods:
        robust = summary.robust_accuracy.get(m, {})
        ts = summary.mean_t.get(m, {})
        norms = summary.score_norm_by_method.get(m, {})
        cells = [
            m,
            str(summary.clean_accuracy.get(m, "–")),
            *[str(robust.get(a, "–")) for a in summary.attacks],
            " / ".join(f"{ts[k]:.1f}" if ts.get(k) is not None else "–" for k in ("clean", "adversarial")),
            " / ".join(_cell(norms.get(k)) for k in ("clean", "adversarial")),
            f"{summary.evaluations_per_image[m]:.1f}" if m in summary.evaluations_per_image else "–",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    seeds = ", ".join(str(s) for s in summary.seeds)
    lines += [
        "",
        f"{summary.num_samples} images, seeds {seeds}: accuracy = mean ± std over seeds [95% bootstrap interval "
        "over images].",
    ]
    if any(summary.reached.get(m) for m in summary.methods) and len(summary.attacks) > 1:
        lines += ["", "| method | " + " | ".join(f"{a}: mean t / e reached" for a in summary.attacks) + " |"]
        lines.append("|" + "---|" * (len(summary.attacks) + 1))
        for m in summary.methods:
            got = summary.reached.get(m, {})
            cells = [
                " / ".join(_cell(got.get(a, {}).get(k)) for k in ("mean_t", "mean_e")) if a in got else "–"
                for a in summary.attacks
            ]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    for m, kinds in summary.differences.items():
        parts = ", ".join(f"{k} {_signed(e)}" for k, e in kinds.items())
        lines.append(f"{m} − {BASELINE} (paired, percentage points): {parts}.")
    lines += frontier_lines(summary)
    for m, by_attack in summary.detection_auroc.items():
        parts = ", ".join(f"{a} {e.format(3)}" for a, e in by_attack.items())
        lines.append(f"AUROC of e(x), clean vs adversarial ({m}, seed {summary.seeds[0]}): {parts}.")
    lines.append(_norm_line(summary))
    lines += [f"Attack {text}." for text in summary.attack_protocol.values()]
    if summary.note:
        lines.append(f"Note: {summary.note}.")
    if not summary.complete:
        lines.append("Warning: the run is not complete; these numbers cover the groups finished so far.")
    return "\n".join(lines) + "\n"


def frontier_points(summary: Summary, attack: str) -> list[tuple[float, float, float]]:
    """The constant purifier's trade-off frontier under `attack`: (t, clean %, robust %) per constant method with
    both accuracies, sorted by t."""
    points = []
    for m in summary.methods:
        t = _constant_t(m, summary)
        robust = summary.robust_accuracy.get(m, {}).get(attack)
        if t is not None and m in summary.clean_accuracy and robust is not None:
            points.append((t, summary.clean_accuracy[m].mean, robust.mean))
    return sorted(points)


def frontier_lines(summary: Summary) -> list[str]:
    """Per attack, with two or more constant t: the frontier's points, then each SSNI method beside the frontier
    read at SSNI's mean clean t (linear between the constant points): does sample-specific t beat a constant t
    that spends as much noise on clean inputs?"""
    lines = []
    for attack in summary.attacks:
        points = frontier_points(summary, attack)
        if len(points) < 2:
            continue
        ts, clean, robust = (np.array(v) for v in zip(*points))
        parts = ", ".join(f"t = {t:g}: {c:.1f} / {r:.1f}" for t, c, r in points)
        lines.append(f"Frontier under {attack}, constant t (clean / robust %): {parts}.")
        for m in summary.methods:
            t_clean = summary.mean_t.get(m, {}).get("clean")
            robust_m = summary.robust_accuracy.get(m, {}).get(attack)
            if not m.startswith("ssni") or t_clean is None or robust_m is None:
                continue
            outside = "" if ts[0] <= t_clean <= ts[-1] else " (outside the swept t: its nearest point)"
            lines.append(
                f"  {m}: {summary.clean_accuracy[m].mean:.1f} / {robust_m.mean:.1f} at mean clean t {t_clean:.1f} "
                f"(adversarial t {summary.mean_t[m].get('adversarial') or 0:.1f}); the constant frontier at t = "
                f"{t_clean:.1f}: {np.interp(t_clean, ts, clean):.1f} / {np.interp(t_clean, ts, robust):.1f}{outside}."
            )
    return lines


def _signed(e: Estimate) -> str:
    return f"{e.value:+.1f} [{e.low:+.1f}, {e.high:+.1f}]"


def _norm_line(summary: Summary) -> str:
    clean, adv = summary.score_norm_clean_mean, summary.score_norm_adv_mean
    if clean is None or adv is None:
        return "Score norms: not available."
    return f"Mean EPS score norm: clean {clean:.2f}, adversarial {adv:.2f} (ratio {adv / clean:.2f})."


def run_configuration(header: dict) -> tuple[dict[str, object], list[dict[str, object]]]:
    """(defence, attacks): the settings a records header stores, as plain values (None where the header predates
    a field). defence: host, t* per stage, reverse steps per stage ("every index" when n ≥ t*), votes, K (EPS
    levels), τ (SSNI-N), b (SSNI's bias), seeds, how attacks are seeded. attacks: per attack its kind, norm, ε,
    step (None for kinds that set their own), iterations, EOT, surrogate reverse steps of its gradients, random
    start, L2 step form and BPDA forward schedule."""
    config = header.get("config", {})
    preset = config.get("preset", {})
    purifier = preset.get("purifier", {})
    stages = [tuple(s) for s in purifier.get("stages", [])]
    surrogate = "+".join(str(n) for _, n in purifier.get("surrogate_stages", [])) or None
    tau = config.get("identities", {}).get("calibration_tau")
    defence = {
        "host": purifier.get("host"),
        "t_star": "+".join(str(t) for t, _ in stages) or None,
        "steps": "+".join("every index" if n >= t else str(n) for t, n in stages) or None,
        "votes": purifier.get("votes"),
        "num_levels": preset.get("num_levels"),
        "tau": None if tau is None else float(tau),
        "bias": preset.get("bias"),
        "seeds": preset.get("seeds"),
        "attack_seeds": preset.get("attack_seeds"),
    }
    attacks = []
    for record in preset.get("attacks", []):
        spec = AttackSpec.from_record(record)
        straight_through = spec.is_bpda and spec.bpda_schedule == "defence"
        attacks.append(
            {
                "attack": spec.name,
                "kind": spec.kind,
                "norm": spec.norm,
                "eps": spec.eps,
                "step_size": spec.step_size if spec.kind in STEP_KINDS else None,
                "iterations": spec.iterations,
                "eot": spec.eot,
                "surrogate_steps": None if straight_through else surrogate,
                "random_start": RANDOM_START.get(spec.kind),
                "l2_step": spec.l2_step,
                "bpda_schedule": spec.bpda_schedule,
            }
        )
    return defence, attacks


def accuracy_rows(summary: Summary) -> list[dict[str, object]]:
    """One row per (method, inputs): mean and std over seeds, the 95% interval over images and every seed's
    accuracy (in %): what the per-seed table, results.csv and results.tex show."""
    rows = []
    for m in summary.methods:
        stats_of = {CLEAN: summary.clean_accuracy.get(m), **summary.robust_accuracy.get(m, {})}
        for inputs, st in stats_of.items():
            if st is None:
                continue
            rows.append(
                {
                    "method": m,
                    "inputs": "clean" if inputs == CLEAN else inputs,
                    "mean": st.mean,
                    "std_over_seeds": st.std,
                    "ci_low": st.ci.low,
                    "ci_high": st.ci.high,
                    **{f"seed_{seed}": st.per_seed.get(seed) for seed in summary.seeds},
                    "num_images": summary.num_samples,
                }
            )
    return rows


def per_seed_table(summary: Summary) -> str:
    """Markdown: every seed's accuracy beside the mean ± std over seeds and the 95% interval over images."""
    head = ["method", "inputs", *[f"seed {s}" for s in summary.seeds], "mean ± std (seeds)", "95% CI (images)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in accuracy_rows(summary):
        seeds = [_fmt_pct(r[f"seed_{s}"]) for s in summary.seeds]
        cells = [
            r["method"],
            r["inputs"],
            *seeds,
            f"{r['mean']:.1f} ± {r['std_over_seeds']:.1f}",
            f"[{r['ci_low']:.1f}, {r['ci_high']:.1f}]",
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"


def configuration_markdown(summary: Summary) -> str:
    """Markdown: the defence's settings in one list and the attacks' in a table (`run_configuration`)."""
    d = summary.defence_config
    seeds = list(d["seeds"] or summary.seeds)  # a header-only file may name none
    shared = {
        "shared": f"made once at seed {seeds[0] if seeds else '–'}, evaluated under every seed",
        "per-seed": "made anew at every seed",
    }.get(d["attack_seeds"], "–")
    lines = [
        f"- Defence: host {_cell(d['host'])}, t* = {_cell(d['t_star'])} (reverse steps: {_cell(d['steps'])}), "
        f"{_cell(d['votes'])} vote(s) per input.",
        f"- SSNI: K = {_cell(d['num_levels'])} EPS score levels, τ = {_cell(d['tau'])} (SSNI-N), "
        f"b = {_cell(d['bias'])}.",
        f"- Seeds {', '.join(map(str, seeds)) or '–'}; adversarial examples {shared}; {summary.num_samples} images.",
        "",
    ]
    head = [
        "attack",
        "kind",
        "norm",
        "ε",
        "step",
        "iterations",
        "EOT",
        "surrogate steps",
        "random start",
        "L2 step",
        "BPDA forward",
    ]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for a in summary.attack_config:
        step = "own (AutoAttack)" if a["step_size"] is None else _cell(a["step_size"])
        surrogate = "straight-through" if a["surrogate_steps"] is None else a["surrogate_steps"]
        start = {True: "yes", False: "no (x)", None: "–"}[a["random_start"]]
        cells = [
            a["attack"],
            a["kind"],
            a["norm"],
            _cell(a["eps"]),
            step,
            a["iterations"],
            a["eot"],
            surrogate,
            start,
            _cell(a["l2_step"]),
            _cell(a["bpda_schedule"]),
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(lines) + "\n"


def results_csv(summary: Summary) -> str:
    """`accuracy_rows` as CSV (one line per method and inputs; accuracies in %)."""
    rows = accuracy_rows(summary)
    buffer = io.StringIO(newline="")
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def results_latex(summary: Summary) -> str:
    """A booktabs tabular: one row per method, one column per inputs (clean, then each attack), each cell
    mean ± std over seeds with the 95% interval over images below it in small type."""
    kinds = ["clean", *summary.attacks]
    by_cell = {(r["method"], r["inputs"]): r for r in accuracy_rows(summary)}
    lines = [
        "% ssni report: accuracy (%), mean ± std over seeds, [95% bootstrap interval over images]; needs booktabs",
        "\\begin{tabular}{l" + "c" * len(kinds) + "}",
        "\\toprule",
        "method & " + " & ".join(_latex_text(k) for k in kinds) + " \\\\",
        "\\midrule",
    ]
    for m in summary.methods:
        cells = []
        for k in kinds:
            r = by_cell.get((m, k))
            cells.append(
                "--"
                if r is None
                else f"${r['mean']:.1f} \\pm {r['std_over_seeds']:.1f}$ {{\\scriptsize [{r['ci_low']:.1f}, "
                f"{r['ci_high']:.1f}]}}"
            )
        lines.append(f"{_latex_text(m)} & " + " & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(lines) + "\n"


def _latex_text(text: str) -> str:
    return text.replace("_", "\\_").replace("&", "\\&").replace("%", "\\%")


def _cell(value) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _fmt_pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _attack_eps(log: ResultsLog) -> dict[str, str]:
    """attack name → "ε = …" (with its norm) from the records' configuration."""
    attacks = log.header.get("config", {}).get("preset", {}).get("attacks", [])
    return {a["name"]: f"{a['norm']} ε = {a['eps']:.4g}" for a in attacks}


def _constant_t(method: str, summary: Summary) -> float | None:
    """The t of a constant method ("constant@t", or the baseline's own t* from its records)."""
    if method.startswith("constant@"):
        return float(method.split("@", 1)[1])
    return summary.mean_t.get(method, {}).get("clean") if method == BASELINE else None


def t_histograms(log: ResultsLog, summary: Summary) -> dict[str, dict[str, np.ndarray]]:
    """The t distribution plot's data, per SSNI method: "edges" (float [B + 1], one unit-wide bin per integer t,
    centred on it, over the range clean and adversarial t share) and the counts (int [B]) of "clean" and
    "adversarial" records in them."""
    out = {}
    for m in (m for m in summary.methods if not m.startswith("constant")):
        groups = {
            label: np.array([int(r["t"]) for r in log.records if r["method"] == m and (r["attack"] != CLEAN) == adv])
            for adv, label in ((False, "clean"), (True, "adversarial"))
        }
        values = np.concatenate(list(groups.values()))
        if values.size == 0:
            continue
        edges = np.arange(values.min(), values.max() + 2) - 0.5
        out[m] = {"edges": edges, **{label: np.histogram(ts, bins=edges)[0] for label, ts in groups.items()}}
    return out


@dataclass(frozen=True)
class Series:
    """One series of the accuracy-vs-t plot: points (t, accuracy in %) with asymmetric error bars yerr [2, n]
    from the 95% intervals over images. `inputs` is "clean" or an attack; `method` "constant" for the sweep."""

    method: str
    inputs: str
    t: np.ndarray
    accuracy: np.ndarray
    yerr: np.ndarray

    @property
    def label(self) -> str:
        where = "constant t" if self.method == BASELINE else f"{self.method} at its mean t"
        return f"{where}, {self.inputs}"


def accuracy_vs_t_series(summary: Summary) -> list[Series]:
    """The accuracy-vs-t plot's data: per inputs (clean, then each attack) the constant-t sweep, sorted by t, and
    each SSNI method as one point at the mean t it gave those inputs (clean t for clean accuracy, the t of the
    attack's adversarial examples for its robust accuracy)."""
    series = []
    kinds = [("clean", summary.clean_accuracy)] + [
        (a, {m: summary.robust_accuracy[m][a] for m in summary.methods if a in summary.robust_accuracy.get(m, {})})
        for a in summary.attacks
    ]
    for inputs, acc in kinds:
        const = sorted((t, acc[m]) for m in acc if (t := _constant_t(m, summary)) is not None)
        if const:
            stats_ = [st for _, st in const]
            series.append(Series(BASELINE, inputs, np.array([t for t, _ in const]), _means(stats_), _yerr(stats_)))
        for m in acc:
            if m.startswith("constant"):
                continue
            if inputs == "clean":
                t_m = summary.mean_t.get(m, {}).get("clean")
            else:
                t_m = summary.reached.get(m, {}).get(inputs, {}).get("mean_t")
            if t_m is not None:
                series.append(Series(m, inputs, np.array([t_m]), _means([acc[m]]), _yerr([acc[m]])))
    return series


def make_plots(log: ResultsLog, out_dir: str | Path, summary: Summary | None = None) -> list[Path]:
    """Write score-norm histograms, the distribution of t, accuracy vs t and the clean/robust trade-off as PNGs;
    return the paths. Every legend sits outside its axes, so it never covers data. `summary`: `summarize(log)`,
    when the caller has it already."""
    try:
        import matplotlib
    except ImportError:
        raise SSNIUserError("the plots of `ssni report` need matplotlib: pip install matplotlib") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summary or summarize(log)
    plots = (_plot_score_norms, _plot_t_distribution, _plot_accuracy_vs_t, _plot_tradeoff)
    return [plot(plt, log, summary, out_dir) for plot in plots]


def _legend_outside(ax) -> None:
    """The axes' legend to the right of it, outside the plotting area."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _plot_score_norms(plt, log: ResultsLog, summary: Summary, out_dir: Path) -> Path:
    """Histograms of e(x): clean vs each attack (each norm is the defended input's own)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    by_kind: dict[str, list[float]] = defaultdict(list)
    for r in log.records:
        if r.get("score_norm") is not None:
            by_kind["clean" if r["attack"] == CLEAN else r["attack"]].append(float(r["score_norm"]))
    if by_kind:
        allv = np.concatenate([np.asarray(v) for v in by_kind.values()])
        bins = np.linspace(allv.min(), allv.max(), 40)
        for kind, values in by_kind.items():
            ax.hist(values, bins=bins, alpha=0.5, density=True, label=f"{kind} (mean {np.mean(values):.4g})")
        _legend_outside(ax)
    ax.set_xlabel("EPS score norm e(x)")
    ax.set_ylabel("density")
    ax.set_title("Score norms: clean vs adversarial")
    return _save(fig, out_dir / "score_norms.png")


def _plot_t_distribution(plt, log: ResultsLog, summary: Summary, out_dir: Path) -> Path:
    """t per SSNI method, clean vs adversarial, in integer bins over the range both share (`t_histograms`)."""
    hists = t_histograms(log, summary)
    fig, axes = plt.subplots(1, max(1, len(hists)), figsize=(6.5 * max(1, len(hists)), 4), squeeze=False)
    for ax, (m, h) in zip(axes[0], hists.items()):
        centres = (h["edges"][:-1] + h["edges"][1:]) / 2
        for label in ("clean", "adversarial"):
            counts = h[label]
            if counts.sum():
                mean = float((centres * counts).sum() / counts.sum())
                ax.bar(centres, counts, width=1.0, alpha=0.6, label=f"{label} (mean {mean:.1f})")
        _legend_outside(ax)
        ax.set_title(f"t assigned by {m}")
        ax.set_xlabel("t")
        ax.set_ylabel("samples")
    return _save(fig, out_dir / "t_distribution.png")


def _plot_accuracy_vs_t(plt, log: ResultsLog, summary: Summary, out_dir: Path) -> Path:
    """Accuracy vs t (`accuracy_vs_t_series`): the constant-t sweep as lines, SSNI as markers at its mean t; one
    colour per inputs, one marker per SSNI method, 95% intervals as error bars."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    markers = {"ssni-n": "*", "ssni-l": "D"}
    eps = _attack_eps(log)
    inputs = ["clean", *summary.attacks]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for s in accuracy_vs_t_series(summary):
        color = colors[inputs.index(s.inputs) % len(colors)]
        fmt = "o-" if s.method == BASELINE else markers.get(s.method, "s")
        ms = 12 if fmt == "*" else 7
        ax.errorbar(s.t, s.accuracy, yerr=s.yerr, fmt=fmt, ms=ms, color=color, capsize=3, label=s.label)
    ax.set_xlabel("t (constant); SSNI at the mean t it gave those inputs")
    ax.set_ylabel("accuracy (%), 95% interval over images")
    ax.set_title("Accuracy vs t; " + "; ".join(f"{a}: {e}" for a, e in eps.items() if a in summary.attacks))
    _legend_outside(ax)
    return _save(fig, out_dir / "accuracy_vs_t.png")


def _plot_tradeoff(plt, log: ResultsLog, summary: Summary, out_dir: Path) -> Path:
    """Clean vs robust accuracy per attack: the constant-t* frontier and SSNI's points."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    eps = _attack_eps(log)
    fig, axes = plt.subplots(
        1, max(1, len(summary.attacks)), figsize=(7 * max(1, len(summary.attacks)), 4.5), squeeze=False
    )
    for ax, a in zip(axes[0], summary.attacks):
        points = [
            (m, summary.clean_accuracy[m], summary.robust_accuracy[m][a])
            for m in summary.methods
            if m in summary.clean_accuracy and a in summary.robust_accuracy.get(m, {})
        ]
        const = sorted(
            (p for p in points if _constant_t(p[0], summary) is not None), key=lambda p: _constant_t(p[0], summary)
        )
        if const:
            ax.errorbar(
                [c.mean for _, c, _ in const],
                [r.mean for _, _, r in const],
                xerr=_yerr([c for _, c, _ in const]),
                yerr=_yerr([r for _, _, r in const]),
                fmt="o-",
                color=colors[0],
                capsize=3,
                label="constant t*",
            )
            for m, c, r in const:
                ax.annotate(
                    f"t={_constant_t(m, summary):g}",
                    (c.mean, r.mean),
                    fontsize=7,
                    xytext=(4, -10),
                    textcoords="offset points",
                )
        for (m, c, r), color in zip([p for p in points if _constant_t(p[0], summary) is None], colors[1:]):
            ax.errorbar(
                [c.mean], [r.mean], xerr=_yerr([c]), yerr=_yerr([r]), fmt="*", ms=13, color=color, capsize=3, label=m
            )
        ax.set_xlabel("clean accuracy (%)")
        ax.set_ylabel(f"{a} robust accuracy (%)")
        ax.set_title(f"Trade-off under {a} ({eps.get(a, '')})")
        _legend_outside(ax)
    return _save(fig, out_dir / "tradeoff.png")


def _means(values: list[Stat]) -> np.ndarray:
    return np.array([v.mean for v in values])


def _yerr(values: list[Stat]) -> np.ndarray:
    """Asymmetric error bars [2, n] from the 95% intervals."""
    return np.array([[v.mean - v.ci.low for v in values], [v.ci.high - v.mean for v in values]]).clip(min=0)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def write_report(log: ResultsLog, out_dir: str | Path, summary: Summary | None = None) -> Path:
    """report.md (results, per-seed accuracies, configuration, plots), results.csv, results.tex and the PNGs in
    `out_dir`; returns the Markdown path. `summary`: `summarize(log)`, when the caller has it already."""
    out_dir = Path(out_dir)
    summary = summary or summarize(log)
    plots = make_plots(log, out_dir, summary)
    write_text_atomic(out_dir / "results.csv", results_csv(summary))
    write_text_atomic(out_dir / "results.tex", results_latex(summary))
    text = (
        f"# ssni evaluation: {summary.preset}\n\n## Results\n\n"
        + markdown_table(summary)
        + "\n## Accuracy per seed (%)\n\n"
        + per_seed_table(summary)
        + "\nThe same numbers: [results.csv](results.csv), [results.tex](results.tex) (LaTeX, booktabs).\n"
        + "\n## Configuration\n\n"
        + configuration_markdown(summary)
        + "\n## Plots\n\n"
        + "".join(f"![{p.stem}]({p.name})\n\n" for p in plots)
    )
    return write_text_atomic(out_dir / "report.md", text)
