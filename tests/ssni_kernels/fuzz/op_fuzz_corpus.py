"""The op fuzz corpus: bad and unusual inputs to every public op of ssni_kernels, each with its expected outcome.

A case is one op called with its valid base arguments, some of them replaced (or dropped). Expected outcomes:
- `OK`: the op returns a tensor of the expected shape, dtype and device; with `same_as`, bit-equal to the op
  called with those other arguments (an int8 `t` must give exactly what the int64 `t` gives); with `returns`,
  bit-equal to that argument;
- `Raises(error, argument)`: exactly that error type, a one-line message that starts with "<op>: " and names
  the argument (Python's own signature errors name it without the op prefix: `prefix=False`).

Imported by the test (for the ids and expectations) and by `op_fuzz_runner.py` in a subprocess (to run them), so
that a crash of one case cannot take the test session down.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

import ssni_kernels

DROP = object()  # an override that removes the argument


@dataclasses.dataclass(frozen=True)
class OK:
    same_as: dict[str, Any] | None = None  # overrides of the base call whose output must be bit-equal
    returns: str | None = None  # the argument the output must equal bit for bit


@dataclasses.dataclass(frozen=True)
class Raises:
    error: type[Exception]
    argument: str
    match: str = ""
    prefix: bool = True


@dataclasses.dataclass(frozen=True)
class OpSpec:
    fn: Any
    base: dict[str, Any]
    data: str  # the argument whose dtype/device the output takes (x, eps_hat, counters)


@dataclasses.dataclass(frozen=True)
class Case:
    op: str
    name: str
    overrides: dict[str, Any]
    expect: OK | Raises

    @property
    def id(self) -> str:
        return f"{self.op}-{self.name}"

    def arguments(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        merged = {**OPS[self.op].base, **(self.overrides if overrides is None else overrides)}
        return {name: value for name, value in merged.items() if value is not DROP}

    def run(self) -> dict[str, Any]:
        """Call the op (in the runner process); a summary of its output, checked against the expectation."""
        spec, arguments = OPS[self.op], self.arguments()
        out = spec.fn(**arguments)
        shape, dtype = _expected_output(self.op, arguments)
        summary = {
            "shape_ok": tuple(out.shape) == shape,
            "dtype_ok": out.dtype == dtype,
            "device_ok": out.device == arguments[spec.data].device,
        }
        if isinstance(self.expect, OK) and self.expect.same_as is not None:
            expected = spec.fn(**self.arguments({**self.overrides, **self.expect.same_as}))
            summary["same"] = bool(torch.equal(out, expected))
        if isinstance(self.expect, OK) and self.expect.returns is not None:
            summary["same"] = bool(torch.equal(out, arguments[self.expect.returns]))
        return summary


def _expected_output(op: str, arguments: dict[str, Any]) -> tuple[tuple[int, ...], torch.dtype]:
    if op == "score_norm":
        eps_hat = arguments["eps_hat"]
        dtype = torch.float64 if eps_hat.dtype == torch.float64 else torch.float32
        return (eps_hat.shape[0] // arguments["sigma"].shape[0],), dtype
    if op == "philox_bits":
        return tuple(arguments["counters"].shape), torch.int64
    x = arguments["x"]
    if op == "noise_inject_levels":
        return (arguments["mean_coef"].shape[0] * x.shape[0], *x.shape[1:]), x.dtype
    return tuple(x.shape), x.dtype


# ---------------------------------------------------------------------------------------------------------
# Valid base calls (B = 3 samples, K = 2 levels)
# ---------------------------------------------------------------------------------------------------------
_generator = torch.Generator().manual_seed(0)
B, ROW = 3, (2, 4, 4)
X = torch.randn(B, *ROW, generator=_generator)
EPS = torch.randn(B, *ROW, generator=_generator)
LEVEL_EPS = torch.randn(2 * B, *ROW, generator=_generator)
AC = torch.cumprod(1 - torch.linspace(1e-4, 2e-2, 1000, dtype=torch.float64), 0).float()
T = torch.tensor([0, 500, 999])
A, A_NEXT = AC[T], torch.cat([torch.ones(1), AC[T[1:] - 1]])
VP_T = torch.tensor([0.2, 0.5, 1.0])
MEAN, STD = torch.tensor([0.9, 0.5]), torch.tensor([0.43, 0.86])
SIGMA = torch.tensor([0.1, 0.5])
COUNTERS = torch.randint(0, 2**32, (5, 4), generator=_generator)
META = torch.device("meta")

OPS = {
    "noise_inject": OpSpec(ssni_kernels.noise_inject, {"x": X, "t": T, "alphas_cumprod": AC, "seed": 7}, "x"),
    "noise_inject_levels": OpSpec(
        ssni_kernels.noise_inject_levels, {"x": X, "mean_coef": MEAN, "std": STD, "seed": 7}, "x"
    ),
    "score_norm": OpSpec(ssni_kernels.score_norm, {"eps_hat": LEVEL_EPS, "sigma": SIGMA}, "eps_hat"),
    "reverse_step": OpSpec(
        ssni_kernels.reverse_step, {"x": X, "eps_hat": EPS, "a": A, "a_next": A_NEXT, "eta": 1.0, "seed": 7}, "x"
    ),
    "vp_sde_step": OpSpec(ssni_kernels.vp_sde_step, {"x": X, "eps_hat": EPS, "t": VP_T, "dt": 1e-3, "seed": 7}, "x"),
    "philox_bits": OpSpec(ssni_kernels.philox_bits, {"counters": COUNTERS, "seed": 7}, "counters"),
}
INTEGER_DTYPES = [torch.int8, torch.uint8, torch.int16, torch.int32, torch.uint16, torch.uint32, torch.uint64]


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _nan_at(v: torch.Tensor, value: float) -> torch.Tensor:
    v = v.clone()
    v.view(-1)[0] = value
    return v


def _strided(v: torch.Tensor) -> torch.Tensor:
    """The same values in a non-contiguous layout."""
    doubled = torch.stack([v, torch.zeros_like(v)], dim=-1)
    return doubled[..., 0]


# ---------------------------------------------------------------------------------------------------------
# Families of cases, by kind of argument
# ---------------------------------------------------------------------------------------------------------
def _data_cases(op: str, name: str) -> list[Case]:
    """The [B, ...] floating argument (x, or eps_hat of score_norm); the others follow its batch size."""
    v = OPS[op].base[name]
    bad = {
        "list": ([1.0, 2.0], TypeError),
        "none": (None, TypeError),
        "numpy": (v.numpy(), TypeError),
        "int64": (v.long(), TypeError),
        "bool": (v > 0, TypeError),
        "complex": (v.to(torch.complex64), TypeError),
        "0dim": (v[0, 0, 0, 0], ValueError),
        "empty-batch": (v[:0], ValueError),
    }
    cases = [Case(op, f"{name}-{label}", {name: value}, Raises(error, name)) for label, (value, error) in bad.items()]
    contiguous = {name: v}
    strided = {
        "permuted": v.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2),
        "channels-last": v.to(memory_format=torch.channels_last),
        "expanded": v[:, :1].expand(v.shape),
    }
    cases += [
        Case(op, f"{name}-{label}", {name: value}, OK(same_as={name: value.contiguous()}))
        for label, value in strided.items()
    ]
    cases += [
        Case(op, f"{name}-nan", {name: _nan_at(v, float("nan"))}, OK()),
        Case(op, f"{name}-inf", {name: _nan_at(v, float("inf"))}, OK()),
        Case(op, f"{name}-requires-grad", {name: v.clone().requires_grad_()}, OK(same_as=contiguous)),
    ]
    return cases


def _row_shape_cases(op: str, extra=lambda x: {}) -> list[Case]:
    """Unusual per-sample shapes: no trailing dims, zero-size dims, one element; `extra` adapts the other [B, ...]
    arguments (eps_hat) to x."""
    shapes = {"x-1d": (B,), "x-zero-size-row": (B, 0, 4), "x-zero-size-inner": (B, 2, 0, 3), "x-one-element": (B, 1)}
    cases = []
    for label, shape in shapes.items():
        x = torch.ones(shape)
        cases.append(Case(op, label, {"x": x, **extra(x)}, OK()))
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        x = X.to(dtype)
        cases.append(Case(op, f"x-{_dtype_name(dtype)}", {"x": x, **extra(x)}, OK()))
    return cases


def _integer_vector_cases(op: str, name: str, valid: torch.Tensor, *, per_sample: bool) -> list[Case]:
    """An integer [n] tensor argument (t, sample_ids, step words, counters): every integer dtype holding valid
    values gives what int64 gives; bool/float/complex are refused by dtype; shape and device are checked.
    per_sample: a Python int or a 0-dim tensor means that value for every sample."""
    cases = [
        Case(op, f"{name}-{_dtype_name(dtype)}", {name: valid.to(dtype)}, OK(same_as={name: valid}))
        for dtype in INTEGER_DTYPES
    ]
    cases += [
        Case(op, f"{name}-strided", {name: _strided(valid)}, OK(same_as={name: valid})),
        Case(op, f"{name}-bool", {name: valid > 0}, Raises(TypeError, name, "integer")),
        Case(op, f"{name}-float", {name: valid.double()}, Raises(TypeError, name, "integer")),
        Case(op, f"{name}-complex", {name: valid.to(torch.complex64)}, Raises(TypeError, name, "integer")),
        Case(op, f"{name}-list", {name: valid.tolist()}, Raises(TypeError, name)),
    ]
    if valid.dim() == 1:  # paired with x: its length and device
        cases.append(Case(op, f"{name}-meta", {name: valid.to(META)}, Raises(ValueError, name, "is on meta")))
        cases += [
            Case(op, f"{name}-too-long", {name: torch.cat([valid, valid[:1]])}, Raises(ValueError, name, "shape")),
            Case(op, f"{name}-too-short", {name: valid[:-1]}, Raises(ValueError, name, "shape")),
            Case(op, f"{name}-2d", {name: valid[None]}, Raises(ValueError, name, "shape")),
        ]
    first = int(valid.view(-1)[0])
    same = torch.full_like(valid, first)
    if per_sample:
        cases += [
            Case(op, f"{name}-python-int", {name: first}, OK(same_as={name: same})),
            Case(op, f"{name}-numpy-int", {name: np.int16(first)}, OK(same_as={name: same})),
            Case(op, f"{name}-0dim-uint8", {name: torch.tensor(first, dtype=torch.uint8)}, OK(same_as={name: same})),
            Case(op, f"{name}-python-float", {name: float(first)}, Raises(TypeError, name)),
            Case(op, f"{name}-python-bool", {name: True}, Raises(TypeError, name)),
            Case(op, f"{name}-huge-python-int", {name: 2**70}, Raises(ValueError, name)),
        ]
    else:
        cases += [
            Case(op, f"{name}-python-int", {name: first}, Raises(TypeError, name)),
            Case(op, f"{name}-0dim", {name: torch.tensor(first)}, Raises(ValueError, name, "shape")),
        ]
    return cases


def _sample_ids_cases(op: str) -> list[Case]:
    ids = torch.tensor([3, 0, 100])
    wrapped = {"sample_ids": ids}
    return [
        *_integer_vector_cases(op, "sample_ids", ids, per_sample=False),
        Case(op, "sample_ids-negative", {"sample_ids": ids - 2**32}, OK(same_as=wrapped)),  # ids are mod 2**32
        Case(op, "sample_ids-above-2**32", {"sample_ids": ids + 2**32}, OK(same_as=wrapped)),
        Case(op, "sample_ids-int64-extremes", {"sample_ids": torch.tensor([-(2**63), 2**63 - 1, 0])}, OK()),
        Case(op, "sample_ids-uint64-huge", {"sample_ids": torch.tensor([2**64 - 1, 1, 2], dtype=torch.uint64)}, OK()),
    ]


def _seed_cases(op: str) -> list[Case]:
    """seed: any integer in [-2**63, 2**64); seeds ≥ 2**63 are the same key as their int64 bit pattern."""
    return [
        Case(op, "seed-2**64-1", {"seed": 2**64 - 1}, OK(same_as={"seed": -1})),
        Case(op, "seed-2**63", {"seed": 2**63}, OK(same_as={"seed": -(2**63)})),
        Case(op, "seed-numpy-uint64", {"seed": np.uint64(2**64 - 1)}, OK(same_as={"seed": -1})),
        Case(op, "seed-numpy-int8", {"seed": np.int8(7)}, OK(same_as={"seed": 7})),
        Case(op, "seed-2**64", {"seed": 2**64}, Raises(ValueError, "seed", r"\[-2\*\*63, 2\*\*64\)")),
        Case(op, "seed-below-int64", {"seed": -(2**63) - 1}, Raises(ValueError, "seed")),
        Case(op, "seed-float", {"seed": 7.0}, Raises(TypeError, "seed")),
        Case(op, "seed-bool", {"seed": True}, Raises(TypeError, "seed")),
        Case(op, "seed-string", {"seed": "7"}, Raises(TypeError, "seed")),
        Case(op, "seed-tensor", {"seed": torch.tensor(7)}, Raises(TypeError, "seed")),
        Case(op, "seed-numpy-bool", {"seed": np.True_}, Raises(TypeError, "seed")),
    ]


def _noise_cases(op: str, like: torch.Tensor) -> list[Case]:
    """noise: like x (or [K·B, ...]); given noise needs no seed."""
    noise = torch.randn(like.shape, generator=torch.Generator().manual_seed(5))
    return [
        Case(op, "noise-given-no-seed", {"noise": noise, "seed": DROP}, OK()),
        Case(op, "noise-strided", {"noise": noise.transpose(-1, -2).contiguous().transpose(-1, -2)}, OK()),
        Case(op, "noise-nan", {"noise": _nan_at(noise, float("nan"))}, OK()),
        Case(op, "noise-requires-grad", {"noise": noise.clone().requires_grad_()}, OK(same_as={"noise": noise})),
        Case(op, "noise-wrong-shape", {"noise": noise[:1]}, Raises(ValueError, "noise", "shape")),
        Case(op, "noise-wrong-dtype", {"noise": noise.double()}, Raises(TypeError, "noise", "dtype of x")),
        Case(op, "noise-meta", {"noise": noise.to(META)}, Raises(ValueError, "noise", "is on meta")),
        Case(op, "noise-list", {"noise": noise.tolist()}, Raises(TypeError, "noise")),
        Case(op, "noise-int", {"noise": noise.long()}, Raises(TypeError, "noise")),
        Case(op, "seed-missing", {"seed": DROP}, Raises(ValueError, "seed", "required")),
    ]


def _float_vector_cases(op: str, name: str, *, per_sample: bool, out_of_range: tuple[float, ...]) -> list[Case]:
    """A float schedule tensor ([B] per sample or [K] per level); `out_of_range`: finite values it refuses."""
    v = OPS[op].base[name]
    cases = [
        Case(op, f"{name}-int", {name: v.long()}, Raises(TypeError, name, "floating")),
        Case(op, f"{name}-bool", {name: v > 0}, Raises(TypeError, name, "floating")),
        Case(op, f"{name}-nan", {name: _nan_at(v, float("nan"))}, Raises(ValueError, name, "finite")),
        Case(op, f"{name}-inf", {name: _nan_at(v, float("inf"))}, Raises(ValueError, name, "finite")),
        Case(op, f"{name}-empty", {name: v[:0]}, Raises(ValueError, name, "shape")),
        Case(op, f"{name}-2d", {name: v[None]}, Raises(ValueError, name, "shape")),
        Case(op, f"{name}-meta", {name: v.to(META)}, Raises(ValueError, name, "is on meta")),
        Case(op, f"{name}-list", {name: v.tolist()}, Raises(TypeError, name)),
        Case(
            op, f"{name}-requires-grad", {name: v.clone().requires_grad_()}, Raises(ValueError, name, "requires grad")
        ),
        Case(op, f"{name}-float64", {name: v.double()}, OK()),
        Case(op, f"{name}-float16", {name: v.half()}, OK()),
        Case(op, f"{name}-strided", {name: _strided(v)}, OK(same_as={name: v})),
    ]
    cases += [
        Case(op, f"{name}-value-{bad}", {name: _nan_at(v, bad)}, Raises(ValueError, name)) for bad in out_of_range
    ]
    if per_sample:
        value = float(v[0])
        same = {name: torch.full((B,), value, dtype=torch.float64)}
        cases += [
            Case(op, f"{name}-too-long", {name: torch.cat([v, v[:1]])}, Raises(ValueError, name, "shape")),
            Case(op, f"{name}-python-float", {name: value}, OK(same_as=same)),
            Case(op, f"{name}-numpy-float32", {name: np.float32(value)}, OK()),
            Case(op, f"{name}-0dim", {name: torch.tensor(value, dtype=torch.float64)}, OK(same_as=same)),
            Case(op, f"{name}-python-int-1", {name: 1}, OK(same_as={name: torch.ones(B)})),
            Case(op, f"{name}-python-bool", {name: True}, Raises(TypeError, name)),
            Case(op, f"{name}-string", {name: "0.5"}, Raises(TypeError, name)),
            Case(op, f"{name}-python-nan", {name: float("nan")}, Raises(ValueError, name, "finite")),
            Case(op, f"{name}-0dim-int", {name: torch.tensor(1)}, Raises(TypeError, name, "floating")),
        ]
    else:
        cases.append(Case(op, f"{name}-0dim", {name: v[0]}, Raises(ValueError, name, "shape")))
    return cases


def _real_scalar_cases(op: str, name: str, *, valid: float, bad_values: dict[str, float]) -> list[Case]:
    """A Python float argument (eta, dt, beta_min, beta_max)."""
    cases = [
        Case(op, f"{name}-numpy-float32", {name: np.float32(valid)}, OK()),
        Case(op, f"{name}-tensor", {name: torch.tensor(valid)}, Raises(TypeError, name)),
        Case(op, f"{name}-bool", {name: True}, Raises(TypeError, name)),
        Case(op, f"{name}-string", {name: str(valid)}, Raises(TypeError, name)),
        Case(op, f"{name}-none", {name: None}, Raises(TypeError, name)),
        Case(op, f"{name}-nan", {name: float("nan")}, Raises(ValueError, name, "finite")),
        Case(op, f"{name}-inf", {name: float("inf")}, Raises(ValueError, name, "finite")),
    ]
    cases += [
        Case(op, f"{name}-{label}", {name: value}, Raises(ValueError, name)) for label, value in bad_values.items()
    ]
    return cases


def _step_int_cases(op: str) -> list[Case]:
    """step as one Python int: a Philox counter word in [0, 2**32)."""
    return [
        Case(op, "step-2**32-1", {"step": 2**32 - 1}, OK()),
        Case(op, "step-numpy-uint32", {"step": np.uint32(5)}, OK(same_as={"step": 5})),
        Case(op, "step-negative", {"step": -1}, Raises(ValueError, "step", r"\[0, 2\*\*32\)")),
        Case(op, "step-2**32", {"step": 2**32}, Raises(ValueError, "step", r"\[0, 2\*\*32\)")),
        Case(op, "step-python-float", {"step": 1.0}, Raises(TypeError, "step")),
        Case(op, "step-python-bool", {"step": True}, Raises(TypeError, "step")),
        Case(op, "step-python-none", {"step": None}, Raises(TypeError, "step")),
    ]


def _step_words_cases(op: str) -> list[Case]:
    """step as a per-sample tensor of Philox step words (any integer dtype, values in [0, 2**32))."""
    words = torch.tensor([6, 0, 100])
    cases = [c for c in _integer_vector_cases(op, "step", words, per_sample=True) if "python" not in c.name]
    return [
        *cases,
        Case(op, "step-words-uint32-max", {"step": torch.full((B,), 2**32 - 1, dtype=torch.uint32)}, OK()),
        Case(
            op,
            "step-words-int8-negative",
            {"step": torch.tensor([1, -1, 2], dtype=torch.int8)},
            Raises(ValueError, "step"),
        ),
        Case(op, "step-words-2**32", {"step": words + 2**32}, Raises(ValueError, "step", r"\[0, 2\*\*32\)")),
        Case(
            op,
            "step-words-uint64-2**63",
            {"step": torch.tensor([2**63, 1, 2], dtype=torch.uint64)},
            Raises(ValueError, "step"),
        ),
    ]


def _active_cases(op: str) -> list[Case]:
    active = torch.tensor([True, False, True])
    return [
        Case(op, "active-bool", {"active": active}, OK()),
        Case(op, "active-python-true", {"active": True}, OK(same_as={"active": DROP})),
        Case(op, "active-python-false", {"active": False}, OK(returns="x")),
        Case(op, "active-0dim", {"active": torch.tensor(True)}, OK(same_as={"active": DROP})),
        Case(op, "active-strided", {"active": _strided(active)}, OK(same_as={"active": active})),
        Case(op, "active-int", {"active": active.long()}, Raises(TypeError, "active", "bool")),
        Case(op, "active-uint8", {"active": active.to(torch.uint8)}, Raises(TypeError, "active", "bool")),
        Case(op, "active-float", {"active": active.float()}, Raises(TypeError, "active", "bool")),
        Case(op, "active-python-int", {"active": 1}, Raises(TypeError, "active")),
        Case(op, "active-wrong-length", {"active": active[:2]}, Raises(ValueError, "active", "shape")),
        Case(op, "active-meta", {"active": active.to(META)}, Raises(ValueError, "active", "is on meta")),
    ]


def _all_on_meta(op: str, names: tuple[str, ...]) -> Case:
    """Every tensor on the meta device: shapes are checked, values are not (there are none); a meta result."""
    return Case(op, "all-meta", {name: OPS[op].base[name].to(META) for name in names}, OK())


def _signature_cases(op: str, required: str) -> list[Case]:
    """Python's own errors for an unknown keyword and a missing required argument."""
    return [
        Case(op, "unknown-keyword", {"bogus": 1}, Raises(TypeError, "bogus", prefix=False)),
        Case(op, f"missing-{required}", {required: DROP}, Raises(TypeError, required, prefix=False)),
    ]


