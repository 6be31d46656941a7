"""A fuzz corpus of the `ssni` command: bad or unusual input to every command, each case's outcome asserted.

A bad input must end with exit status 2 and one line `ssni: error: …` on stderr that names the argument (the
`match` pattern): no traceback, and no output left behind (the case's folder holds exactly the files it started
with, unchanged, and no temporary files). A valid unusual input must succeed and write its outputs. Cases run in
worker subprocesses (`cli_fuzz_worker.py`, one per command, each case in its own folder), so a crash fails the
test naming the case; a few cases run through `python -m ssni.cli` itself. Everything uses the tiny random
MNIST-format models of `product_fixtures`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import standins
import torch
from product_fixtures import write_tiny_models

from ssni.cli import main
from ssni.eval.records import RecordWriter

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("cli_fuzz_worker.py")
IN = "@IN"  # the shared input folder, substituted when the cases run


@dataclass(frozen=True)
class Case:
    """One command line. `match`: a pattern the error line must match (None: the command must succeed);
    `setup`: files (str/bytes; None for a folder) made in the case's folder first; `outputs`: what a successful
    case writes there; `python_m`: run through `python -m ssni.cli` in a process of its own."""

    name: str
    argv: tuple[str, ...]
    match: str | None = None
    setup: dict = field(default_factory=dict)
    outputs: tuple[str, ...] = ()
    python_m: bool = False


MODELS = ("--diffusion-checkpoint", f"{IN}/ddpm.safetensors", "--classifier-checkpoint", f"{IN}/classifier.safetensors")
TINY = (*MODELS, "--calibration", f"{IN}/cal.json", "--num-levels", "2", "--t-star", "4")
EVAL = (
    "eval",
    "--smoke",
    "--no-progress",
    "--json",
    *TINY,
    "--num-samples",
    "2",
    "--batch-size",
    "2",
    "--methods",
    "constant",
    "--iterations",
    "1",
)  # the cheapest run: 2 images, one method, one attack step
CALIBRATE = ("calibrate", "--diffusion-checkpoint", f"{IN}/ddpm.safetensors", "--num-levels", "2")
NOT_CHECKED = ("--diffusion-checkpoint", "d.pt", "--classifier-checkpoint", "c.pt")  # the data fails first
CIFAR = ("eval", "--preset", "cifar10-diffpure", *NOT_CHECKED)
IMAGENET = ("eval", "--preset", "imagenet-diffpure", *NOT_CHECKED)
NOT_OURS = '{"results": [1, 2, 3]}'  # a one-line JSON file of something else


def purify(source: str, *flags: str) -> tuple[str, ...]:
    return ("purify", source, "--out", "out.pt", *TINY, *flags)


def eval_cases() -> list[Case]:
    bad_values = {  # flag → [(value, pattern)]
        "--seeds": [("", "--seeds"), (",", "--seeds"), ("abc", "--seeds"), ("-1", "--seeds"), ("121,121", "--seeds"),
                    (str(2**63), "--seeds")],
        "--methods": [("", "--methods"), ("ssni-x", "unknown method 'ssni-x'"), ("constant@0", "constant@0"),
                      ("constant@1001", "constant@1001"), ("constant@abc", "constant@abc")],
        "--attacks": [("", "--attacks"), ("cw", "unknown attack.*cw"), ("none", "unknown attack.*none")],
        "--t-sweep": [("", "--t-sweep"), ("0", "--t-sweep"), ("1001", "--t-sweep"), ("5.5", "--t-sweep")],
        "--t-star": [("0", "--t-star"), ("996", "--t-star"), ("-3", "--t-star"), ("x", "--t-star")],
        "--batch-size": [("0", "--batch-size"), ("-1", "--batch-size"), ("abc", "--batch-size"),
                         ("1e3", "--batch-size")],
        "--num-levels": [("0", "--num-levels"), ("1001", "--num-levels")],
        "--num-samples": [("0", "--num-samples"),
                          ("100000", r"--num-samples 100000 .*10000 MNIST test.*at most 10000")],
        "--iterations": [("0", "--iterations")],
        "--eot": [("0", "--eot"), ("-5", "--eot")],
        "--eps": [("0", "--eps"), ("-0.1", "--eps"), ("nan", "--eps"), ("inf", "--eps"), ("x", "--eps")],
        "--step-size": [("0", "--step-size"), ("nan", "--step-size")],
        "--surrogate-steps": [("0", "--surrogate-steps")],
        "--tau": [("0", "--tau"), ("-1", "--tau"), ("nan", "--tau"), ("inf", "--tau"), ("abc", "--tau")],
        "--network-batch": [("0", "--network-batch")],
        "--data-seed": [("-1", "--data-seed"), (str(2**32), "--data-seed"), ("5", "--data-seed.*ImageNet")],
        "--device": [("xpu", "--device"), ("cuda:x", "--device"), ("", "--device")],
        "--preset": [("cifar100", "unknown preset 'cifar100'"), ("", "unknown preset")],
        "--attack-seeds": [("bogus", "--attack-seeds.*invalid choice"), ("", "--attack-seeds")],
    }  # fmt: skip
    if not torch.cuda.is_available():
        bad_values["--device"] += [("cuda", "--device cuda: CUDA is not available"), ("cuda:3", "--device cuda:3")]
    cases = [
        Case(f"eval{flag}={value or 'empty'}", (*EVAL, flag, value), match)
        for flag, values in bad_values.items()
        for value, match in values
    ]
    cases[0] = Case("eval--seeds=empty", (*EVAL, "--seeds", ""), "--seeds", python_m=True)
    cal = f"{IN}/calibration"
    checkpoints = f"{IN}/checkpoints"
    cases += [
        Case("eval-unknown-flag", (*EVAL, "--bogus"), "unrecognized arguments: --bogus"),
        Case("eval-flag-without-value", (*EVAL, "--seeds"), "--seeds"),
        Case("eval-t-star-multi-stage", ("eval", "--preset", "cifar10-gns", "--t-star", "50"), "--t-star"),
        Case("eval-t-sweep-multi-stage", ("eval", "--preset", "cifar10-gdmp", "--t-sweep", "50"),
             "constant@50: a constant-t method needs a single-stage purifier; preset cifar10-gdmp has 4"),
        Case("eval-data-on-mnist", (*EVAL, "--data", f"{IN}/images"), "--data"),
        # flags the preset, its selected attacks or methods would not use
        Case("eval-vote-scores-without-votes", (*EVAL, "--vote-scores", "per-vote"),
             "--vote-scores is not used: preset mnist takes one vote per input"),
        Case("eval-bpda-schedule-without-bpda", (*EVAL, "--bpda-schedule", "surrogate"),
             r"--bpda-schedule is not used: none of the selected attacks \(pgd-linf\) is BPDA"),
        Case("eval-l2-step-without-l2", (*EVAL, "--l2-step", "sign"), "--l2-step is not used"),
        Case("eval-linear-batch-without-ssni-l", (*EVAL, "--linear-batch-eval", "2"),
             r"--linear-batch-eval is not used: .*methods \(constant\) do not include ssni-l"),
        Case("eval-linear-batch-attack-without-ssni-l", (*EVAL, "--linear-batch-attack", "2"),
             "--linear-batch-attack is not used"),
        Case("eval-tau-without-ssni-n", (*EVAL, "--tau", "3"), "--tau is not used: it is SSNI-N's temperature"),
        Case("eval-eps-over-two-norms", (*EVAL, "--attacks", "pgd-linf,pgd-l2", "--eps", "0.1"),
             "--eps is not used: one radius for attacks of norms L2, Linf"),
        Case("eval-step-size-autoattack", (*EVAL, "--attacks", "autoattack-rand", "--step-size", "0.1"),
             r"--step-size is not used: the selected attacks \(autoattack-rand\) set their own steps"),
        Case("eval-cifar-needs-paths", ("eval", "--preset", "cifar10-diffpure"),
             "preset cifar10-diffpure needs --data --diffusion-checkpoint --classifier-checkpoint"),
        Case("eval-imagenet-needs-classifier", ("eval", "--preset", "imagenet-diffpure", "--data", "d",
                                                "--diffusion-checkpoint", "c.pt"), "needs --classifier-checkpoint"),
        Case("eval-cifar-data-is-a-file", (*CIFAR, "--data", f"{IN}/good.npy"),
             "good.npy"),
        Case("eval-cifar-data-missing", (*CIFAR, "--data", "nowhere"), "nowhere"),
        Case("eval-cifar-data-empty", (*CIFAR, "--data", "empty"), "empty",
             setup={"empty": None}),
        Case("eval-imagenet-data-is-a-file", (*IMAGENET, "--data", f"{IN}/good.npy"),
             "good.npy is a file"),
        Case("eval-cifar-too-few-images", (*CIFAR, "--data", "batches"),
             "needs .* test images, found 10", setup={"batches": "@CIFAR10"}),
        # outputs
        Case("eval-out-is-a-folder", (*EVAL, "--out", "r.jsonl"), r"--out r\.jsonl is a folder",
             setup={"r.jsonl": None}),
        Case("eval-out-under-a-file", (*EVAL, "--out", "f/r.jsonl"), "--out f/r.jsonl: f is a file",
             setup={"f": "x"}),
        Case("eval-out-not-ours", (*EVAL, "--out", "r.jsonl"), "r.jsonl is not an ssni results file.*--overwrite",
             setup={"r.jsonl": NOT_OURS}, python_m=True),
        Case("eval-out-not-ours-newline", (*EVAL, "--out", "r.jsonl"), "not an ssni results file",
             setup={"r.jsonl": NOT_OURS + "\n"}),
        Case("eval-out-binary", (*EVAL, "--out", "r.jsonl"), "not an ssni results file",
             setup={"r.jsonl": b"\x89PNG\r\n\x1a\n\x00\x00"}),
        Case("eval-out-other-config", (*EVAL, "--out", "r.jsonl", "--seeds", "7"), "another configuration",
             setup={"r.jsonl": "@RECORDS"}),
        Case("eval-out-damaged", (*EVAL, "--out", "r.jsonl"), "damaged at line 2", setup={"r.jsonl": "@DAMAGED"}),
        Case("eval-out-empty", (*EVAL, "--out", ""), r"--out \. is a folder"),
        Case("eval-overwrite-a-folder", (*EVAL, "--out", "r", "--overwrite"), "--out r is a folder", setup={"r": None}),
        Case("eval-help", ("eval", "--help"), None),
        Case("eval-adversarial-folder-is-a-file", (*EVAL, "--out", "r.jsonl"),
             r"--out \(its adversarial examples\) r\.jsonl\.adversarial is a file",
             setup={"r.jsonl.adversarial": "x"}),
        Case("eval-out-unwritable", (*EVAL, "--out", "/proc/ssni-fuzz/r.jsonl"), "ssni-fuzz/r.jsonl"),
        # checkpoints
        Case("eval-ckpt-missing", ("eval", "--diffusion-checkpoint", "none.safetensors"), "none.safetensors"),
        Case("eval-ckpt-empty", ("eval", "--diffusion-checkpoint", f"{checkpoints}/empty.safetensors"),
             "empty.safetensors"),
        Case("eval-ckpt-garbage", ("eval", "--diffusion-checkpoint", f"{checkpoints}/garbage.safetensors"),
             "garbage.safetensors"),
        Case("eval-ckpt-folder", ("eval", "--diffusion-checkpoint", checkpoints), "--diffusion-checkpoint"),
        Case("eval-ckpt-text-pt", ("eval", "--diffusion-checkpoint", f"{checkpoints}/text.pt"), "text.pt"),
        Case("eval-ckpt-code-payload", ("eval", "--diffusion-checkpoint", f"{checkpoints}/code.pt"), "code.pt"),
        Case("eval-ckpt-npy", ("eval", "--diffusion-checkpoint", f"{IN}/good.npy"), "good.npy"),
        Case("eval-ckpt-classifier-as-diffusion",
             ("eval", "--diffusion-checkpoint", f"{IN}/classifier.safetensors", "--calibration", f"{IN}/cal.json"),
             "--diffusion-checkpoint"),
        Case("eval-ckpt-diffusion-as-classifier",
             (*EVAL[:4], "--diffusion-checkpoint", f"{IN}/ddpm.safetensors", "--classifier-checkpoint",
              f"{IN}/ddpm.safetensors", "--calibration", f"{IN}/cal.json", "--num-levels", "2"),
             "--classifier-checkpoint"),
        Case("eval-ckpt-other-seed-vs-calibration", (*EVAL, "--diffusion-checkpoint", f"{IN}/other.safetensors"),
             "model_id"),
        # calibration files
        *(Case(f"eval-calibration-{name}", (*EVAL, "--calibration", f"{cal}/{name}.json"), match)
          for name, match in CALIBRATION_CASES.items()),
        Case("eval-calibration-folder", (*EVAL, "--calibration", cal), "calibration"),
        Case("eval-calibration-missing", (*EVAL, "--calibration", "none.json"), "none.json.*does not exist"),
        Case("eval-calibration-other-levels", (*EVAL, "--num-levels", "3"), "num_levels"),
        # unusual but valid
        Case("eval-ok-overwrite-not-ours-lists-with-spaces",
             (*EVAL, "--seeds", "121, ", "--methods", " constant,", "--out", "r.jsonl", "--overwrite"),
             setup={"r.jsonl": NOT_OURS}, outputs=("r.jsonl",)),
    ]  # fmt: skip
    return cases


CALIBRATION_CASES = {  # file name → pattern; the files are made by _calibration_files
    "list": r"list\.json is corrupt: expected a JSON object",
    "tau-abc": r"tau-abc\.json: field 'tau' must be a positive finite number, got 'abc'",
    "tau-negative": "field 'tau'",
    "tau-nan": "field 'tau'",
    "tau-infinite": "field 'tau'",
    "levels-string": "field 'num_levels'",
    "levels-float": "field 'num_levels'",
    "levels-bool": "field 'num_levels'",
    "resolution-short": "field 'resolution'",
    "resolution-string": "field 'resolution'",
    "seed-negative": "field 'seed'",
    "version-2": "field 'version'",
    "unknown-field": "unknown field.*'colour'",
    "missing-mean": "field 'mean' is missing",
    "min-above-max": "'min' <= 'mean' <= 'max'",
    "model-id-number": "field 'model_id'",
    "quantiles-list": "field 'quantiles'",
    "empty-object": "field 'model_id' is missing",
    "zero-bytes": "zero-bytes.json is corrupt",
    "not-json": "not-json.json is corrupt",
    "binary": "binary.json",
    "norms-garbage": r"norms-garbage\.json\.norms\.safetensors is corrupt",
    "norms-length": r"norms-length\.json\.norms\.safetensors: expected 'norms' float \[4\]",
    "norms-nan": "norms-nan.json.norms.safetensors: 'norms' holds NaN",
}


def purify_cases() -> list[Case]:
    bad_arrays = {  # .npy file → pattern
        "nan": "NaN", "inf": "NaN or Inf", "range": r"\[0, 1\]", "uint8": "float", "bool": "float",
        "channels3": "channel", "size32": "28×28", "nhwc": r"\[N, H, W, C\]", "flat": r"\[N, C, H, W\]",
        "five-d": r"\[N, C, H, W\]", "no-images": "no images", "zero-bytes": "cannot load an array",
        "objects": "cannot load an array", "text": "cannot load an array", "complex": "float",
    }  # fmt: skip
    bad_tensors = {
        "dict": "expected a tensor", "list": "expected a tensor", "int": "float", "code": "refused",
        "zero-bytes": "empty", "truncated": "truncated.pt", "string": "expected a tensor",
    }  # fmt: skip
    bad_folders = {
        "empty": "no image files", "text-only": "no image files", "corrupt-png": "cannot read image",
        "mixed-sizes": "different sizes", "bomb": "decompression bomb", "size32": "28×28",
    }  # fmt: skip
    cases = [Case(f"purify-npy-{n}", purify(f"{IN}/arrays/{n}.npy"), m) for n, m in bad_arrays.items()]
    cases += [Case(f"purify-pt-{n}", purify(f"{IN}/tensors/{n}.pt"), m) for n, m in bad_tensors.items()]
    cases += [Case(f"purify-folder-{n}", purify(f"{IN}/folders/{n}"), m) for n, m in bad_folders.items()]
    good = f"{IN}/good.npy"
    cases += [
        Case("purify-input-missing", purify("none.npy"), "none.npy does not exist"),
        Case("purify-input-suffix", purify(f"{IN}/notes.txt"), "notes.txt: expected a folder of images"),
        Case("purify-out-not-pt", ("purify", good, "--out", "out.png", *TINY), "--out must be a .pt file"),
        Case("purify-out-is-a-folder", ("purify", good, "--out", "out.pt", *TINY), r"--out out\.pt is a folder",
             setup={"out.pt": None}),
        Case("purify-out-under-a-file", ("purify", good, "--out", "f/out.pt", *TINY), "--out f/out.pt: f is a file",
             setup={"f": "x"}),
        Case("purify-scores-is-a-folder", purify(good, "--scores", "s.csv"), r"--scores s\.csv is a folder",
             setup={"s.csv": None}, python_m=True),
        Case("purify-scores-folder-without-suffix", purify(good, "--scores", "sdir"), "--scores must end in",
             setup={"sdir": None}),
        Case("purify-scores-suffix", purify(good, "--scores", "s.txt"), "--scores must end in .csv or .json"),
        Case("purify-scores-under-a-file", purify(good, "--scores", "f/s.csv"), "--scores f/s.csv: f is a file",
             setup={"f": "x"}),
        Case("purify-scores-unwritable", purify(good, "--scores", "/proc/ssni-fuzz.csv"),
             "--scores /proc/ssni-fuzz.csv: cannot write"),
        Case("purify-out-unwritable", ("purify", good, "--out", "/proc/ssni-fuzz.pt", "--scores", "s.csv", *TINY),
             "--out /proc/ssni-fuzz.pt: cannot write"),
        Case("purify-method-unknown", purify(good, "--method", "ssni"), "unknown method 'ssni'"),
        Case("purify-method-constant-0", purify(good, "--method", "constant@0"), "constant@0"),
        Case("purify-method-empty", purify(good, "--method", ""), "unknown method ''"),
        Case("purify-method-constant-multi-stage", ("purify", good, "--out", "o.pt", "--preset", "cifar10-gns",
                                                    "--method", "constant@30"), "constant@30: a constant-t method"),
        Case("purify-seed-negative", purify(good, "--seed", "-1"), "--seed"),
        Case("purify-seed-huge", purify(good, "--seed", str(2**64)), "--seed"),
        Case("purify-num-samples-with-input", purify(good, "--num-samples", "2"), "--num-samples.*not used"),
        Case("purify-tau-with-constant", purify(good, "--method", "constant", "--tau", "2"), "--tau is not used"),
        Case("purify-linear-batch-with-ssni-n", purify(good, "--linear-batch-eval", "2"),
             "--linear-batch-eval is not used"),
        Case("purify-png-is-a-file", purify(good, "--png", "f"), "--png f is a file", setup={"f": "x"}),
        Case("purify-attack-flag", purify(good, "--eps", "0.1"), "unrecognized arguments: --eps"),
        Case("purify-data-with-input", purify(good, "--data", f"{IN}/folders"), "--data.*not used"),
        Case("purify-num-samples-too-many", ("purify", "--out", "out.pt", *TINY, "--num-samples", "20000"),
             "--num-samples 20000 .*at most 10000"),
        Case("purify-out-empty", ("purify", good, "--out", "", *TINY), "--out must be a .pt file"),
        Case("purify-folder-named-like-an-array", purify("x.npy"), "no image files", setup={"x.npy": None}),
        Case("purify-nan-tensor", purify("x.pt"), "NaN", setup={"x.pt": "@NAN_TENSOR"}),
        Case("purify-help", ("purify", "--help"), None),
        Case("purify-no-out", ("purify", good, *TINY), "--out"),
        Case("purify-calibration-tau-abc", purify(good, "--calibration", f"{IN}/calibration/tau-abc.json"),
             "field 'tau'"),
        # unusual but valid
        Case("purify-ok-16-bit-pngs", purify(f"{IN}/folders/sixteen-bit", "--method", "ssni-l"),
             outputs=("out.pt", "out.csv")),
        Case("purify-ok-odd-modes", purify(f"{IN}/folders/odd-modes", "--scores", "deep/s.json"),
             outputs=("out.pt", "deep/s.json")),
        Case("purify-ok-float64-grey-hw", purify(f"{IN}/arrays/float64-nhw.npy", "--method", "constant@1"),
             outputs=("out.pt", "out.csv")),
        Case("purify-ok-nested-out", ("purify", good, "--out", "a/b/out.pt", *TINY, "--method", "constant@2",
                                      "--network-batch", "1"), outputs=("a/b/out.pt", "a/b/out.csv")),
    ]  # fmt: skip
    return cases


def calibrate_cases() -> list[Case]:
    return [
        Case("calibrate-num-samples-1", (*CALIBRATE, "--out", "c.json", "--num-samples", "1"), "--num-samples"),
        Case("calibrate-num-samples-0", (*CALIBRATE, "--out", "c.json", "--num-samples", "0"), "--num-samples"),
        Case("calibrate-num-samples-too-many", (*CALIBRATE, "--out", "c.json", "--num-samples", "50001"),
             "--num-samples 50001 .*50000 MNIST training images"),
        Case("calibrate-out-is-a-folder", (*CALIBRATE, "--out", "c.json"), r"--out c\.json is a folder",
             setup={"c.json": None}),
        Case("calibrate-norms-is-a-folder", (*CALIBRATE, "--out", "c.json"), "norms file.*is a folder",
             setup={"c.json.norms.safetensors": None}),
        Case("calibrate-out-under-a-file", (*CALIBRATE, "--out", "f/c.json"), "--out f/c.json: f is a file",
             setup={"f": "x"}),
        Case("calibrate-out-unwritable", (*CALIBRATE, "--num-samples", "2", "--out", "/proc/ssni-fuzz.json"),
             "--out /proc/ssni-fuzz.json: cannot write"),
        Case("calibrate-tau-zero", (*CALIBRATE, "--out", "c.json", "--tau", "0"), "--tau"),
        Case("calibrate-data-seed", (*CALIBRATE, "--out", "c.json", "--data-seed", "3"), "--data-seed"),
        Case("calibrate-data-on-mnist", (*CALIBRATE, "--out", "c.json", "--data", f"{IN}/folders"),
             "--data .*embedded MNIST training images; to calibrate on your own images give them as the input"),
        Case("calibrate-input-and-num-samples", (*CALIBRATE, f"{IN}/good.npy", "--out", "c.json", "--num-samples",
                                                 "2"), "--num-samples picks the preset's images"),
        Case("calibrate-input-missing", (*CALIBRATE, "none.npy", "--out", "c.json"), "none.npy does not exist"),
        Case("calibrate-unused-t-star", (*CALIBRATE, "--out", "c.json", "--t-star", "5"),
             "unrecognized arguments: --t-star"),
        Case("calibrate-unused-classifier", (*CALIBRATE, "--out", "c.json", "--classifier-checkpoint", "c.pt"),
             "unrecognized arguments: --classifier-checkpoint"),
        Case("calibrate-adversarial-missing", (*CALIBRATE, "--out", "c.json", "--adversarial", "none.jsonl"),
             "none.jsonl does not exist"),
        Case("calibrate-adversarial-not-ours", (*CALIBRATE, "--out", "c.json", "--adversarial", "r.jsonl"),
             "not an ssni results file", setup={"r.jsonl": NOT_OURS}),
        Case("calibrate-adversarial-folder", (*CALIBRATE, "--out", "c.json", "--adversarial", "r"), "is a folder",
             setup={"r": None}),
        Case("calibrate-adversarial-clean-only", (*CALIBRATE, "--num-samples", "2", "--out", "c.json",
                                                  "--adversarial", "r.jsonl"), "has no adversarial records",
             setup={"r.jsonl": "@CLEAN_RECORDS"}),
        Case("calibrate-missing-out", CALIBRATE, "--out"),
        Case("calibrate-out-empty", (*CALIBRATE, "--out", ""), r"--out \. is a folder"),
        Case("calibrate-adversarial-damaged", (*CALIBRATE, "--out", "c.json", "--adversarial", "r.jsonl"),
             "damaged at line 2", setup={"r.jsonl": "@DAMAGED"}),
        Case("calibrate-ok-tau", (*CALIBRATE, "--num-samples", "2", "--out", "c.json", "--tau", "3.5"),
             outputs=("c.json", "c.json.norms.safetensors")),
        Case("calibrate-ok", (*CALIBRATE, "--num-samples", "2", "--out", "c.json"),
             outputs=("c.json", "c.json.norms.safetensors")),
        Case("calibrate-ok-input", (*CALIBRATE, f"{IN}/good.npy", "--out", "c.json"),
             outputs=("c.json", "c.json.norms.safetensors")),
        Case("calibrate-adversarial-constant-only", (*CALIBRATE, "--num-samples", "2", "--out", "c.json",
                                                     "--adversarial", "r.jsonl"),
             "--adversarial r.jsonl has no adversarial score norms", setup={"r.jsonl": "@CONSTANT_RECORDS"}),
        Case("calibrate-ok-adversarial", (*CALIBRATE, "--num-samples", "2", "--out", "c.json", "--adversarial",
                                          "r.jsonl"), setup={"r.jsonl": "@RECORDS"},
             outputs=("c.json", "c.json.norms.safetensors")),
    ]  # fmt: skip


def report_cases() -> list[Case]:
    return [
        Case("report-missing", ("report", "none.jsonl"), "none.jsonl does not exist"),
        Case("report-folder", ("report", "r"), "r is a folder", setup={"r": None}),
        Case("report-not-ours", ("report", "r.jsonl"), "not an ssni results file", setup={"r.jsonl": NOT_OURS}),
        Case("report-empty-path", ("report", ""), r"results file \. is a folder"),
        Case("report-zero-bytes", ("report", "r.jsonl"), "not an ssni results file", setup={"r.jsonl": ""}),
        Case("report-damaged", ("report", "r.jsonl"), "damaged at line 2", setup={"r.jsonl": "@DAMAGED"}),
        Case("report-other-version", ("report", "r.jsonl"), "records version 7",
             setup={"r.jsonl": '{"type": "header", "version": 7}\n'}),
        Case("report-out-dir-is-a-file", ("report", "r.jsonl", "--out-dir", "f"), "--out-dir f is a file",
             setup={"r.jsonl": "@RECORDS", "f": "x"}),
        Case("report-default-out-dir-is-a-file", ("report", "r.jsonl"), "--out-dir r-report is a file",
             setup={"r.jsonl": "@RECORDS", "r-report": "x"}),
        Case("report-out-dir-under-a-file", ("report", "r.jsonl", "--out-dir", "f/rep"), "--out-dir f/rep: f is a",
             setup={"r.jsonl": "@RECORDS", "f": "x"}),
        Case("report-out-dir-unwritable", ("report", "r.jsonl", "--out-dir", "/proc/ssni-fuzz"),
             "--out-dir /proc/ssni-fuzz: cannot write", setup={"r.jsonl": "@RECORDS"}),
        Case("unknown-command", ("bogus",), "invalid choice: 'bogus'"),
        Case("unknown-global-flag", ("--bogus", "eval"), "--bogus"),
        Case("report-ok", ("report", "r.jsonl"), setup={"r.jsonl": "@RECORDS"},
             outputs=("r-report/report.md", "r-report/score_norms.png")),
        Case("report-ok-header-only", ("report", "r.jsonl", "--json"), setup={"r.jsonl": "@HEADER_ONLY"},
             outputs=("r-report/report.md",)),
    ]  # fmt: skip


CORPUS = {"eval": eval_cases(), "purify": purify_cases(), "calibrate": calibrate_cases(), "report": report_cases()}


# ----------------------------------------------------------------------------------------------------- inputs
def _calibration_files(folder: Path, valid: dict) -> None:
    """Every calibration file of CALIBRATION_CASES in `folder`."""
    folder.mkdir()
    changed = {
        "tau-abc": {"tau": "abc"}, "tau-negative": {"tau": -1.0}, "tau-nan": {"tau": float("nan")},
        "tau-infinite": {"tau": float("inf")}, "levels-string": {"num_levels": "2"},
        "levels-float": {"num_levels": 2.5},
        "levels-bool": {"num_levels": True}, "resolution-short": {"resolution": [28]},
        "resolution-string": {"resolution": "28x28"}, "seed-negative": {"seed": -1}, "version-2": {"version": 2},
        "unknown-field": {"colour": "blue"}, "min-above-max": {"min": 1e9}, "model-id-number": {"model_id": 5},
        "quantiles-list": {"quantiles": [1, 2]},
    }  # fmt: skip
    for name, change in changed.items():
        (folder / f"{name}.json").write_text(json.dumps({**valid, **change}))
    (folder / "list.json").write_text("[]")
    (folder / "missing-mean.json").write_text(json.dumps({k: v for k, v in valid.items() if k != "mean"}))
    (folder / "empty-object.json").write_text("{}")
    (folder / "zero-bytes.json").write_bytes(b"")
    (folder / "not-json.json").write_text("{model_id: tiny")
    (folder / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    from safetensors.torch import save_file

    four = dict(valid, num_samples=4)
    for name, norms_content in (("norms-garbage", b"not safetensors"), ("norms-length", None), ("norms-nan", None)):
        (folder / f"{name}.json").write_text(json.dumps(four))
        target = folder / f"{name}.json.norms.safetensors"
        if name == "norms-garbage":
            target.write_bytes(norms_content)
        elif name == "norms-length":
            save_file({"norms": torch.ones(3, dtype=torch.float64)}, str(target))
        else:
            save_file({"norms": torch.tensor([1.0, float("nan"), 2.0, 3.0], dtype=torch.float64)}, str(target))
    assert all((folder / f"{name}.json").exists() for name in CALIBRATION_CASES)


def _arrays(folder: Path) -> None:
    folder.mkdir()
    x = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    arrays = {
        "nan": np.where(x > 0.5, np.nan, x), "inf": np.where(x > 0.5, np.inf, x), "range": x * 3 - 1,
        "uint8": (x * 255).astype(np.uint8), "bool": x > 0.5, "channels3": np.repeat(x, 3, 1),
        "size32": np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2))), "nhwc": x.transpose(0, 2, 3, 1), "flat": x[0, 0],
        "five-d": x[None], "no-images": x[:0], "complex": x.astype(np.complex64),
        "float64-nhw": x[:, 0].astype(np.float64),
    }  # fmt: skip
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    (folder / "zero-bytes.npy").write_bytes(b"")
    np.save(folder / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (folder / "text.npy").write_text("these are not the arrays you are looking for")


def _tensors(folder: Path) -> None:
    folder.mkdir()
    x = torch.rand(2, 1, 28, 28)
    torch.save({"images": x}, folder / "dict.pt")
    torch.save([x[0], x[1]], folder / "list.pt")
    torch.save((x * 255).to(torch.int64), folder / "int.pt")
    torch.save("images", folder / "string.pt")
    torch.save({"x": standins.CodePayload(str(folder / "the-payload-ran"))}, folder / "code.pt")
    (folder / "zero-bytes.pt").write_bytes(b"")
    torch.save(x, folder / "whole.pt")
    torch.save(torch.where(x > 0.5, torch.nan, x), folder / "nan.pt")
    data = (folder / "whole.pt").read_bytes()
    (folder / "truncated.pt").write_bytes(data[: len(data) // 2])


def _image_folders(folder: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("empty", "text-only", "corrupt-png", "mixed-sizes", "bomb", "size32", "sixteen-bit"):
        (folder / name).mkdir(parents=True)
    (folder / "text-only" / "notes.txt").write_text("no images")
    (folder / "corrupt-png" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    Image.fromarray(rng.integers(0, 256, (28, 28), dtype=np.uint8)).save(folder / "mixed-sizes" / "a.png")
    Image.fromarray(rng.integers(0, 256, (30, 28), dtype=np.uint8)).save(folder / "mixed-sizes" / "b.png")
    standins.write_decompression_bomb(folder / "bomb" / "a.png")
    Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8)).save(folder / "size32" / "a.png")
    for i in range(2):
        Image.fromarray(rng.integers(0, 65536, (28, 28), dtype=np.uint16)).save(folder / "sixteen-bit" / f"{i}.png")
    standins.write_odd_images(folder / "odd-modes", size=28)


def _checkpoints(folder: Path) -> None:
    folder.mkdir()
    (folder / "empty.safetensors").write_bytes(b"")
    (folder / "garbage.safetensors").write_bytes(os.urandom(256))
    (folder / "text.pt").write_text("not a checkpoint")
    torch.save({"model": standins.CodePayload(str(folder / "the-payload-ran"))}, folder / "code.pt")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    diffusion, classifier = write_tiny_models(folder)
    diffusion.rename(folder / "ddpm.safetensors")
    classifier.rename(folder / "classifier.safetensors")
    write_tiny_models(folder / "other", seed=1)[0].rename(folder / "other.safetensors")
    calibrate = [a.replace(IN, str(folder)) for a in CALIBRATE]
    cal = folder / "cal.json"
    assert main([*calibrate, "--num-samples", "4", "--out", str(cal)]) == 0
    _calibration_files(folder / "calibration", json.loads(cal.read_text()))
    np.save(folder / "good.npy", np.random.default_rng(1).random((2, 1, 28, 28), dtype=np.float32))
    (folder / "notes.txt").write_text("not images")
    _arrays(folder / "arrays")
    _tensors(folder / "tensors")
    _image_folders(folder / "folders")
    _checkpoints(folder / "checkpoints")
    evaluate = [*(a.replace(IN, str(folder)) for a in EVAL), "--methods", "constant,ssni-n", "--surrogate-steps", "1"]
    assert main([*evaluate, "--out", str(folder / "records.jsonl")]) == 0
    lines = (folder / "records.jsonl").read_text().splitlines()
    constant = [line for line in lines if '"method":"ssni-n"' not in line]  # constant t records no score norm
    (folder / "constant-records.jsonl").write_text("\n".join(constant) + "\n")
    clean = [line for line in lines if '"attack":"none"' in line or '"type":"header"' in line]
    (folder / "clean-records.jsonl").write_text("\n".join(clean) + "\n")
    (folder / "damaged.jsonl").write_text("\n".join([lines[0], lines[1][:40], *lines[2:]]) + "\n")
    RecordWriter(folder / "header-only.jsonl", {"preset": {"name": "mnist"}})
    return folder


# setup contents copied from the shared inputs (records files made once by the fixture)
SETUP_FILES = {"@RECORDS": "records.jsonl", "@CONSTANT_RECORDS": "constant-records.jsonl", "@DAMAGED": "damaged.jsonl",
               "@CLEAN_RECORDS": "clean-records.jsonl", "@HEADER_ONLY": "header-only.jsonl",
               "@NAN_TENSOR": "tensors/nan.pt"}  # fmt: skip


def _setup(case: Case, folder: Path, inputs: Path) -> dict[str, bytes | None]:
    """Make the case's folder and starting files; return them ({relative path: content, None for a folder})."""
    folder.mkdir(parents=True)
    for rel, content in case.setup.items():
        path = folder / rel
        if content == "@CIFAR10":
            standins.write_cifar10_batches(path, rows_per_batch=10)
        elif content is None:
            path.mkdir(parents=True)
        else:
            if content in SETUP_FILES:
                content = (inputs / SETUP_FILES[content]).read_bytes()
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return _snapshot(folder)


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def _check(case: Case, result: dict, before: dict, after: dict) -> list[str]:
    """What is wrong with a case's outcome (empty: as expected)."""
    problems = []
    if result.get("exception"):
        return [f"raised instead of a one-line error:\n{result['exception'][-1500:]}"]
    code, err = result["code"], result["stderr"]
    if "Traceback" in err:
        problems.append(f"traceback on stderr:\n{err[-1500:]}")
    leftovers = [p for p in after if re.search(r"\.tmp-\d+", p)]
    if leftovers:
        problems.append(f"temporary files left: {leftovers}")
    if case.match is None:
        if code != 0:
            problems.append(f"exit {code}, expected 0: {err.strip()[-600:]}")
        problems += [f"missing output {o}" for o in case.outputs if after.get(o, b"") in (b"", None)]
        return problems
    errors = [line for line in err.splitlines() if line.startswith("ssni: error:")]
    if code != 2:
        problems.append(f"exit {code}, expected 2; stderr: {err.strip()[-600:]}")
    if len(errors) != 1 or not err.rstrip().endswith(errors[0] if errors else "\0"):
        problems.append(f"expected one final line 'ssni: error: …', got: {err.strip()[-600:]!r}")
    elif not re.search(case.match, errors[0]):
        problems.append(f"error line does not match {case.match!r}: {errors[0]!r}")
    if after != before:
        changed = sorted(set(after) ^ set(before) | {k for k in before if after.get(k) != before[k]})
        problems.append(f"the case's folder changed: {changed}")
    return problems


