"""Adaptive attacks on (diffusion-purified) classifiers: PGD-EOT, BPDA-EOT, APGD-CE/DLR/T, FAB-T, Square, AutoAttack.

Attacks see a defence only through `DefendedModel` (`ssni.attacks.defended`): `PlainClassifier` (no defence),
`PurifiedClassifier` (a purifier at constant t), `AdaptiveSSNI` (SSNI, t recomputed at every iteration) and
`ScoreAwareSSNI` (SSNI with gradients through e(x) and t; `score_aware_pgd` runs its objectives).
`DefendedClassifier` (`defence.as_classifier(classifier, seed=...)`) is the other way round: a defence as a plain
`nn.Module` `model(x) -> logits` for torchattacks, AutoAttack and RobustBench.
Protocol defaults are those of spec §8; randomness is keyed on (seed, sample id), so results are batch-invariant.
"""

from ssni.attacks.adapters import PlainClassifier, PurifiedClassifier
from ssni.attacks.adaptive import AdaptiveSSNI
from ssni.attacks.apgd import apgd, apgd_checkpoints, apgd_targeted
from ssni.attacks.autoattack import autoattack_rand, autoattack_standard, worst_case
from ssni.attacks.bpda import bpda_eot, straight_through
from ssni.attacks.defended import DefendedModel, derive_seed, eot_gradient
from ssni.attacks.fab import fab_targeted
from ssni.attacks.interop import DefendedClassifier
from ssni.attacks.losses import cross_entropy, dlr, dlr_targeted, margin
from ssni.attacks.pgd_eot import AttackResult, pgd_eot
from ssni.attacks.score_aware import ScoreAwareConfig, ScoreAwareResult, ScoreAwareSSNI, score_aware_pgd
from ssni.attacks.square import square

__all__ = [
    "AdaptiveSSNI",
    "AttackResult",
    "DefendedClassifier",
    "DefendedModel",
    "PlainClassifier",
    "PurifiedClassifier",
    "ScoreAwareConfig",
    "ScoreAwareResult",
    "ScoreAwareSSNI",
    "apgd",
    "apgd_checkpoints",
    "apgd_targeted",
    "autoattack_rand",
    "autoattack_standard",
    "bpda_eot",
    "cross_entropy",
    "derive_seed",
    "dlr",
    "dlr_targeted",
    "eot_gradient",
    "fab_targeted",
    "margin",
    "pgd_eot",
    "score_aware_pgd",
    "square",
    "straight_through",
    "worst_case",
]