# ---------------------------------------------------------------------------------------------------------
# The corpus, op by op
# ---------------------------------------------------------------------------------------------------------
def _noise_inject() -> list[Case]:
    op = "noise_inject"
    short_schedule = AC[:100]
    return [
        *_data_cases(op, "x"),
        *_row_shape_cases(op),
        *_integer_vector_cases(op, "t", torch.tensor([0, 100, 127]), per_sample=True),
        Case(
            op,
            "t-int8-short-schedule",
            {"t": torch.tensor([0, 99, 50], dtype=torch.int8), "alphas_cumprod": short_schedule},
            OK(),
        ),
        Case(
            op,
            "t-uint8-above-T",
            {"t": torch.tensor([0, 200, 1], dtype=torch.uint8), "alphas_cumprod": short_schedule},
            Raises(ValueError, "t", r"\[0, 100\)"),
        ),
        Case(
            op,
            "t-int8-negative",
            {"t": torch.tensor([0, -1, 1], dtype=torch.int8)},
            Raises(ValueError, "t", r"\[0, 1000\)"),
        ),
        Case(op, "t-equals-T", {"t": torch.tensor([0, 1000, 1])}, Raises(ValueError, "t", r"\[0, 1000\)")),
        Case(op, "t-uint64-huge", {"t": torch.tensor([0, 2**63 + 1, 1], dtype=torch.uint64)}, Raises(ValueError, "t")),
        Case(op, "t-python-int-out-of-range", {"t": 1000}, Raises(ValueError, "t", r"\[0, 1000\)")),
        Case(op, "t-none", {"t": None}, Raises(TypeError, "t")),
        *_float_vector_cases(op, "alphas_cumprod", per_sample=False, out_of_range=(-0.5, 1.5)),
        Case(op, "alphas_cumprod-length-1", {"alphas_cumprod": AC[:1], "t": 0}, OK()),
        Case(
            op,
            "alphas_cumprod-bounds-0-and-1",
            {"alphas_cumprod": torch.tensor([0.0, 1.0]), "t": torch.tensor([0, 1, 0])},
            OK(),
        ),
        *_noise_cases(op, X),
        *_seed_cases(op),
        *_sample_ids_cases(op),
        *_step_int_cases(op),
        Case(op, "step-tensor", {"step": torch.tensor([1, 2, 3])}, Raises(TypeError, "step")),
        _all_on_meta(op, ("x", "t", "alphas_cumprod")),
        *_signature_cases(op, "alphas_cumprod"),
    ]


