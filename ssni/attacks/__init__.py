"""Adaptive white-box attacks on (diffusion-purified) classifiers: PGD-EOT, BPDA-EOT, APGD-CE/DLR, AutoAttack-rand.

Attacks see a defence only through `DefendedModel` (`ssni.attacks.defended`): `PlainClassifier` (no defence),
`PurifiedClassifier` (a purifier at constant t) and `AdaptiveSSNI` (SSNI, t recomputed at every iteration).
Protocol defaults are those of spec §8; randomness is keyed on (seed, sample id), so results are batch-invariant.
"""

from ssni.attacks.adapters import PlainClassifier, PurifiedClassifier
from ssni.attacks.adaptive import AdaptiveSSNI
from ssni.attacks.apgd import apgd, apgd_checkpoints, autoattack_rand
from ssni.attacks.bpda import bpda_eot, straight_through
from ssni.attacks.defended import DefendedModel, derive_seed, eot_gradient
from ssni.attacks.losses import cross_entropy, dlr
from ssni.attacks.pgd_eot import AttackResult, pgd_eot

__all__ = [
    "AdaptiveSSNI",
    "AttackResult",
    "DefendedModel",
    "PlainClassifier",
    "PurifiedClassifier",
    "apgd",
    "apgd_checkpoints",
    "autoattack_rand",
    "bpda_eot",
    "cross_entropy",
    "derive_seed",
    "dlr",
    "eot_gradient",
    "pgd_eot",
    "straight_through",
]
