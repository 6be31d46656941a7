"""The attacks an evaluation can run, by `AttackSpec.kind`: one function each, all with the same signature.

    run(model, spec, x, y, *, seed, sample_ids, on_iteration) -> AttackResult

model is the `DefendedModel` of the method under attack (`ModelBackend.defended`: adaptive for SSNI).
AutoAttack follows DiffPure's reporting: "rand" (APGD-CE + APGD-DLR with EOT) and "standard" (APGD-CE, APGD-T,
FAB-T, Square, no EOT); the report derives the worst case of the two per sample (`ssni.eval.report.WORST_CASE`).
"score-aware" attacks SSNI's own mechanism (its score norm and t), `ssni.attacks.score_aware`.
"""

from __future__ import annotations

from collections.abc import Callable

from ssni.attacks import AdaptiveSSNI, autoattack_rand, autoattack_standard, pgd_eot
from ssni.attacks.pgd_eot import AttackResult
from ssni.attacks.score_aware import ScoreAwareConfig, ScoreAwareSSNI, score_aware_pgd
from ssni.errors import SSNIUserError
from ssni.eval.presets import AttackSpec

__all__ = ["ATTACK_KINDS", "STEP_KINDS", "RANDOM_START", "run_attack"]


def _pgd(model, spec: AttackSpec, x, y, **kw) -> AttackResult:
    l2 = {} if spec.l2_step is None else {"l2_step": spec.l2_step}  # the L2 step form of the spec (F3)
    return pgd_eot(
        model,
        x,
        y,
        norm=spec.norm,
        eps=spec.eps,
        step_size=spec.step_size,
        iterations=spec.iterations,
        eot=spec.eot,
        **l2,
        **_without_seed(kw),
    )


def _bpda(model, spec: AttackSpec, x, y, **kw) -> AttackResult:
    """PGD-EOT with BPDA gradients (straight through the purifier), as `ssni.attacks.bpda_eot`."""
    return _pgd(model.with_gradient("bpda"), spec, x, y, **kw)


def _rand(model, spec: AttackSpec, x, y, **kw) -> AttackResult:
    return autoattack_rand(model, x, y, norm=spec.norm, eps=spec.eps, iterations=spec.iterations, eot=spec.eot, **kw)


def _standard(model, spec: AttackSpec, x, y, **kw) -> AttackResult:
    return autoattack_standard(model, x, y, norm=spec.norm, eps=spec.eps, iterations=spec.iterations, **kw)


def _score_aware(model, spec: AttackSpec, x, y, **kw) -> AttackResult:
    """The score-aware attack on SSNI (`ssni.attacks.score_aware`; the variant from the name: score-aware,
    score-aware-lambda<λ>, score-aware-two-phase); a constant t has no score to attack: plain PGD-EOT."""
    if not isinstance(model, AdaptiveSSNI):
        return _pgd(model, spec, x, y, **kw)
    return score_aware_pgd(
        ScoreAwareSSNI.from_adaptive(model),
        x,
        y,
        config=ScoreAwareConfig.from_attack_name(spec.name),
        norm=spec.norm,
        eps=spec.eps,
        step_size=spec.step_size,
        iterations=spec.iterations,
        eot=spec.eot,
        **_without_seed(kw),
    )


def _without_seed(kw: dict) -> dict:
    """PGD's randomness is the defence's (its seed is the model's): drop the attack seed."""
    return {k: v for k, v in kw.items() if k != "seed"}


#: The kinds whose step is `AttackSpec.step_size` (AutoAttack's APGD, FAB and Square set their own steps).
STEP_KINDS = ("pgd", "bpda", "score-aware")
#: Whether each kind starts from a random point of the ε-ball (AutoAttack: keyed on seed and sample id) or from x.
RANDOM_START = {"pgd": False, "bpda": False, "score-aware": False, "autoattack-rand": True, "autoattack-standard": True}

ATTACK_KINDS: dict[str, Callable[..., AttackResult]] = {
    "pgd": _pgd,
    "bpda": _bpda,
    "autoattack-rand": _rand,
    "autoattack-standard": _standard,
    "score-aware": _score_aware,
}


def run_attack(model, spec: AttackSpec, x, y, *, seed: int, sample_ids, on_iteration=None) -> AttackResult:
    """Run the attack `spec` against `model` on x [B, ...] with labels y [B]."""
    try:
        run = ATTACK_KINDS[spec.kind]
    except KeyError:
        raise SSNIUserError(
            f"attack {spec.name}: unknown kind {spec.kind!r}; known: {', '.join(ATTACK_KINDS)}"
        ) from None
    return run(model, spec, x, y, seed=seed, sample_ids=sample_ids, on_iteration=on_iteration)
