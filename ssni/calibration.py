"""Clean reference statistics of the score norm (spec §3), a τ proposal and a τ sweep.

A `Calibration` is saved as a JSON file (identity, protocol and statistics) with the clean norms beside it in a
safetensors file of the same stem (`<path>.norms.safetensors`); both appear complete or not at all. Loading checks
every field (a missing, unknown or ill-typed one raises `CalibrationFileError` naming the file and the field) and
the identity: a calibration made for another model, T' (num_levels) or resolution raises
`CalibrationMismatchError`. Both are user errors and ValueErrors.

τ proposal (τ has no published value; the authors ablate it). SSNI-N maps e to t = sigmoid((e − μ)/τ)·(T + b):
- with adversarial norms: τ = (μ_adv − μ)/logit(0.9), so the mean adversarial input gets 90% of the maximal t;
- clean only (or μ_adv ≤ μ): τ = the clean std, so a clean input one std above μ gets sigmoid(1) ≈ 73%.
`tau_sweep` returns τ·factors around the proposal for the ablation.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ssni.atomic_files import atomic_output
from ssni.errors import SSNIUserError, one_line
from ssni.models.interface import CallCounter
from ssni.schedules import NUM_TRAIN_STEPS
from ssni.score import eps_score_norm
from ssni.validate import MAX_SEED, check_images, check_int

__all__ = [
    "Calibration",
    "CalibrationFileError",
    "CalibrationMismatchError",
    "calibrate",
    "propose_tau",
    "tau_sweep",
    "QUANTILES",
]

FORMAT_VERSION = 1
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
SCHEDULE = "vp-sde beta_min=0.1 beta_max=20; levels t_k=k/1000, k=1..K; label 999*t_k"
TARGET_ADV_RATIO = 0.9


class CalibrationMismatchError(SSNIUserError, ValueError):
    """A calibration is used with another model, T' or resolution than it was made for."""


class CalibrationFileError(SSNIUserError, ValueError):
    """A calibration file that cannot be used: unreadable, not JSON, or a field missing, unknown or ill-typed."""


def _int_in(low: int, high: int | None = None):
    """Whether a JSON value is an int in [low, high] (`ssni.validate.check_int`)."""

    def valid(value) -> bool:
        try:
            check_int("value", value, low=low, high=high)
        except ValueError:
            return False
        return True

    return valid


def _is_finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


#: Every field of a calibration file: (is the JSON value valid, what it must be).
_FILE_FIELDS = {
    "model_id": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "num_levels": (_int_in(1, NUM_TRAIN_STEPS), f"an int in [1, {NUM_TRAIN_STEPS}]"),
    "resolution": (
        lambda v: isinstance(v, list) and len(v) == 2 and all(map(_int_in(1), v)),
        "[height, width] (two positive ints)",
    ),
    "seed": (_int_in(0, MAX_SEED), f"an int in [0, {MAX_SEED}]"),
    "num_samples": (_int_in(2), "an int >= 2"),
    "mean": (_is_finite, "a finite number"),
    "std": (lambda v: _is_finite(v) and v >= 0, "a finite number >= 0"),
    "min": (_is_finite, "a finite number"),
    "max": (_is_finite, "a finite number"),
    "quantiles": (
        lambda v: isinstance(v, dict) and all(_is_finite(q) for q in v.values()),
        "an object of finite numbers",
    ),
    "tau": (lambda v: _is_finite(v) and v > 0, "a positive finite number"),
    "adv_mean": (lambda v: v is None or _is_finite(v), "null or a finite number"),
    "schedule": (lambda v: isinstance(v, str), "a string"),
    "source": (
        lambda v: v is None or (isinstance(v, dict) and {"dataset", "split", "num_files", "num_samples"} <= set(v)),
        "null or an object with dataset, split, num_files and num_samples (see ssni calibrate)",
    ),
    "version": (
        _int_in(FORMAT_VERSION, FORMAT_VERSION),
        f"{FORMAT_VERSION} (this ssni reads calibration format {FORMAT_VERSION})",
    ),
}
_OPTIONAL_FIELDS = ("adv_mean", "schedule", "source")


def _file_fields(d, path: Path) -> dict:
    """The constructor arguments of a calibration file's JSON content `d`, every field checked."""
    if not isinstance(d, dict):
        raise CalibrationFileError(
            f"calibration file {path} is corrupt: expected a JSON object, got {type(d).__name__}"
        )
    unknown = sorted(set(d) - set(_FILE_FIELDS))
    if unknown:
        raise CalibrationFileError(f"calibration file {path}: unknown field(s) {', '.join(map(repr, unknown))}")
    for name, (valid, what) in _FILE_FIELDS.items():
        if name not in d:
            if name in _OPTIONAL_FIELDS:
                continue
            raise CalibrationFileError(f"calibration file {path}: field {name!r} is missing")
        if not valid(d[name]):
            raise CalibrationFileError(f"calibration file {path}: field {name!r} must be {what}, got {d[name]!r}")
    if not d["min"] <= d["mean"] <= d["max"]:
        raise CalibrationFileError(f"calibration file {path}: fields 'min' <= 'mean' <= 'max' do not hold")
    return {**d, "resolution": tuple(d["resolution"])}


