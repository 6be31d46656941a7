"""Typed, validated requests of the evaluation commands: the CLI converts its arguments into these at the edge
(as NVlabs/edm's train.py does), and the library never sees argparse.

Every field is checked when the request is built, so a bad value is a one-line user error naming the flag before
any model or data is loaded, and every output path is checked before anything is computed: a file output must not
be a folder, a folder output not a file, and its folder must exist or be creatable (its nearest existing ancestor a
writable folder).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ssni.calibration import Calibration
from ssni.errors import SSNIUserError
from ssni.eval.methods import Method
from ssni.schedules import NUM_TRAIN_STEPS
from ssni.validate import MAX_SEED, check_int

__all__ = [
    "Sources",
    "Overrides",
    "EvalRequest",
    "PurifyRequest",
    "CalibrateRequest",
    "ReportRequest",
    "ATTACK_SEEDS",
    "check_output",
]

ATTACK_SEEDS = ("shared", "per-seed")
DEVICE_PATTERN = re.compile(r"cpu|auto|cuda(:\d+)?")


def _int(flag: str, value, *, low: int | None = 1, high: int | None = None, optional: bool = True) -> None:
    """`ssni.validate.check_int` as a user error naming the flag (None: not given, allowed when `optional`)."""
    if value is None and optional:
        return
    try:
        check_int(flag, value, low=low, high=high)
    except ValueError as e:
        raise SSNIUserError(str(e)) from None


def check_output(flag: str, path: Path, *, folder: bool = False) -> Path:
    """`path` can be written as the output of `flag`: a file (or, with `folder`, a folder) that is not the other
    kind, under a folder that exists or can be made. Returns `path`."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise SSNIUserError(f"{flag} {path} is a file, not a folder")
    if not folder and path.is_dir():
        raise SSNIUserError(f"{flag} {path} is a folder; give a file name")
    if not folder and path.exists() and not os.access(path, os.W_OK):
        raise SSNIUserError(f"{flag} {path} is read-only")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise SSNIUserError(f"{flag} {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise SSNIUserError(f"{flag} {path}: cannot write in the folder {ancestor} (permission denied)")
    return path


@dataclass(frozen=True)
class Sources:
    """Where models and data come from: the user's files (None: the preset's embedded default, where it has one)."""

    diffusion_checkpoint: Path | None = None  # diffusion model file
    classifier_checkpoint: Path | None = None  # classifier file
    calibration: Path | None = None  # calibration file from `ssni calibrate`
    data: Path | None = None  # dataset folder (CIFAR-10 python batches; ImageNet class folders)
    data_seed: int = 0  # ImageNet evaluation subset seed (spec §8)
    device: str = "auto"  # cpu, cuda, cuda:N or auto

    def __post_init__(self) -> None:
        _int("--data-seed", self.data_seed, low=0, high=2**32 - 1, optional=False)
        if not (isinstance(self.device, str) and DEVICE_PATTERN.fullmatch(self.device)):
            raise SSNIUserError(f"--device must be cpu, cuda, cuda:N or auto, got {self.device!r}")


@dataclass(frozen=True)
class Overrides:
    """Changes to a preset's configuration (None: the preset's value)."""

    num_samples: int | None = None  # images of the protocol subset
    batch_size: int | None = None  # images per chunk
    num_levels: int | None = None  # EPS noise levels T'
    seeds: tuple[int, ...] | None = None  # evaluation seeds
    methods: tuple[Method, ...] | None = None  # defences to compare
    t_sweep: tuple[int, ...] = ()  # extra constant-t baselines
    attacks: tuple[str, ...] | None = None  # attack names of the preset
    eps: float | None = None  # attack radius of every selected attack (they must share one norm)
    step_size: float | None = None  # attack step of every selected attack that takes one (PGD, BPDA, score-aware)
    iterations: int | None = None  # attack iterations (all attacks)
    eot: int | None = None  # EOT samples per gradient (all attacks)
    surrogate_steps: int | None = None  # reverse steps of the differentiable surrogate
    t_star: int | None = None  # constant t* of the baseline (single-stage hosts)
    attack_seeds: str | None = None  # "shared" (attack once, at the first seed) or "per-seed"
    l2_step: str | None = None  # L2 PGD step: "sign" (the reference's) or "normalized"
    bpda_schedule: str | None = None  # BPDA forward: "defence" or "surrogate" (the attack schedule)
    linear_batch_attack: int | None = None  # SSNI-L min/max group while attacking
    linear_batch_eval: int | None = None  # SSNI-L min/max group while evaluating
    scores_per_vote: bool | None = None  # SSNI recomputes its score norm for every vote

    def __post_init__(self) -> None:
        for name in ("num_samples", "batch_size", "iterations", "eot", "surrogate_steps", "linear_batch_attack"):
            _int(f"--{name.replace('_', '-')}", getattr(self, name))
        _int("--linear-batch-eval", self.linear_batch_eval)
        _int("--num-levels", self.num_levels, high=NUM_TRAIN_STEPS)
        for flag, value in (("--eps", self.eps), ("--step-size", self.step_size)):
            _check_positive(flag, value)
        _choice("--l2-step", self.l2_step, ("sign", "normalized"))
        _choice("--bpda-schedule", self.bpda_schedule, ("defence", "surrogate"))
        if self.seeds is not None:
            if not self.seeds:
                raise SSNIUserError("--seeds must name at least one seed")
            for s in self.seeds:
                _int("--seeds: each seed", s, low=0, high=MAX_SEED, optional=False)
            repeated = sorted({s for s in self.seeds if self.seeds.count(s) > 1})
            if repeated:
                raise SSNIUserError(f"--seeds names {', '.join(map(str, repeated))} more than once")
        if self.methods is not None and not self.methods:
            raise SSNIUserError("--methods must name at least one method")
        if self.attacks is not None and not self.attacks:
            raise SSNIUserError("--attacks must name at least one attack")
        for t in self.t_sweep:
            _int("--t-sweep: each t", t, high=1000, optional=False)
        _int("--t-star", self.t_star, high=995)
        if self.attack_seeds not in (None, *ATTACK_SEEDS):
            raise SSNIUserError(f"--attack-seeds must be one of {', '.join(ATTACK_SEEDS)}, got {self.attack_seeds!r}")


@dataclass(frozen=True)
class EvalRequest:
    """`ssni eval`: clean and robust accuracy of the preset's methods under its attacks."""

    preset: str = "mnist"
    sources: Sources = field(default_factory=Sources)
    overrides: Overrides = field(default_factory=Overrides)
    tau: float | None = None  # SSNI-N temperature (None: the calibration's proposal)
    network_batch: int | None = None  # most rows per diffusion-network call (None: the batch size)
    out: Path | None = None  # records file (None: ssni-results/<preset>[-smoke].jsonl)
    smoke: bool = False  # the tiny CI configuration
    overwrite: bool = False  # discard an existing records file instead of resuming
    progress: bool = True  # show a progress bar
    save_adversarial: bool = False  # keep the adversarial examples (they are kept anyway when attacks are shared)

    def __post_init__(self) -> None:
        _int("--network-batch", self.network_batch)
        _check_tau(self.tau)
        check_output("--out", self.out_path)

    @property
    def out_path(self) -> Path:
        """The records file: --out, or ssni-results/<preset>[-smoke].jsonl."""
        return self.out or Path("ssni-results") / f"{self.preset}{'-smoke' if self.smoke else ''}.jsonl"


@dataclass(frozen=True)
class PurifyRequest:
    """`ssni purify`: purified images and a per-sample table of score norm and t."""

    out: Path  # purified images (.pt)
    preset: str = "mnist"
    sources: Sources = field(default_factory=Sources)
    overrides: Overrides = field(default_factory=Overrides)
    images: Path | None = None  # a folder of images, a .pt or .npy file (None: the preset's data)
    scores: Path | None = None  # the per-sample table, .csv or .json (None: <out>.csv)
    png: Path | None = None  # a folder for 8-bit PNGs of the purified images (None: none written)
    method: Method = Method("ssni-n")
    seed: int = 121
    tau: float | None = None
    network_batch: int | None = None

    def __post_init__(self) -> None:
        if self.out.suffix != ".pt":
            raise SSNIUserError(f"--out must be a .pt file, got {self.out}")
        if self.scores_path.suffix not in (".csv", ".json"):
            raise SSNIUserError(f"--scores must end in .csv or .json, got {self.scores_path}")
        _int("--network-batch", self.network_batch)
        _int("--seed", self.seed, low=0, high=MAX_SEED, optional=False)
        _check_tau(self.tau)
        _refuse_with_input(self.images, self.sources, self.overrides.num_samples)
        check_output("--out", self.out)
        check_output("--scores", self.scores_path)
        if self.png is not None:
            check_output("--png", self.png, folder=True)

    @property
    def scores_path(self) -> Path:
        return self.scores or self.out.with_suffix(".csv")


@dataclass(frozen=True)
class CalibrateRequest:
    """`ssni calibrate`: clean score-norm statistics of the reference set and a proposed τ."""

    out: Path  # calibration file (.json)
    preset: str = "mnist"
    sources: Sources = field(default_factory=Sources)
    overrides: Overrides = field(default_factory=Overrides)
    images: Path | None = None  # the user's clean images: a folder, a .pt or .npy file (None: the preset's)
    num_samples: int | None = None  # clean training images drawn from the preset's (None: the preset's number)
    seed: int = 121
    tau: float | None = None  # store this τ instead of the proposal
    adversarial: Path | None = None  # a records file whose adversarial score norms inform τ

    def __post_init__(self) -> None:
        _int("--num-samples", self.num_samples, low=2)  # statistics need two norms at least
        _int("--seed", self.seed, low=0, high=MAX_SEED, optional=False)
        _check_tau(self.tau)
        _refuse_with_input(self.images, self.sources, self.num_samples)
        if self.sources.data_seed != 0:
            raise SSNIUserError("--data-seed picks the ImageNet evaluation subset; calibrate does not use it")
        check_output("--out", self.out)
        check_output("--out (its norms file)", Calibration.norms_path(self.out))


@dataclass(frozen=True)
class ReportRequest:
    """`ssni report`: the Markdown table and plots of a records file."""

    results: Path  # records file written by `ssni eval`
    out_dir: Path | None = None  # None: <results>-report/

    def __post_init__(self) -> None:
        if not self.results.is_file():
            state = "is a folder, not a records file" if self.results.is_dir() else "does not exist"
            raise SSNIUserError(f"results file {self.results} {state}")
        check_output("--out-dir", self.out_dir_path, folder=True)

    @property
    def out_dir_path(self) -> Path:
        return self.out_dir or self.results.with_name(self.results.stem + "-report")


def _choice(flag: str, value, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise SSNIUserError(f"{flag} must be one of {', '.join(choices)}, got {value!r}")


def _check_positive(flag: str, value) -> None:
    """None (not given) or a positive finite number."""
    valid = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf")
    if value is not None and not valid:
        raise SSNIUserError(f"{flag} must be a positive finite number, got {value!r}")


def _check_tau(tau) -> None:
    _check_positive("--tau", tau)


def _refuse_with_input(images: Path | None, sources: Sources, num_samples: int | None) -> None:
    """--num-samples and --data pick the preset's images: not used when the command is given its own."""
    if images is None:
        return
    for flag, value in (("--num-samples", num_samples), ("--data", sources.data)):
        if value is not None:
            raise SSNIUserError(f"{flag} picks the preset's images; it is not used with an input ({images})")
