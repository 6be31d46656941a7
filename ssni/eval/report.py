"""From per-sample records to numbers: the summary (`--json`), the Markdown table and the plots of `ssni report`.

Accuracies are percentages. Per seed, accuracy = 100 · mean(correct) over the samples; the summary keeps mean ± std
over seeds (population std, numpy's default, as the paper's tables) and, as the uncertainty that matters for a
conclusion, a 95% bootstrap interval over images (`ssni.eval.stats`). Differences between a method and the
constant-t* baseline are paired (same images, same seeds). Detection: the AUROC of the score norm e(x) for clean
inputs against each attack's adversarial inputs, at the first seed (the attack seed of the reference protocol).
Score norms and t are averaged over every record of a kind (clean: attack "none"; adversarial: any other attack).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ssni.atomic_files import atomic_output, write_text_atomic
from ssni.errors import SSNIUserError
from ssni.eval import stats
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
        return f"{self.mean:.1f} [{self.ci.low:.1f}, {self.ci.high:.1f}]"


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


def summarize(log: ResultsLog) -> Summary:
    """Aggregate the committed records of a results file."""
    config = log.header.get("config", {})
    correct: dict[tuple[str, str], dict[int, dict[int, bool]]] = defaultdict(lambda: defaultdict(dict))
    t_values: dict[tuple[str, bool], list[float]] = defaultdict(list)
    norms_clean: list[float] = []
    norms_adv: dict[str, list[float]] = defaultdict(list)
    norms_method: dict[tuple[str, bool], list[float]] = defaultdict(list)
    first_seed_norms: dict[tuple[str, str], list[float]] = defaultdict(list)
    by_attack: dict[tuple[str, str, str], list[float]] = defaultdict(list)  # (method, attack, "t" | "e")
    samples: set[int] = set()
    seeds = sorted({int(r["seed"]) for r in log.records})
    for r in log.records:
        adv = r["attack"] != CLEAN
        correct[(r["method"], r["attack"])][int(r["seed"])][int(r["sample_id"])] = bool(r["correct"])
        if r.get("t") is not None:
            t_values[(r["method"], adv)].append(float(r["t"]))
            by_attack[(r["method"], r["attack"], "t")].append(float(r["t"]))
        if r.get("score_norm") is not None:
            by_attack[(r["method"], r["attack"], "e")].append(float(r["score_norm"]))
        if r.get("score_norm") is not None:
            (norms_adv[r["attack"]] if adv else norms_clean).append(float(r["score_norm"]))
            norms_method[(r["method"], adv)].append(float(r["score_norm"]))
            if int(r["seed"]) == seeds[0]:
                first_seed_norms[(r["method"], r["attack"])].append(float(r["score_norm"]))
        samples.add(int(r["sample_id"]))
    methods = list(dict.fromkeys(m for m, _ in correct))
    attacks = list(dict.fromkeys(a for _, a in correct if a != CLEAN))
    matrices = {key: m for key, rows in correct.items() if (m := _matrix(rows, seeds)) is not None}
    worst, parts = WORST_CASE
    for m in methods:
        pair = [matrices.get((m, a)) for a in parts]
        if all(p is not None for p in pair) and pair[0].shape == pair[1].shape:
            matrices[(m, worst)] = pair[0] & pair[1]
            if worst not in attacks:
                attacks.append(worst)

    def stat(method: str, attack: str) -> Stat | None:
        return Stat.of(matrices[(method, attack)], seeds) if (method, attack) in matrices else None

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
    detection = {
        m: {
            a: stats.auroc(first_seed_norms[(m, a)], first_seed_norms[(m, CLEAN)])
            for a in attacks
            if first_seed_norms.get((m, a)) and first_seed_norms.get((m, CLEAN))
        }
        for m in methods
    }

    calls: dict[str, int] = defaultdict(int)
    evaluated: dict[str, int] = defaultdict(int)
    clean_groups: dict[str, int] = defaultdict(int)
    for c in log.commits:
        calls[f"{c['method']}/{c['attack']}"] += int(c.get("network_calls", 0))
        evaluated[f"{c['method']}/{c['attack']}"] += int(c.get("samples_evaluated", 0))
        if c["attack"] == CLEAN:
            clean_groups[c["method"]] += int(c["n"])
    expected = config.get("num_groups")
    specs = [AttackSpec.from_record(a) for a in config.get("preset", {}).get("attacks", [])]
    return Summary(
        preset=config.get("preset", {}).get("name", "?"),
        note=config.get("preset", {}).get("demo_note"),
        seeds=seeds,
        num_samples=len(samples),
        methods=methods,
        attacks=attacks,
        attack_protocol={a.name: a.describe() for a in specs if a.name in attacks},
        clean_accuracy={m: s for m in methods if (s := stat(m, CLEAN)) is not None},
        robust_accuracy={m: {a: s for a in attacks if (s := stat(m, a)) is not None} for m in methods},
        differences=differences,
        detection_auroc={m: d for m, d in detection.items() if d},
        reached={
            m: {
                a: {"mean_t": _mean(by_attack[(m, a, "t")]), "mean_e": _mean(by_attack[(m, a, "e")])}
                for a in attacks
                if by_attack.get((m, a, "t"))
            }
            for m in methods
        },
        mean_t={m: {"clean": _mean(t_values[(m, False)]), "adversarial": _mean(t_values[(m, True)])} for m in methods},
        score_norm_clean_mean=_mean(norms_clean),
        score_norm_adv_mean=_mean([v for vs in norms_adv.values() for v in vs]),
        score_norm_adv_mean_by_attack={a: float(np.mean(v)) for a, v in norms_adv.items()},
        score_norm_by_method={
            m: {"clean": _mean(norms_method[(m, False)]), "adversarial": _mean(norms_method[(m, True)])}
            for m in methods
        },
        network_calls={"total": sum(calls.values()), **dict(sorted(calls.items()))},
        samples_evaluated={"total": sum(evaluated.values()), **dict(sorted(evaluated.items()))},
        evaluations_per_image={m: evaluated[f"{m}/{CLEAN}"] / n for m, n in clean_groups.items()},
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
            " / ".join(_fmt(norms.get(k)) for k in ("clean", "adversarial")),
            f"{summary.evaluations_per_image[m]:.1f}" if m in summary.evaluations_per_image else "–",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    seeds = ", ".join(str(s) for s in summary.seeds)
    lines += [
        "",
        f"{summary.num_samples} images, seeds {seeds}: accuracy = mean over images and seeds, [95% bootstrap "
        "interval over images].",
    ]
    if any(summary.reached.get(m) for m in summary.methods) and len(summary.attacks) > 1:
        lines += ["", "| method | " + " | ".join(f"{a}: mean t / e reached" for a in summary.attacks) + " |"]
        lines.append("|" + "---|" * (len(summary.attacks) + 1))
        for m in summary.methods:
            got = summary.reached.get(m, {})
            cells = [
                " / ".join(_fmt(got.get(a, {}).get(k)) for k in ("mean_t", "mean_e")) if a in got else "–"
                for a in summary.attacks
            ]
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    for m, kinds in summary.differences.items():
        parts = ", ".join(f"{k} {_signed(e)}" for k, e in kinds.items())
        lines.append(f"{m} − {BASELINE} (paired, percentage points): {parts}.")
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


def _signed(e: Estimate) -> str:
    return f"{e.value:+.1f} [{e.low:+.1f}, {e.high:+.1f}]"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4g}"


def _norm_line(summary: Summary) -> str:
    clean, adv = summary.score_norm_clean_mean, summary.score_norm_adv_mean
    if clean is None or adv is None:
        return "Score norms: not available."
    return f"Mean EPS score norm: clean {clean:.2f}, adversarial {adv:.2f} (ratio {adv / clean:.2f})."


def _attack_eps(log: ResultsLog) -> dict[str, str]:
    """attack name → "ε = …" (with its norm) from the records' configuration."""
    attacks = log.header.get("config", {}).get("preset", {}).get("attacks", [])
    return {a["name"]: f"{a['norm']} ε = {a['eps']:.4g}" for a in attacks}