def _noise_inject_levels() -> list[Case]:
    op = "noise_inject_levels"
    return [
        *_data_cases(op, "x"),
        *_row_shape_cases(op),
        *_float_vector_cases(op, "mean_coef", per_sample=False, out_of_range=()),
        *_float_vector_cases(op, "std", per_sample=False, out_of_range=(-0.5,)),
        Case(op, "mean_coef-negative", {"mean_coef": -MEAN}, OK()),
        Case(op, "one-level", {"mean_coef": MEAN[:1], "std": STD[:1]}, OK()),
        Case(op, "std-shorter-than-mean_coef", {"std": STD[:1]}, Raises(ValueError, "std", r"shape \[2\]")),
        *_noise_cases(op, LEVEL_EPS),
        Case(op, "noise-like-x-not-levels", {"noise": X}, Raises(ValueError, "noise", "shape")),
        *_seed_cases(op),
        *_sample_ids_cases(op),
        _all_on_meta(op, ("x", "mean_coef", "std")),
        *_signature_cases(op, "std"),
    ]


def _score_norm() -> list[Case]:
    op = "score_norm"
    return [
        *_data_cases(op, "eps_hat"),
        Case(
            op,
            "eps_hat-rows-not-multiple-of-K",
            {"eps_hat": LEVEL_EPS[:5]},
            Raises(ValueError, "eps_hat", "multiple of K"),
        ),
        Case(op, "eps_hat-1d", {"eps_hat": torch.ones(4)}, OK()),
        Case(op, "eps_hat-zero-size-row", {"eps_hat": torch.ones(4, 0, 3)}, OK()),
        Case(op, "eps_hat-float64", {"eps_hat": LEVEL_EPS.double()}, OK()),
        Case(op, "eps_hat-bfloat16", {"eps_hat": LEVEL_EPS.bfloat16()}, OK()),
        Case(op, "eps_hat-float16", {"eps_hat": LEVEL_EPS.half()}, OK()),
        *_float_vector_cases(op, "sigma", per_sample=False, out_of_range=(-0.5, 0.0)),
        Case(op, "sigma-one-level", {"sigma": SIGMA[:1]}, OK()),
        Case(op, "sigma-longer-than-rows", {"sigma": torch.ones(7)}, Raises(ValueError, "eps_hat", "multiple of K")),
        _all_on_meta(op, ("eps_hat", "sigma")),
        *_signature_cases(op, "sigma"),
    ]


