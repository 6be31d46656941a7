"""`ssni.evaluate`: one call from a defence, a classifier and labelled images to accuracies with 95% intervals and
per-sample records, as AutoAttack's `run_standard_evaluation` or RobustBench's `benchmark`.

    result = ssni.evaluate(defence, classifier, x, y, attacks=("pgd",), eps=0.3, iterations=10, eot=1)
    result.clean                  # Stat of the defence: mean over images and seeds, 95% bootstrap interval over images
    result.robust["pgd-linf"]     # the same under the attack
    result.records                # per-sample dicts, exactly as in the records file `ssni eval` writes

It is `ssni eval`'s evaluation, not a second one: the caller's defence and classifier become a `ModelBackend`
(`ModelBackend.from_defences`) under an in-memory `Preset` that describes them, `ssni.eval.runner.run_eval` runs the
groups (seed → chunk → method → attack; the adaptive protocol for SSNI; with the reference protocol's shared
attacks the adversarial examples are made at the first seed and every seed evaluates them), the records go to a
records file (a temporary one unless `out` is given, which is then resumable and refuses another configuration),
and the numbers are `ssni.eval.report.summarize`'s. Sample ids key the defence's noise (`sample_ids`, default
0..N−1), so results do not depend on `batch_size`.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ssni.eval.attacks import ATTACK_KINDS
from ssni.eval.backend import ModelBackend
from ssni.eval.loading import Models
from ssni.eval.methods import Method
from ssni.eval.presets import SEEDS, AttackSpec, Preset, PurifierSpec
from ssni.eval.report import Stat, Summary, summarize
from ssni.eval.runner import EvalConfig, EvalData, run_eval
from ssni.validate import check_choice, check_images, check_int, check_sample_ids, check_seed, check_unique_ids

__all__ = ["Evaluation", "evaluate"]

NORMS = ("Linf", "L2")
ATTACK_SEEDS = ("shared", "per-seed")
VOTE_SCORES = ("per-vote", "shared")
#: The step of a string attack when none is given, as a fraction of eps (the protocol's 0.007 is ≈ (8/255)/4.5).
DEFAULT_STEP_FRACTION = 0.25
_HOST_NAMES = {"DDPMPurifier": "ddpm", "SDEPurifier": "sde", "GNSPurifier": "gns", "GDMPPurifier": "gdmp"}


@dataclass(frozen=True)
class Evaluation:
    """What `evaluate` returns.

    method: the defence's method as the records name it ("ssni-n", "ssni-l" or "constant"); summary: every number
    (`ssni.eval.report.Summary`, what `ssni eval --json` prints: accuracies per method and attack, paired
    differences to the constant-t* baseline when it ran, detection AUROC, mean t and score norms, network
    evaluations); records: the per-sample records (sample_id, label, pred, correct, t, score_norm, seed, method,
    attack, and the perturbation norms of adversarial inputs); header: the records file's header (the
    configuration and its hash); path: the records file (None when it was temporary).
    """

    method: str
    summary: Summary
    records: list[dict]
    header: dict
    path: Path | None

    @property
    def clean(self) -> Stat:
        """The defence's clean accuracy (%): mean over images and seeds, 95% bootstrap interval over images."""
        return self.summary.clean_accuracy[self.method]

    @property
    def robust(self) -> dict[str, Stat]:
        """The defence's robust accuracy (%) per attack name (e.g. "pgd-linf"), as `clean`."""
        return self.summary.robust_accuracy.get(self.method, {})

    def __str__(self) -> str:
        s = self.summary
        lines = [f"{s.num_samples} images, seeds {', '.join(map(str, s.seeds))}: accuracy % [95% interval over images]"]
        for m in s.methods:
            parts = [f"clean {s.clean_accuracy[m]}"] if m in s.clean_accuracy else []
            parts += [f"{a} {stat}" for a, stat in s.robust_accuracy.get(m, {}).items()]
            lines.append(f"  {m}: " + ", ".join(parts))
        return "\n".join(lines)