def _constant_t(method: str, summary: Summary) -> float | None:
    """The t of a constant method ("constant@t", or the baseline's own t* from its records)."""
    if method.startswith("constant@"):
        return float(method.split("@", 1)[1])
    return summary.mean_t.get(method, {}).get("clean") if method == BASELINE else None


def make_plots(log: ResultsLog, out_dir: str | Path) -> list[Path]:
    """Write score-norm histograms, the distribution of t, accuracy vs t and the clean/robust trade-off as PNGs;
    return the paths."""
    try:
        import matplotlib
    except ImportError:
        raise SSNIUserError("the plots of `ssni report` need matplotlib: pip install matplotlib") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(log)
    plots = (_plot_score_norms, _plot_t_distribution, _plot_accuracy_vs_t, _plot_tradeoff)
    return [plot(plt, log, summary, out_dir) for plot in plots]


def _plot_score_norms(plt, log: ResultsLog, summary: Summary, out_dir: Path) -> Path:
    """Histograms of e(x): clean vs each attack (each norm is the defended input's own)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    by_kind: dict[str, list[float]] = defaultdict(list)
    for r in log.records:
        if r.get("score_norm") is not None:
            by_kind["clean" if r["attack"] == CLEAN else r["attack"]].append(float(r["score_norm"]))
    if by_kind:
        allv = np.concatenate([np.asarray(v) for v in by_kind.values()])
        bins = np.linspace(allv.min(), allv.max(), 40)
        for kind, values in by_kind.items():
            ax.hist(values, bins=bins, alpha=0.5, density=True, label=f"{kind} (mean {np.mean(values):.4g})")
        ax.legend(loc="best", fontsize=8)
    ax.set_xlabel("EPS score norm e(x)")
    ax.set_ylabel("density")
    ax.set_title("Score norms: clean vs adversarial")
    return _save(fig, out_dir / "score_norms.png")


def _plot_t_distribution(plt, log: ResultsLog, summary: Summary, out_dir: Path) -> Path:
    """t per SSNI method, clean vs adversarial, in integer bins over the range both share."""
    ssni_methods = [m for m in summary.methods if not m.startswith("constant")]
    fig, axes = plt.subplots(1, max(1, len(ssni_methods)), figsize=(5 * max(1, len(ssni_methods)), 4), squeeze=False)
    for ax, m in zip(axes[0], ssni_methods):
        groups = {
            label: [int(r["t"]) for r in log.records if r["method"] == m and (r["attack"] != CLEAN) == adv]
            for adv, label in ((False, "clean"), (True, "adversarial"))
        }
        values = [t for ts in groups.values() for t in ts]
        if values:
            bins = np.arange(min(values), max(values) + 2) - 0.5  # one bin per integer t
            for label, ts in groups.items():
                if ts:
                    ax.hist(ts, bins=bins, alpha=0.6, label=f"{label} (mean {np.mean(ts):.1f})")
            ax.legend(loc="best", fontsize=8)
        ax.set_title(f"t assigned by {m}")
        ax.set_xlabel("t")
        ax.set_ylabel("samples")
    return _save(fig, out_dir / "t_distribution.png")


def _plot_accuracy_vs_t(plt, log: ResultsLog, summary: Summary, out_dir: Path) -> Path:
    """Accuracy vs t: the constant-t sweep, SSNI at its mean t on the inputs measured."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    eps = _attack_eps(log)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    kinds = [("clean", "clean", summary.clean_accuracy)] + [
        (
            a,
            "adversarial",
            {m: summary.robust_accuracy[m][a] for m in summary.methods if a in summary.robust_accuracy[m]},
        )
        for a in summary.attacks
    ]
    for (kind, t_of, acc), color in zip(kinds, colors):
        const = sorted((t, acc[m]) for m in acc if (t := _constant_t(m, summary)) is not None)
        if const:
            ts = [t for t, _ in const]
            ax.errorbar(
                ts,
                [st.mean for _, st in const],
                yerr=_yerr([st for _, st in const]),
                fmt="o-",
                color=color,
                capsize=3,
                label=f"constant t, {kind}",
            )
        for m in acc:
            t_m = summary.mean_t[m][t_of] if not m.startswith("constant") else None
            if t_m is not None:
                ax.errorbar([t_m], [acc[m].mean], yerr=_yerr([acc[m]]), fmt="*", ms=12, color=color, capsize=3)
                ax.annotate(f"{m} ({kind})", (t_m, acc[m].mean), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("t (constant); SSNI at its mean t on the inputs measured")
    ax.set_ylabel("accuracy (%), 95% interval")
    ax.set_title("Accuracy vs t; " + "; ".join(f"{a}: {e}" for a, e in eps.items() if a in summary.attacks))
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, out_dir / "accuracy_vs_t.png")


def _plot_tradeoff(plt, log: ResultsLog, summary: Summary, out_dir: Path) -> Path:
    """Clean vs robust accuracy per attack: the constant-t* frontier and SSNI's points."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    eps = _attack_eps(log)
    fig, axes = plt.subplots(
        1, max(1, len(summary.attacks)), figsize=(5.5 * max(1, len(summary.attacks)), 4.5), squeeze=False
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
        ax.legend(fontsize=8, loc="best")
    return _save(fig, out_dir / "tradeoff.png")


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


def write_report(log: ResultsLog, out_dir: str | Path) -> Path:
    """report.md (the table and the plots) plus the PNGs in `out_dir`; returns the Markdown path."""
    out_dir = Path(out_dir)
    plots = make_plots(log, out_dir)
    summary = summarize(log)
    text = f"# ssni evaluation: {summary.preset}\n\n" + markdown_table(summary) + "\n"
    text += "".join(f"![{p.stem}]({p.name})\n\n" for p in plots)
    return write_text_atomic(out_dir / "report.md", text)