def _with_eps_hat(x: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"eps_hat": torch.zeros_like(x)}


def _step_common(op: str) -> list[Case]:
    """Cases shared by reverse_step and vp_sde_step (same argument conventions)."""
    return [
        *_data_cases(op, "x"),
        *_data_cases(op, "eps_hat"),
        *_row_shape_cases(op, _with_eps_hat),
        Case(op, "eps_hat-other-dtype", {"eps_hat": EPS.double()}, Raises(TypeError, "eps_hat", "dtype of x")),
        Case(op, "eps_hat-other-shape", {"eps_hat": EPS[:, :1]}, Raises(ValueError, "eps_hat", "shape")),
        *_noise_cases(op, X),
        *_seed_cases(op),
        *_sample_ids_cases(op),
        *_step_int_cases(op),
        *_step_words_cases(op),
        *_active_cases(op),
    ]


def _reverse_step() -> list[Case]:
    op = "reverse_step"
    return [
        *_step_common(op),
        *_float_vector_cases(op, "a", per_sample=True, out_of_range=(0.0, -0.5, 1.5)),
        *_float_vector_cases(op, "a_next", per_sample=True, out_of_range=(0.0, -0.5, 1.5)),
        Case(op, "a-equals-a_next", {"a_next": A}, OK(returns="x")),
        Case(op, "a-above-a_next", {"a": A_NEXT, "a_next": A}, OK()),
        Case(op, "a-tiny", {"a": 1e-30}, OK()),
        *_real_scalar_cases(op, "eta", valid=1.0, bad_values={"negative": -0.5}),
        Case(op, "eta-python-int", {"eta": 1}, OK(same_as={"eta": 1.0})),
        Case(op, "eta-zero-no-seed", {"eta": 0.0, "seed": DROP}, OK()),
        Case(op, "eta-huge", {"eta": 1e6}, OK()),
        _all_on_meta(op, ("x", "eps_hat", "a", "a_next")),
        *_signature_cases(op, "eta"),
    ]