def _run_python_m(case: Case, folder: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "ssni.cli", *case.argv],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return {"name": case.name, "code": proc.returncode, "stderr": proc.stderr, "stdout": proc.stdout}


@pytest.fixture(scope="module")
def outcomes(inputs, tmp_path_factory) -> dict[str, list[tuple[Case, list[str]]]]:
    """Every case of the corpus run once: {command: [(case, what is wrong with its outcome)]}. The in-process
    cases share one worker process; a crash of it fails every test, naming the case that was running."""
    base = tmp_path_factory.mktemp("fuzz")
    cases = {
        command: [Case(c.name, tuple(a.replace(IN, str(inputs)) for a in c.argv), c.match, c.setup, c.outputs,
                       c.python_m) for c in command_cases]
        for command, command_cases in CORPUS.items()
    }  # fmt: skip
    flat = [c for command_cases in cases.values() for c in command_cases]
    assert len({c.name for c in flat}) == len(flat), "case names must be unique"
    before = {c.name: _setup(c, base / c.name, inputs) for c in flat}
    in_process = [c for c in flat if not c.python_m]
    specs = [{"name": c.name, "argv": list(c.argv), "folder": str(base / c.name)} for c in in_process]
    (base / "cases.json").write_text(json.dumps(specs))
    results_path = base / "results.jsonl"
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(base / "cases.json"), str(results_path)],
        env={**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    rows = [json.loads(line) for line in results_path.read_text().splitlines()] if results_path.exists() else []
    results = {r["name"]: r for r in rows if "code" in r}
    started = [r["name"] for r in rows if r.get("started")]
    if proc.returncode != 0 or len(results) != len(in_process):
        crashed = started[-1] if started and started[-1] not in results else "?"
        pytest.fail(f"the worker died (exit {proc.returncode}) in case {crashed}: {proc.stderr[-3000:]}")
    results.update({c.name: _run_python_m(c, base / c.name) for c in flat if c.python_m})
    assert not list(inputs.rglob("the-payload-ran")), "a pickled payload ran"
    return {
        command: [(c, _check(c, results[c.name], before[c.name], _snapshot(base / c.name))) for c in command_cases]
        for command, command_cases in cases.items()
    }


@pytest.mark.parametrize("command", list(CORPUS))
def test_cli_fuzz_corpus(command, outcomes):
    failures = [(case.name, problems) for case, problems in outcomes[command] if problems]
    assert not failures, f"{len(failures)} of {len(outcomes[command])} cases failed:\n" + "\n".join(
        f"- {name}: " + "; ".join(problems) for name, problems in failures
    )


def test_corpus_size():
    """The corpus covers every command, mostly with bad input; a few cases run through `python -m ssni.cli`."""
    cases = [c for cs in CORPUS.values() for c in cs]
    assert len(cases) >= 150
    assert sum(c.match is None for c in cases) >= 10 and sum(c.python_m for c in cases) >= 3