@dataclass
class Calibration:
    """Clean score-norm statistics and the identity they belong to.

    model_id: a string naming the score network (checkpoint name or hash); num_levels: T'; resolution: (H, W);
    seed: the EPS seed; num_samples: size of the reference set; mean/std/min/max/quantiles: of the clean norms;
    tau: the proposed SSNI-N temperature; adv_mean: mean adversarial norm used for τ (None: clean only);
    source: where the clean images came from (`ssni.data.datasets.calibration_images`; None: not recorded), so
    that a calibration sharing images with the evaluated subset can be refused; norms: the clean norms
    (float64 [N]) or None.
    """

    model_id: str
    num_levels: int
    resolution: tuple[int, int]
    seed: int
    num_samples: int
    mean: float
    std: float
    min: float
    max: float
    quantiles: dict[str, float]
    tau: float
    adv_mean: float | None = None
    source: dict | None = None
    schedule: str = SCHEDULE
    version: int = FORMAT_VERSION
    norms: torch.Tensor | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_norms(
        cls,
        norms: torch.Tensor,
        *,
        model_id: str,
        num_levels: int,
        resolution: tuple[int, int],
        seed: int,
        adv_norms: torch.Tensor | None = None,
    ) -> Calibration:
        """Statistics of clean norms [N] (N ≥ 2), with τ proposed from them (and adversarial norms if given)."""
        norms = torch.as_tensor(norms).detach().to(torch.float64).flatten().cpu()
        if norms.numel() < 2 or not torch.isfinite(norms).all():
            raise ValueError("norms must hold at least 2 finite values")
        q = torch.quantile(norms, torch.tensor(QUANTILES, dtype=torch.float64))
        adv_mean = None
        if adv_norms is not None:
            adv_mean = float(torch.as_tensor(adv_norms).to(torch.float64).mean())
        return cls(
            model_id=str(model_id),
            num_levels=int(num_levels),
            resolution=(int(resolution[0]), int(resolution[1])),
            seed=int(seed),
            num_samples=norms.numel(),
            mean=float(norms.mean()),
            std=float(norms.std()),
            min=float(norms.min()),
            max=float(norms.max()),
            quantiles={f"{p:g}": float(v) for p, v in zip(QUANTILES, q)},
            tau=propose_tau(norms, adv_norms),
            adv_mean=adv_mean,
            norms=norms,
        )

    # ------------------------------------------------------------------------------------------- identity
    def check(self, *, model_id: str | None = None, num_levels: int | None = None, resolution=None) -> None:
        """Raise CalibrationMismatchError if any given identity field differs from this calibration's."""
        wrong = []
        if model_id is not None and model_id != self.model_id:
            wrong.append(f"model_id {model_id!r} != calibrated {self.model_id!r}")
        if num_levels is not None and int(num_levels) != self.num_levels:
            wrong.append(f"num_levels (T') {num_levels} != calibrated {self.num_levels}")
        if resolution is not None and tuple(int(r) for r in resolution) != tuple(self.resolution):
            wrong.append(f"resolution {tuple(resolution)} != calibrated {tuple(self.resolution)}")
        if wrong:
            raise CalibrationMismatchError("calibration mismatch: " + "; ".join(wrong) + " (recalibrate)")

    def with_adversarial(self, adv_norms: torch.Tensor) -> Calibration:
        """The same clean statistics with τ (and adv_mean) proposed from adversarial norms as well."""
        return Calibration.from_norms(
            self.norms,
            model_id=self.model_id,
            num_levels=self.num_levels,
            resolution=self.resolution,
            seed=self.seed,
            adv_norms=adv_norms,
        )

    def with_tau(self, tau: float) -> Calibration:
        """A copy with another τ (for a sweep)."""
        if not tau > 0:
            raise ValueError(f"tau must be > 0, got {tau!r}")
        return Calibration(**{**self._fields(), "tau": float(tau)}, norms=self.norms)

    # ------------------------------------------------------------------------------------------- files
    def _fields(self) -> dict:
        d = asdict(self)
        d.pop("norms")
        return d

    @staticmethod
    def norms_path(path: str | Path) -> Path:
        """The clean norms file beside the calibration file `path`: `<path>.norms.safetensors`."""
        path = Path(path)
        return path.with_name(path.name + ".norms.safetensors")

    def save(self, path) -> Path:
        """Write `path` (JSON) and, when norms are held, `<path>.norms.safetensors` (a stale one is removed
        otherwise), each under a temporary name renamed at the end (the JSON last). Returns the JSON path."""
        from safetensors.torch import save_file

        path = Path(path)
        d = self._fields()
        d["resolution"] = list(self.resolution)
        norms_path = self.norms_path(path)
        with atomic_output(path) as json_tmp:
            json_tmp.write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")
            if self.norms is None:
                norms_path.unlink(missing_ok=True)
            else:
                with atomic_output(norms_path) as norms_tmp:
                    save_file({"norms": self.norms.contiguous()}, str(norms_tmp))
        return path

    @classmethod
    def load(cls, path, *, model_id: str | None = None, num_levels: int | None = None, resolution=None) -> Calibration:
        """Read a calibration; with model_id/num_levels/resolution given, refuse a mismatched one.

        FileNotFoundError for a missing file; CalibrationFileError (naming the file and the field) for a file that
        is not a calibration; CalibrationMismatchError (naming the file) for one made for other settings."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"calibration file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise CalibrationFileError(f"cannot read calibration file {path} ({one_line(err)})") from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as err:
            raise CalibrationFileError(f"calibration file {path} is corrupt: not JSON ({err})") from None
        cal = cls(**_file_fields(d, path))
        norms_path = cls.norms_path(path)
        if norms_path.is_file():
            cal.norms = _load_norms(norms_path, cal.num_samples)
        try:
            cal.check(model_id=model_id, num_levels=num_levels, resolution=resolution)
        except CalibrationMismatchError as err:
            raise CalibrationMismatchError(f"calibration {path}: {err}") from None
        return cal


def _load_norms(path: Path, num_samples: int) -> torch.Tensor:
    """The clean norms of a calibration's norms file: float64 [num_samples], finite."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        norms = load_file(str(path)).get("norms")
    except (OSError, SafetensorError) as err:
        raise CalibrationFileError(f"calibration norms file {path} is corrupt ({one_line(err)[:200]})") from None
    if not isinstance(norms, torch.Tensor) or norms.shape != (num_samples,) or not norms.is_floating_point():
        got = "no 'norms' tensor" if norms is None else f"{norms.dtype} {tuple(norms.shape)}"
        raise CalibrationFileError(
            f"calibration norms file {path}: expected 'norms' float [{num_samples}] (num_samples of the calibration "
            f"file), got {got}"
        )
    if not torch.isfinite(norms).all():
        raise CalibrationFileError(f"calibration norms file {path}: 'norms' holds NaN or Inf")
    return norms.to(torch.float64)