def _vp_sde_step() -> list[Case]:
    op = "vp_sde_step"
    return [
        *_step_common(op),
        *_float_vector_cases(op, "t", per_sample=True, out_of_range=(0.0, -0.5, 1.5)),
        Case(op, "t-tiny", {"t": 1e-12}, OK()),
        *_real_scalar_cases(op, "dt", valid=1e-3, bad_values={"zero": 0.0, "negative": -1e-3}),
        Case(op, "dt-larger-than-t", {"dt": 2.0}, OK()),
        Case(op, "dt-python-int", {"dt": 1}, OK(same_as={"dt": 1.0})),
        *_real_scalar_cases(op, "beta_min", valid=0.1, bad_values={"negative": -0.1}),
        *_real_scalar_cases(op, "beta_max", valid=20.0, bad_values={"below-beta_min": 0.05}),
        Case(op, "beta_min-equals-beta_max", {"beta_min": 1.0, "beta_max": 1.0}, OK()),
        _all_on_meta(op, ("x", "eps_hat", "t")),
        *_signature_cases(op, "dt"),
    ]


def _philox_bits() -> list[Case]:
    op = "philox_bits"
    return [
        *_integer_vector_cases(op, "counters", COUNTERS % 100, per_sample=False),
        Case(op, "counters-3-columns", {"counters": COUNTERS[:, :3]}, Raises(ValueError, "counters", r"\[N, 4\]")),
        Case(op, "counters-1d", {"counters": COUNTERS[0]}, Raises(ValueError, "counters", r"\[N, 4\]")),
        Case(op, "counters-empty", {"counters": COUNTERS[:0]}, OK()),
        Case(
            op, "counters-negative", {"counters": COUNTERS - 2**32}, Raises(ValueError, "counters", r"\[0, 2\*\*32\)")
        ),
        Case(op, "counters-2**32", {"counters": COUNTERS + 2**32}, Raises(ValueError, "counters", r"\[0, 2\*\*32\)")),
        Case(op, "counters-none", {"counters": None}, Raises(TypeError, "counters")),
        *[c for c in _seed_cases(op) if c.name != "seed-numpy-bool"],
        Case(op, "seed-missing", {"seed": DROP}, Raises(TypeError, "seed", prefix=False)),
        Case(op, "seed-none", {"seed": None}, Raises(TypeError, "seed")),
        _all_on_meta(op, ("counters",)),
    ]


CASES: list[Case] = [
    *_noise_inject(),
    *_noise_inject_levels(),
    *_score_norm(),
    *_reverse_step(),
    *_vp_sde_step(),
    *_philox_bits(),
]
