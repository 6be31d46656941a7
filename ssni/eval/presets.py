"""Evaluation presets: which data, models, purifier, attacks and subsets a named setting uses (spec §8).

A preset is plain configuration. The user's files (checkpoints, data folders, calibration) are not part of it;
they come from the command line (see `ssni.eval.runner.EvalConfig`). `mnist` is the embedded default and the
only preset whose attack budget is reduced (a CPU demo, stated in every output it produces); the CIFAR-10 and
ImageNet presets follow the reference protocol, each setting traced to its source in a comment (docs/fidelity.md
lists where ssni's defaults differ and the option that reproduces the reference).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields, replace

from ssni.errors import SSNIUserError
from ssni.eval.methods import DEFAULT_METHODS, Method
from ssni.eval.requests import Overrides

SEEDS = (121, 122, 123)
#: The CI smoke configuration (`ssni eval --smoke`); flags given on the command line win.
SMOKE = Overrides(num_samples=4, batch_size=4, seeds=(121,), iterations=2, eot=1, surrogate_steps=2)
SMOKE_NOTE = "smoke configuration (CI): not a meaningful robustness number"


L2_STEPS = ("sign", "normalized")
BPDA_SCHEDULES = ("defence", "surrogate")


@dataclass(frozen=True)
class AttackSpec:
    """One attack of the protocol. `norm` is "Linf" or "L2"; `eot` gradients are averaged per iteration; `kind`
    says which attack runs (`ssni.eval.attacks.ATTACK_KINDS`).

    l2_step (L2 PGD only): "sign", the reference's step (sign(g)·step_size, then the projection onto the ball), or
    "normalized" (the default), g/‖g‖₂·step_size. `with_l2_step` converts one into the other at the same L2 step
    length. bpda_schedule (BPDA only): what the BPDA forward purifies with, "defence" (the default) or "surrogate"
    (the attack schedule; `ssni.attacks.adapters.BPDA_SCHEDULES`).
    """

    name: str
    norm: str
    eps: float
    step_size: float
    iterations: int
    eot: int
    kind: str = "pgd"
    l2_step: str | None = None
    bpda_schedule: str | None = None

    def __post_init__(self) -> None:
        """Fill the form the attack runs when not given (L2 PGD: "normalized", pgd_eot's; BPDA: "defence"), so a
        spec, and the records header that stores it, always names it; refuse either field on other attacks."""
        l2_pgd = self.norm == "L2" and self.kind == "pgd"
        if self.l2_step is None and l2_pgd:
            object.__setattr__(self, "l2_step", "normalized")
        if self.bpda_schedule is None and self.is_bpda:
            object.__setattr__(self, "bpda_schedule", "defence")
        if self.l2_step is not None and (not l2_pgd or self.l2_step not in L2_STEPS):
            raise ValueError(f"attack {self.name}: l2_step is one of {L2_STEPS} for L2 PGD only, got {self.l2_step!r}")
        if self.bpda_schedule is not None and (not self.is_bpda or self.bpda_schedule not in BPDA_SCHEDULES):
            raise ValueError(
                f"attack {self.name}: bpda_schedule is one of {BPDA_SCHEDULES} for BPDA only, "
                f"got {self.bpda_schedule!r}"
            )

    @property
    def is_bpda(self) -> bool:
        return self.kind == "bpda"

    @classmethod
    def from_record(cls, record: dict) -> AttackSpec:
        """The spec a records header stores (headers written before `l2_step`/`bpda_schedule` existed ran the
        normalised L2 step and BPDA with the defence schedule, the defaults filled in)."""
        return cls(**{f.name: record[f.name] for f in fields(cls) if f.name in record})

    def with_l2_step(self, l2_step: str, dims: int) -> AttackSpec:
        """This L2 attack with the other step form at the same L2 step length: a sign step of size α over `dims`
        pixels is α·√dims long (0.007·√3072 ≈ 0.39 on CIFAR-10), so "normalized" takes step α·√dims."""
        if self.l2_step is None or l2_step == self.l2_step:
            return self
        factor = math.sqrt(dims) if l2_step == "normalized" else 1 / math.sqrt(dims)
        return replace(self, l2_step=l2_step, step_size=self.step_size * factor)

    def describe(self) -> str:
        """One line naming the attack as it ran."""
        text = f"{self.name}: {self.norm} eps {self.eps:.4g}, {self.iterations} iterations, EOT {self.eot}"
        if self.l2_step == "sign":
            text += f", sign step {self.step_size:.4g} then projection onto the L2 ball (the reference's L2 PGD)"
        elif self.l2_step == "normalized":
            text += f", normalised-gradient step {self.step_size:.4g} (L2 length)"
        elif self.kind in ("pgd", "bpda", "score-aware"):
            text += f", sign step {self.step_size:.4g}"
        if self.bpda_schedule is not None:
            text += f", BPDA forward with the {self.bpda_schedule} schedule"
        return text


@dataclass(frozen=True)
class PurifierSpec:
    """The host purifier. `stages` are (t*, defence steps) pairs, one per stage; most hosts have one stage.

    host: "ddpm" (discrete DDPM/DDIM, spec §5), "sde" (DiffPure's SDE solver, §6), "gns" or "gdmp" (§7).
    surrogate_stages: the reduced schedule used only for attack gradients ((t*, steps) per stage).
    votes: independent purifications per input, majority vote; scores_per_vote: SSNI recomputes its score norm
    (fresh EPS noise) for every vote, as the authors' evaluation does, instead of once per input.
    sampler: GDMP's step, "gdmp" (its own sampler) or "ddpm" (the §5 step); None for the other hosts.
    """

    host: str
    stages: tuple[tuple[int, int], ...]
    surrogate_stages: tuple[tuple[int, int], ...]
    eta: float = 1.0
    votes: int = 1
    scores_per_vote: bool = False
    guidance: str | None = None
    sampler: str | None = None
    resolution: int | None = None  # the diffusion model's side when it differs from the data's (ImageNet: 256)

    @property
    def t_star(self) -> int:
        """The (largest) constant t* of the baseline, the t of single-stage hosts."""
        return max(t for t, _ in self.stages)


@dataclass(frozen=True)
class Preset:
    """A named evaluation setting. `num_samples` images of the `split` subset are drawn as in spec §8.

    linear_batch_attack / linear_batch_eval: SSNI-L's e_min/e_max groups (`SSNI(linear_batch=...)`) while
    attacking and while evaluating, in consecutive samples of a chunk (None: the whole chunk of `batch_size`).
    """

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
    linear_batch_attack: int | None = None
    linear_batch_eval: int | None = None
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


def _paper_attacks(linf_eps: float, bpda_schedule: str) -> tuple[AttackSpec, ...]:
    """The reference's attacks (JiachengZ01/SSNI main.py): step 0.007, 200 iterations, EOT 20; Linf ε 8/255
    (4/255 on ImageNet); L2 ε 0.5 with a sign step before the projection (attacks/pgd_eot_l2.py); BPDA ε 8/255
    for every dataset. AutoAttack (not in the reference) follows DiffPure: "rand" with 100 iterations and EOT 20,
    and "standard"."""
    return (
        AttackSpec("pgd-linf", "Linf", linf_eps, 0.007, 200, 20),
        AttackSpec("pgd-l2", "L2", 0.5, 0.007, 200, 20, l2_step="sign"),
        AttackSpec("bpda-linf", "Linf", 8 / 255, 0.007, 200, 20, kind="bpda", bpda_schedule=bpda_schedule),
        AttackSpec("autoattack-rand", "Linf", linf_eps, 0.007, 100, 20, kind="autoattack-rand"),
        AttackSpec("autoattack-standard", "Linf", linf_eps, 0.007, 100, 1, kind="autoattack-standard"),
    )


_CIFAR_PATHS = ("data", "diffusion_checkpoint", "classifier_checkpoint")

PRESETS: dict[str, Preset] = {
    # The CPU demo (`ssni eval` with no arguments): the paper's two claims in miniature (README, "The main job").
    # Operating point: at t* = 300 the noise costs the constant purifier clean accuracy, at t* = 100 it defends
    # less; SSNI-N gives clean inputs t ≈ 150 and adversarial ones t ≈ 270 (the shipped τ). Every purification
    # takes 10 strided steps from its own t (SSNI-N 10 + b, F1); the constant@t points trace the frontier.
    # Budget, per image: attack (once, seed 121) 8 iterations × (3 surrogate steps forward+backward, + 10 score
    # levels for SSNI); evaluation per seed: 10 score levels + one purification per method of clean and
    # adversarial inputs.
    "mnist": Preset(
        name="mnist",
        dataset="mnist",
        image_size=28,
        channels=1,
        diffusion="mnist-ddpm",
        classifier="mnist-classifier",
        purifier=PurifierSpec("ddpm", stages=((300, 10),), surrogate_stages=((300, 3),)),
        attacks=(
            AttackSpec("pgd-linf", "Linf", 0.3, 0.05, 8, 1),
            AttackSpec("pgd-l2", "L2", 2.0, 0.4, 8, 1, l2_step="normalized"),
            AttackSpec("bpda-linf", "Linf", 0.3, 0.05, 8, 1, kind="bpda", bpda_schedule="defence"),
            AttackSpec("score-aware", "Linf", 0.3, 0.05, 8, 1, kind="score-aware"),
            AttackSpec("score-aware-lambda0.05", "Linf", 0.3, 0.05, 8, 1, kind="score-aware"),
            AttackSpec("score-aware-lambda1", "Linf", 0.3, 0.05, 8, 1, kind="score-aware"),
            AttackSpec("score-aware-two-phase", "Linf", 0.3, 0.05, 8, 1, kind="score-aware"),
            AttackSpec("autoattack-rand", "Linf", 0.3, 0.05, 8, 1, kind="autoattack-rand"),
            AttackSpec("autoattack-standard", "Linf", 0.3, 0.05, 8, 1, kind="autoattack-standard"),
        ),
        default_attacks=("pgd-linf",),
        methods=(*DEFAULT_METHODS, Method("constant", 100), Method("constant", 200)),
        num_samples=256,
        num_levels=10,
        batch_size=128,
        calibration_samples=1000,
        demo_note=(
            "MNIST CPU demo with a reduced attack budget: PGD-EOT Linf eps=0.3, 8 iterations of 0.05, EOT 1, "
            "3 surrogate steps, defence of 10 strided steps, 256 images (paper protocol: 200 iterations, EOT 20, "
            "20 surrogate steps, every index, 512 images); raise --iterations/--eot/--surrogate-steps for "
            "stronger numbers"
        ),
    ),
    "cifar10-diffpure": Preset(
        name="cifar10-diffpure",
        dataset="cifar10",
        image_size=32,
        channels=3,
        diffusion="cifar10-ddpmpp-deep-continuous",
        classifier="cifar10-wrn-28-10",
        # SSNI README: defence t* 100 with 100 steps (SSNI-N adds b), attack t* 100 with 20 surrogate steps.
        purifier=PurifierSpec("ddpm", stages=((100, 100),), surrogate_stages=((100, 20),)),
        attacks=_paper_attacks(8 / 255, bpda_schedule="surrogate"),  # the reference's BPDA forward
        num_samples=512,
        num_levels=20,
        batch_size=64,
        linear_batch_attack=16,  # SSNI README: attacks in batches of 16 per process, evaluation in batches of 32
        linear_batch_eval=32,
        needs_paths=_CIFAR_PATHS,
    ),
    "cifar10-gns": Preset(
        name="cifar10-gns",
        dataset="cifar10",
        image_size=32,
        channels=3,
        diffusion="cifar10-ddpmpp-deep-continuous",
        classifier="cifar10-wrn-28-10",
        # Lee & Kim (scripts/cifar10_pgd_gradual_noise.sh): stages 30,30,30,30,50,50,125,125 fully denoised,
        # surrogate 30/50/125 with 1/1/5 steps, 10 votes; the SSNI reference recomputes t for every vote.
        purifier=PurifierSpec(
            "gns",
            stages=((30, 30), (30, 30), (30, 30), (30, 30), (50, 50), (50, 50), (125, 125), (125, 125)),
            surrogate_stages=((30, 1), (50, 1), (125, 5)),
            votes=10,
            scores_per_vote=True,
        ),
        attacks=_paper_attacks(8 / 255, bpda_schedule="defence"),  # Lee & Kim's cifar10_bpda.sh: attack = defence
        num_samples=512,
        num_levels=20,
        batch_size=64,
        linear_batch_attack=16,
        linear_batch_eval=32,
        needs_paths=_CIFAR_PATHS,
    ),
    "cifar10-gdmp": Preset(
        name="cifar10-gdmp",
        dataset="cifar10",
        image_size=32,
        channels=3,
        diffusion="cifar10-ddpm",
        classifier="cifar10-wrn-28-10",
        # GDMP (configs/default.yml, cifar10_noguide.yml): 4 unguided repeats of 36 with its own sampler
        # (fixedlarge variance, x̂0 clipping, output clamp), 10 paths. The surrogate (36, 6) has no published source.
        purifier=PurifierSpec(
            "gdmp",
            stages=((36, 36),) * 4,
            surrogate_stages=((36, 6),) * 4,
            votes=10,
            guidance=None,
            sampler="gdmp",
        ),
        attacks=_paper_attacks(8 / 255, bpda_schedule="surrogate"),
        num_samples=512,
        num_levels=20,
        batch_size=64,
        linear_batch_attack=16,
        linear_batch_eval=32,
        needs_paths=_CIFAR_PATHS,
    ),
    "imagenet-diffpure": Preset(
        name="imagenet-diffpure",
        dataset="imagenet",
        image_size=224,
        channels=3,
        diffusion="imagenet-adm-256-uncond",
        classifier="imagenet-resnet50",
        # SSNI README's ImageNet command: attack t* 200 with 10 surrogate steps, batch 1 per process; its evaluation
        # "is the same as CIFAR-10", where the defence t* equals the attack's (DiffPure's own ImageNet t* is 150:
        # --t-star 150). pgd-l2 has no published ImageNet counterpart.
        purifier=PurifierSpec("ddpm", stages=((200, 200),), surrogate_stages=((200, 10),), resolution=256),
        attacks=_paper_attacks(4 / 255, bpda_schedule="surrogate"),
        num_samples=128,
        num_levels=50,
        batch_size=8,
        linear_batch_attack=1,
        linear_batch_eval=None,  # the reference evaluates in 32s; here the chunk of 8 (raise --batch-size to 32)
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
    attacks = tuple(
        replace(a, iterations=o.iterations or a.iterations, eot=o.eot or a.eot, eps=o.eps or a.eps)
        for a in preset.attacks
    )
    if o.l2_step is not None:
        attacks = tuple(a.with_l2_step(o.l2_step, preset.channels * preset.image_size**2) for a in attacks)
    if o.step_size is not None:  # the step of the form that runs (after --l2-step)
        attacks = tuple(replace(a, step_size=o.step_size) for a in attacks)
    if o.bpda_schedule is not None:
        attacks = tuple(replace(a, bpda_schedule=o.bpda_schedule) if a.is_bpda else a for a in attacks)
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
    if o.scores_per_vote is not None:
        purifier = replace(purifier, scores_per_vote=o.scores_per_vote)
    note = preset.demo_note
    if smoke:
        note = SMOKE_NOTE
    elif note and any(v is not None for v in (o.iterations, o.eot, o.surrogate_steps, o.eps, o.step_size)):
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
        linear_batch_attack=o.linear_batch_attack,
        linear_batch_eval=o.linear_batch_eval,
    ).with_overrides(demo_note=note)


def get_preset(name: str) -> Preset:
    """The preset called `name`; an unknown name is a user error listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise SSNIUserError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None
