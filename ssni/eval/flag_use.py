"""A flag the chosen preset, attacks or methods would not use is a user error, not silently ignored.

`check_flags_used` runs once the preset is resolved (its attacks selected, its methods known) and before any model
or data is loaded. Flags about the data (`--data` for the embedded MNIST, `--data-seed` for a dataset whose subset
does not depend on it) are refused where the data is read (`ssni.data.datasets`); flags a command has no use for at
all are not among its options.
"""

from __future__ import annotations

from ssni.errors import SSNIUserError
from ssni.eval.attacks import STEP_KINDS
from ssni.eval.methods import Method
from ssni.eval.presets import Preset
from ssni.eval.requests import Overrides

__all__ = ["check_flags_used"]


def _names(attacks) -> str:
    return ", ".join(a.name for a in attacks)


def _refuse(flag: str, reason: str) -> None:
    raise SSNIUserError(f"{flag} is not used: {reason}")


def check_flags_used(preset: Preset, overrides: Overrides, methods: tuple[Method, ...], tau: float | None) -> None:
    """Refuse each flag of `overrides` (and `tau`) that nothing of `preset` (after overrides) and `methods` uses."""
    attacks = preset.attacks
    norms = sorted({a.norm for a in attacks})
    stepped = [a for a in attacks if a.kind in STEP_KINDS]
    if overrides.eps is not None and len(norms) > 1:
        _refuse(
            "--eps",
            f"one radius for attacks of norms {', '.join(norms)} ({_names(attacks)}); pick attacks of "
            "one norm with --attacks",
        )
    if overrides.step_size is not None:
        if not stepped:
            _refuse("--step-size", f"the selected attacks ({_names(attacks)}) set their own steps")
        if len({a.norm for a in stepped}) > 1:
            _refuse(
                "--step-size",
                f"one step for attacks of several norms ({_names(stepped)}); pick attacks of one norm with --attacks",
            )
    if overrides.l2_step is not None and not any(a.l2_step for a in attacks):
        _refuse("--l2-step", f"none of the selected attacks ({_names(attacks)}) is an L2 PGD attack")
    if overrides.bpda_schedule is not None and not any(a.is_bpda for a in attacks):
        _refuse("--bpda-schedule", f"none of the selected attacks ({_names(attacks)}) is BPDA")
    if overrides.scores_per_vote is not None and preset.purifier.votes == 1:
        _refuse("--vote-scores", f"preset {preset.name} takes one vote per input")
    kinds = {m.kind for m in methods}
    listed = ", ".join(map(str, methods))
    for flag, value in (
        ("--linear-batch-attack", overrides.linear_batch_attack),
        ("--linear-batch-eval", overrides.linear_batch_eval),
    ):
        if value is not None and "ssni-l" not in kinds:
            _refuse(flag, f"it sets SSNI-L's groups, and the methods ({listed}) do not include ssni-l")
    if tau is not None and "ssni-n" not in kinds:
        _refuse("--tau", f"it is SSNI-N's temperature, and the methods ({listed}) do not include ssni-n")