def propose_tau(norms: torch.Tensor, adv_norms: torch.Tensor | None = None) -> float:
    """τ from clean norms (and adversarial ones if given); the rule is in the module docstring."""
    norms = torch.as_tensor(norms).to(torch.float64)
    mu, std = float(norms.mean()), float(norms.std())
    if adv_norms is not None:
        gap = float(torch.as_tensor(adv_norms).to(torch.float64).mean()) - mu
        if gap > 0:
            return gap / math.log(TARGET_ADV_RATIO / (1 - TARGET_ADV_RATIO))
    if not std > 0:
        raise ValueError("cannot propose tau: the clean norms have zero spread")
    return std


def tau_sweep(calibration: Calibration, factors: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0)) -> list[float]:
    """τ values for an ablation: the proposed τ times each factor."""
    return [calibration.tau * float(f) for f in factors]


def _batches(data, batch_size: int) -> Iterable[torch.Tensor]:
    if isinstance(data, torch.Tensor):
        for start in range(0, data.shape[0], batch_size):
            yield data[start : start + batch_size]
        return
    for item in data:
        yield item[0] if isinstance(item, (tuple, list)) else item


def calibrate(
    model: nn.Module,
    data,
    *,
    model_id: str,
    num_levels: int = 20,
    seed: int = 121,
    batch_size: int = 256,
    chunk_size: int | None = None,
    adversarial=None,
    device=None,
    counter: CallCounter | None = None,
) -> Calibration:
    """Compute the clean statistics of §3.

    data: a tensor [N, C, H, W] in [0, 1] or an iterable of batches (tensors or (x, y) tuples), e.g. the 5,000
    training images of RandomState(0).choice(n_train, 5000, replace=False). Sample ids are the running position
    in `data` (0..N−1). adversarial: optional adversarial images (same forms) for the τ proposal.
    """

    def norms_of(source) -> torch.Tensor:
        out, offset, shape = [], 0, None
        for x in _batches(source, batch_size):
            x = check_images(x if device is None else x.to(device), "data")
            shape = shape or tuple(x.shape[1:])
            if tuple(x.shape[1:]) != shape:
                raise ValueError(f"data batches must share one image shape, got {shape} and {tuple(x.shape[1:])}")
            ids = torch.arange(offset, offset + x.shape[0], device=x.device)
            out.append(
                eps_score_norm(
                    model, x, num_levels, seed=seed, sample_ids=ids, chunk_size=chunk_size, counter=counter
                ).cpu()
            )
            offset += x.shape[0]
        if not out:
            raise ValueError("data is empty")
        return torch.cat(out), shape

    clean, shape = norms_of(data)
    adv = None if adversarial is None else norms_of(adversarial)[0]
    return Calibration.from_norms(
        clean, model_id=model_id, num_levels=num_levels, resolution=shape[-2:], seed=seed, adv_norms=adv
    )
