"""Evaluation presets: which data, models, purifier, attacks and subsets a named setting uses (spec §8).

A preset is plain configuration. The user's files (checkpoints, data folders, calibration) are not part of it;
they come from the command line (see `ssni.eval.runner.EvalConfig`). `mnist` is the embedded default and the
only preset whose attack budget is reduced (a CPU demo, stated in every output it produces); the CIFAR-10 and
ImageNet presets follow the paper's protocol.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields, replace

from ssni.errors import SSNIUserError
from ssni.eval.methods import DEFAULT_METHODS, Method
from ssni.eval.requests import Overrides

SEEDS = (121, 122, 123)
#: The CI smoke configuration (`ssni eval --smoke`); flags given on the command line win.
SMOKE = Overrides(num_samples=4, batch_size=4, seeds=(121,), iterations=2, eot=1, surrogate_steps=2)
SMOKE_NOTE = "smoke configuration (CI): not a meaningful robustness number"


@dataclass(frozen=True)
class AttackSpec:
    """One attack of the protocol. `norm` is "Linf" or "L2"; `eot` gradients are averaged per iteration; `kind`
    says which attack runs (`ssni.eval.attacks.ATTACK_KINDS`)."""

    name: str
    norm: str
    eps: float
    step_size: float
    iterations: int
    eot: int
    kind: str = "pgd"


@dataclass(frozen=True)
class PurifierSpec:
    """The host purifier. `stages` are (t*, defence steps) pairs, one per stage; most hosts have one stage.

    host: "ddpm" (discrete DDPM/DDIM, spec §5), "sde" (DiffPure's SDE solver, §6), "gns" or "gdmp" (§7).
    surrogate_stages: the reduced schedule used only for attack gradients ((t*, steps) per stage).
    """

    host: str
    stages: tuple[tuple[int, int], ...]
    surrogate_stages: tuple[tuple[int, int], ...]
    eta: float = 1.0
    votes: int = 1
    guidance: str | None = None
    resolution: int | None = None  # the diffusion model's side when it differs from the data's (ImageNet: 256)

    @property
    def t_star(self) -> int:
        """The (largest) constant t* of the baseline, the t of single-stage hosts."""
        return max(t for t, _ in self.stages)


@dataclass(frozen=True)
class Preset:
    """A named evaluation setting. `num_samples` images of the `split` subset are drawn as in spec §8."""

    name: str
    dataset: str
    image_size: int
    channels: int
    diffusion: str
    classifier: str
    purifier: PurifierSpec
    attacks: tuple[AttackSpec, ...]
    num_samples: int
    num_levels: int
    batch_size: int
    bias: int = 5
    seeds: tuple[int, ...] = SEEDS
    methods: tuple[Method, ...] = DEFAULT_METHODS
    calibration_samples: int = 5000
    attack_seeds: str = (
        "shared"  # "shared": attack at the first seed, every seed evaluates it (the reference); "per-seed"
    )
    default_attacks: tuple[str, ...] | None = None
    needs_paths: tuple[str, ...] = field(default_factory=tuple)
    demo_note: str | None = None

    def with_overrides(self, **changes) -> Preset:
        """A copy with some fields replaced (None values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def method(self, name: str) -> Method:
        """The method of this preset called `name` (as records name it)."""
        for m in self.methods:
            if str(m) == name:
                return m
        raise KeyError(name)

    def to_record(self) -> dict:
        """The preset as plain JSON data (methods by name), as a records file's header stores and hashes it."""
        record = dataclasses.asdict(self)
        record["methods"] = [str(m) for m in self.methods]
        return record

    def select_attacks(self, names: tuple[str, ...] | None = None) -> Preset:
        """Keep only the attacks `names` (default: `default_attacks`, or all); unknown names are user errors."""
        names = names if names is not None else self.default_attacks or tuple(a.name for a in self.attacks)
        known = {a.name for a in self.attacks}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise SSNIUserError(
                f"unknown attack(s) {', '.join(unknown)} for preset {self.name}; known: {', '.join(known)}"
            )
        return replace(self, attacks=tuple(a for a in self.attacks if a.name in names), default_attacks=None)


def _cifar_attacks(iterations: int = 200, eot: int = 20) -> tuple[AttackSpec, ...]:
    return (
        AttackSpec("pgd-linf", "Linf", 8 / 255, 0.007, iterations, eot),
        AttackSpec("pgd-l2", "L2", 0.5, 0.007, iterations, eot),
        AttackSpec("bpda-linf", "Linf", 8 / 255, 0.007, iterations, eot, kind="bpda"),
        AttackSpec("autoattack-rand", "Linf", 8 / 255, 0.007, 100, eot, kind="autoattack-rand"),
        AttackSpec("autoattack-standard", "Linf", 8 / 255, 0.007, 100, 1, kind="autoattack-standard"),
    )


_CIFAR_PATHS = ("data", "diffusion_checkpoint", "classifier_checkpoint")

PRESETS: dict[str, Preset] = {
    # The CPU demo (`ssni eval` with no arguments). Budget, in per-image network evaluations per seed: the
    # defence visits every index (constant: 10 score levels + 150 steps per purification; SSNI: 10 + its own t,
    # ~60 clean / ~150 adversarial), the attack 6 iterations × (5 surrogate steps forward+backward + 10 adaptive
    # score levels for SSNI): ~950 evaluations per image and seed for the three methods, 16 images × 3 seeds ≈ 46k.
    "mnist": Preset(
        name="mnist",
        dataset="mnist",
        image_size=28,
        channels=1,
        diffusion="mnist-ddpm",
        classifier="mnist-classifier",
        purifier=PurifierSpec("ddpm", stages=((150, 150),), surrogate_stages=((150, 5),)),
        attacks=(
            AttackSpec("pgd-linf", "Linf", 0.3, 0.06, 6, 1),
            AttackSpec("pgd-l2", "L2", 2.0, 0.4, 6, 1),
            AttackSpec("bpda-linf", "Linf", 0.3, 0.06, 6, 1, kind="bpda"),
            AttackSpec("autoattack-rand", "Linf", 0.3, 0.06, 6, 1, kind="autoattack-rand"),
        ),
        default_attacks=("pgd-linf",),
        num_samples=16,
        num_levels=10,
        batch_size=16,
        calibration_samples=1000,
        demo_note=(
            "MNIST CPU demo with a reduced attack budget: PGD-EOT Linf eps=0.3, 6 iterations of 0.06, EOT 1, "
            "5 surrogate steps, 16 images (paper protocol: 200 iterations, EOT 20, 20 surrogate steps, 512 "
            "images); raise --num-samples/--iterations/--eot/--surrogate-steps for stronger numbers"
        ),
    ),
    "cifar10-diffpure": Preset(
        name="cifar10-diffpure",
        dataset="cifar10",
        image_size=32,
        channels=3,
        diffusion="cifar10-ddpmpp-deep-continuous",
        classifier="cifar10-wrn-28-10",
        purifier=PurifierSpec("ddpm", stages=((100, 100),), surrogate_stages=((100, 20),)),
        attacks=_cifar_attacks(),
        num_samples=512,
        num_levels=20,
        batch_size=64,
        needs_paths=_CIFAR_PATHS,
    ),
    "cifar10-gns": Preset(
        name="cifar10-gns",
        dataset="cifar10",
        image_size=32,
        channels=3,
        diffusion="cifar10-ddpmpp-deep-continuous",
        classifier="cifar10-wrn-28-10",
        purifier=PurifierSpec(
            "gns",
            stages=((30, 30), (30, 30), (30, 30), (30, 30), (50, 50), (50, 50), (125, 125), (125, 125)),
            surrogate_stages=((30, 1), (50, 1), (125, 5)),
            votes=10,
        ),
        attacks=_cifar_attacks(),
        num_samples=512,
        num_levels=20,
        batch_size=64,
        needs_paths=_CIFAR_PATHS,
    ),
    "cifar10-gdmp": Preset(
        name="cifar10-gdmp",
        dataset="cifar10",
        image_size=32,
        channels=3,
        diffusion="cifar10-ddpm",
        classifier="cifar10-wrn-28-10",
        # SSNI's own GDMP runs: 4 unguided rounds of 36 (spec §7); guidance "ssim"/"mse" is GDMP's original.
        purifier=PurifierSpec("gdmp", stages=((36, 36),) * 4, surrogate_stages=((36, 6),) * 4, guidance=None),
        attacks=_cifar_attacks(),
        num_samples=512,
        num_levels=20,
        batch_size=64,
        needs_paths=_CIFAR_PATHS,
    ),
    "imagenet-diffpure": Preset(
        name="imagenet-diffpure",
        dataset="imagenet",
        image_size=224,
        channels=3,
        diffusion="imagenet-adm-256-uncond",
        classifier="imagenet-resnet50",
        purifier=PurifierSpec("ddpm", stages=((150, 150),), surrogate_stages=((150, 20),), resolution=256),
        attacks=(
            AttackSpec("pgd-linf", "Linf", 4 / 255, 0.007, 200, 20),
            AttackSpec("pgd-l2", "L2", 0.5, 0.007, 200, 20),
            AttackSpec("bpda-linf", "Linf", 4 / 255, 0.007, 200, 20, kind="bpda"),
            AttackSpec("autoattack-rand", "Linf", 4 / 255, 0.007, 100, 20, kind="autoattack-rand"),
            AttackSpec("autoattack-standard", "Linf", 4 / 255, 0.007, 100, 1, kind="autoattack-standard"),
        ),
        num_samples=128,
        num_levels=50,
        batch_size=8,
        needs_paths=_CIFAR_PATHS,
    ),
}


def resolve_preset(name: str, overrides: Overrides = Overrides(), *, smoke: bool = False) -> Preset:
    """The preset called `name` with the overrides applied (over the smoke configuration when `smoke`)."""
    preset = get_preset(name)
    if smoke:
        given = {f.name: getattr(overrides, f.name) for f in fields(Overrides)}
        overrides = replace(SMOKE, **{k: v for k, v in given.items() if v is not None and v != ()})
    o = overrides
    preset = preset.select_attacks(o.attacks)
    methods = (o.methods or preset.methods) + tuple(Method("constant", t) for t in o.t_sweep)
    attacks = tuple(replace(a, iterations=o.iterations or a.iterations, eot=o.eot or a.eot) for a in preset.attacks)
    purifier = preset.purifier
    if o.t_star is not None:
        if len(purifier.stages) != 1:
            raise SSNIUserError(f"--t-star needs a single-stage purifier, preset {name} has {len(purifier.stages)}")
        n = purifier.stages[0][1]
        purifier = replace(
            purifier,
            stages=((o.t_star, o.t_star if n == purifier.stages[0][0] else min(n, o.t_star)),),
            surrogate_stages=((o.t_star, min(purifier.surrogate_stages[0][1], o.t_star)),),
        )
    if o.surrogate_steps is not None:
        stages = tuple((t, min(t, o.surrogate_steps)) for t, _ in purifier.surrogate_stages)
        purifier = replace(purifier, surrogate_stages=stages)
    note = preset.demo_note
    if smoke:
        note = SMOKE_NOTE
    elif note and any(v is not None for v in (o.iterations, o.eot, o.surrogate_steps)):
        note = "attack budget changed on the command line"
    return preset.with_overrides(
        num_samples=o.num_samples,
        batch_size=o.batch_size,
        num_levels=o.num_levels,
        seeds=o.seeds,
        methods=tuple(dict.fromkeys(methods)),
        attacks=attacks,
        purifier=purifier,
        attack_seeds=o.attack_seeds,
    ).with_overrides(demo_note=note)


def get_preset(name: str) -> Preset:
    """The preset called `name`; an unknown name is a user error listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise SSNIUserError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