def evaluate(
    defence: nn.Module,
    classifier: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    attacks: Sequence[str | AttackSpec] = ("pgd",),
    norm: str = "Linf",
    eps: float | None = None,
    step_size: float | None = None,
    iterations: int = 200,
    eot: int = 20,
    seeds: Sequence[int] = SEEDS,
    sample_ids: Tensor | None = None,
    baseline: bool = False,
    votes: int = 1,
    vote_scores: str = "per-vote",
    batch_size: int = 64,
    attack_seeds: str = "shared",
    out: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = False,
    device: str | torch.device | None = None,
) -> Evaluation:
    """Clean and robust accuracy of classifier ∘ defence on x [N, C, H, W] in [0, 1] with labels y [N] (int64).

    defence: `ssni.SSNI` (SSNI-N or SSNI-L, attacked adaptively: t recomputed at every attack iteration) or a
      purifier (`ssni.DDPMPurifier`, `ssni.SDEPurifier`, …: DBP at its constant t*); classifier: images in [0, 1]
      → logits (evaluated as given: put it in eval mode).
    attacks: each one of "pgd", "bpda" (PGD with straight-through gradients), "autoattack-rand",
      "autoattack-standard" or "score-aware" (its variants: `ssni.attacks.score_aware`), run with norm ("Linf" or
      "L2"), eps (required with any of them: no default radius), step_size (default eps/4; L2 PGD takes
      normalised-gradient steps), iterations and eot (defaults: the reference protocol's 200 and 20, slow on a
      CPU); records name them "pgd-linf", "bpda-l2", "autoattack-rand", …; or an `ssni.eval.presets.AttackSpec`
      for full control (several norms in one call). () evaluates clean inputs only.
    seeds: evaluation seeds (the CLI's 121, 122, 123 by default); attack_seeds: "shared" (the attack runs at the
      first seed and every seed evaluates its adversarial examples, the reference protocol) or "per-seed".
    sample_ids: int64 [N], unique (default 0..N−1): they key the noise, so the same ids give the same results.
    baseline: also evaluate the host at its constant t* ("constant"), for paired differences (SSNI defences).
    votes: independent purifications per input, classified, majority vote (GNS's defence; `ssni.GNSDefense`), in
      evaluation and in the attacks' forward; vote_scores: with SSNI and votes, "per-vote" recomputes the score norm
      with fresh EPS noise for every vote (the authors' evaluation) or "shared" computes it once per input.
    batch_size: samples per chunk (attack and evaluation unit; results do not depend on it).
    out: keep the records in this JSONL file (rerunning the same call resumes it; another configuration is
      refused unless overwrite); None: a temporary file. progress: a progress bar.
    device: where the defence runs (default: its parameters' device); x and y may live anywhere.
    """
    from ssni.purify import SSNI, Purifier

    if not isinstance(defence, (SSNI, Purifier)):
        raise TypeError(f"defence must be an ssni.SSNI or an ssni purifier, got {type(defence).__name__}")
    if not isinstance(classifier, nn.Module):
        raise TypeError(
            f"classifier must be an nn.Module (images in [0, 1] -> logits), got {type(classifier).__name__}"
        )
    check_images(x)
    n = x.shape[0]
    if not isinstance(y, Tensor) or y.is_floating_point() or y.is_complex() or y.shape != (n,):
        what = f"{y.dtype} {tuple(y.shape)}" if isinstance(y, Tensor) else type(y).__name__
        raise ValueError(f"y must be an integer tensor of class labels, shape ({n},), got {what}")
    ids = check_unique_ids(check_sample_ids(sample_ids, n, "cpu"))
    seeds = tuple(check_seed(s) for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct ints, at least one, got {seeds!r}")
    check_choice("attack_seeds", attack_seeds, ATTACK_SEEDS)
    check_int("votes", votes, low=1)
    check_choice("vote_scores", vote_scores, VOTE_SCORES)
    check_int("batch_size", batch_size, low=1)
    specs = _attack_specs(attacks, norm=norm, eps=eps, step_size=step_size, iterations=iterations, eot=eot)
    if device is None:
        device = next((p.device for p in defence.parameters()), torch.device("cpu"))
    device = str(device)

    ssni_defence = defence if isinstance(defence, SSNI) else None
    host = defence.host if ssni_defence else defence
    method = (
        Method("constant") if ssni_defence is None else Method("ssni-n" if defence.reweight == "sigmoid" else "ssni-l")
    )
    methods = (Method("constant"), method) if baseline and ssni_defence else (method,)
    scores_per_vote = votes > 1 and vote_scores == "per-vote"
    preset = _preset(
        defence, host, classifier, x, specs, methods, seeds, batch_size, attack_seeds, votes, scores_per_vote
    )
    models = Models(host.model, classifier, preset.diffusion, preset.classifier)
    ssni_defences = {} if ssni_defence is None else {method.kind: defence}
    backend = ModelBackend.from_defences(preset, models, host, ssni_defences, device, network_batch=batch_size)
    data = EvalData(x.detach().cpu(), y.detach().cpu().to(torch.int64), ids)
    identities = _identities(defence, classifier, data)

    def run(path: Path):
        config = EvalConfig(preset, path, identities, overwrite=overwrite, progress=progress)
        return run_eval(config, backend, data)

    if out is None:
        with tempfile.TemporaryDirectory(prefix="ssni-evaluate-") as folder:
            log = run(Path(folder) / "records.jsonl")
    else:
        log = run(Path(out))
    return Evaluation(str(method), summarize(log), log.records, log.header, None if out is None else Path(out))


def _attack_specs(attacks, *, norm, eps, step_size, iterations, eot) -> tuple[AttackSpec, ...]:
    """The AttackSpec of every entry of `attacks` (strings get the call's budget); names must be distinct."""
    if isinstance(attacks, (str, AttackSpec)):
        attacks = (attacks,)
    check_choice("norm", norm, NORMS)
    specs = []
    for attack in attacks:
        if isinstance(attack, AttackSpec):
            specs.append(attack)
            continue
        kind = "score-aware" if isinstance(attack, str) and attack.startswith("score-aware") else attack
        if kind not in ATTACK_KINDS:
            raise ValueError(f"attacks: unknown attack {attack!r}; use {', '.join(ATTACK_KINDS)} or an AttackSpec")
        if eps is None or isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
            raise ValueError(
                f"eps is required with attacks={tuple(attacks)!r}: the radius of the {norm} threat ball in [0, 1] "
                f"pixel units (e.g. 0.3 Linf on MNIST, 8/255 Linf or 0.5 L2 on CIFAR-10), got {eps!r}"
            )
        check_int("iterations", iterations, low=1)
        check_int("eot", eot, low=1)
        step = DEFAULT_STEP_FRACTION * eps if step_size is None else step_size
        name = f"{attack}-{norm.lower()}" if kind in ("pgd", "bpda") else attack
        specs.append(AttackSpec(name, norm, float(eps), float(step), iterations, eot, kind=kind))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"attacks: every attack needs its own name, got {names}")
    return tuple(specs)


def _stage_pairs(host, surrogate: bool) -> tuple[tuple[int, int], ...]:
    """(t*, steps) per stage of the host's defence or surrogate schedule (steps None: every index, t*)."""
    stars = host.t_star if isinstance(host.t_star, tuple) else (host.t_star,)
    stages = host.stages(surrogate=surrogate)
    return tuple((stars[s.column or 0], s.num_steps or stars[s.column or 0]) for s in stages)


def _preset(
    defence, host, classifier, x, specs, methods, seeds, batch_size, attack_seeds, votes, scores_per_vote
) -> Preset:
    """The in-memory preset that describes this evaluation (what the records header stores and hashes)."""
    calibration = getattr(defence, "calibration", None)
    purifier = PurifierSpec(
        _HOST_NAMES.get(type(host).__name__, type(host).__name__),
        stages=_stage_pairs(host, surrogate=False),
        surrogate_stages=_stage_pairs(host, surrogate=True),
        eta=getattr(host, "eta", 1.0),
        votes=votes,
        scores_per_vote=scores_per_vote,
        sampler=getattr(host, "sampler", None),
        resolution=host.resolution,
    )
    linear_batch = getattr(defence, "linear_batch", None)
    return Preset(
        name="ssni.evaluate",
        dataset="in-memory",
        image_size=x.shape[-1],
        channels=x.shape[1],
        diffusion=calibration.model_id if calibration is not None else type(host.model.net).__name__,
        classifier=type(classifier).__name__,
        purifier=purifier,
        attacks=specs,
        num_samples=x.shape[0],
        num_levels=getattr(defence, "num_levels", 0),
        batch_size=batch_size,
        bias=getattr(defence, "bias", 0),
        linear_batch_attack=linear_batch,
        linear_batch_eval=linear_batch,
        seeds=seeds,
        methods=methods,
        calibration_samples=0 if calibration is None else calibration.num_samples,
        attack_seeds=attack_seeds,
    )


def _fingerprint(tensors: Iterable[tuple[str, Tensor]]) -> str:
    """sha256 (16 hex digits) of named tensors: names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    for name, tensor in tensors:
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def _identities(defence, classifier, data: EvalData) -> dict[str, str]:
    """What else decides the records (hashed into the header): the weights, the settings the preset does not
    hold, and the data, so that a resumed `out` file never mixes records of other models, settings or images."""
    settings = {
        k: getattr(defence, k)
        for k in ("reweight", "linear_minmax", "reference_linear_shift", "chunk_size")
        if hasattr(defence, k)
    }
    identities = {
        "defence": _fingerprint(defence.state_dict().items()),  # the diffusion network (and a separate score one)
        "classifier": _fingerprint(classifier.state_dict().items()),
        "data": _fingerprint([("x", data.images), ("y", data.labels), ("ids", data.sample_ids)]),
        "settings": json.dumps(settings, sort_keys=True),
    }
    calibration = getattr(defence, "calibration", None)
    if calibration is not None:  # the names `ssni eval` records them under
        identities.update(calibration_tau=repr(defence.tau), calibration_mean=repr(calibration.mean))
    return identities
