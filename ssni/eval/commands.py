"""The evaluation commands as library functions: each takes a typed request (`ssni.eval.requests`) and returns
what the CLI prints; none reads argparse.

    prepare_eval(EvalRequest)          → (EvalConfig, ModelBackend, EvalData, device) for `ssni.eval.runner.run_eval`
    purify_images(PurifyRequest)       → PurifyOutputs (purified .pt, per-sample table, PNG folder)
    calibrate_files(CalibrateRequest)  → (calibration file, a summary text)
    report_files(ReportRequest)        → (report.md beside its plots, the summary)

Every input is loaded and checked before any output is written, and each command's outputs appear together, under
their final names, only once all of them are written (`ssni.atomic_files`): a failed run leaves none behind.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from ssni.atomic_files import atomic_output
from ssni.errors import SSNIUserError, one_line
from ssni.eval.backend import ModelBackend, recorded_t
from ssni.eval.flag_use import check_flags_used
from ssni.eval.loading import (
    check_calibration_disjoint,
    load_calibration,
    load_calibration_images,
    load_eval_data,
    load_models,
    resolve_device,
)
from ssni.eval.presets import Preset, resolve_preset
from ssni.eval.requests import CalibrateRequest, EvalRequest, PurifyRequest, ReportRequest, Sources, check_output
from ssni.eval.runner import EvalConfig, EvalData, adversarial_folder

__all__ = ["prepare_eval", "purify_images", "PurifyOutputs", "calibrate_files", "report_files"]


def prepare_eval(request: EvalRequest) -> tuple[EvalConfig, ModelBackend, EvalData, str]:
    """Everything `ssni eval` runs: the resolved configuration, the backend on the models, the evaluation data."""
    preset = resolve_preset(request.preset, request.overrides, smoke=request.smoke)
    src = request.sources
    _check_methods(preset, preset.methods)
    check_flags_used(preset, request.overrides, preset.methods, request.tau)
    _require_paths(preset, src)
    device = resolve_device(src.device)
    data = load_eval_data(preset, src.data, src.data_seed)
    models = load_models(preset, src, device)
    calibration = load_calibration(preset, src.calibration, models, preset.num_levels)
    check_calibration_disjoint(calibration, preset, src.data, data.sample_ids)
    identities = {
        "diffusion": models.diffusion_id,
        "classifier": models.classifier_id,
        "calibration_tau": repr(request.tau if request.tau is not None else calibration.tau),
        "calibration_mean": repr(calibration.mean),
        "data_seed": str(src.data_seed),
    }
    check_output("--out (its adversarial examples)", adversarial_folder(request.out_path, ""), folder=True)
    config = EvalConfig(
        preset=preset,
        out=request.out_path,
        identities=identities,
        overwrite=request.overwrite,
        progress=request.progress,
        save_adversarial=request.save_adversarial,
    )
    backend = ModelBackend(preset, models, calibration, request.tau, device, request.network_batch)
    return config, backend, data, device


@dataclass(frozen=True)
class PurifyOutputs:
    """What `ssni purify` wrote: the purified tensor, the per-sample table and the PNG folder (None: no PNGs)."""

    images: Path
    scores: Path
    png: Path | None


def purify_images(request: PurifyRequest) -> PurifyOutputs:
    """`ssni purify`: purified images (.pt, float32 [N, C, H, W] as the classifier sees them: not clamped), a
    per-sample table of file name, score norm and t (.csv or .json) and, on request, 8-bit PNGs (clamped)."""
    from ssni.data.images import load_named_images

    preset = resolve_preset(request.preset, request.overrides)
    src = request.sources
    _check_methods(preset, (request.method,))
    check_flags_used(preset, request.overrides, (request.method,), request.tau)
    _require_paths(preset, src, data=request.images is None)
    device = resolve_device(src.device)
    if request.images is not None:
        images, names = load_named_images(request.images, channels=preset.channels, size=preset.image_size)
        labels, ids = None, torch.arange(images.shape[0])
    else:
        data = load_eval_data(preset, src.data, src.data_seed)
        images, labels, ids = data.images, data.labels, data.sample_ids
        names = [""] * images.shape[0]  # the preset's images have no file; sample_id names them
    models = load_models(preset, src, device)
    calibration = load_calibration(preset, src.calibration, models, preset.num_levels)
    if request.images is None:
        check_calibration_disjoint(calibration, preset, src.data, ids)
    backend = ModelBackend(preset, models, calibration, request.tau, device, request.network_batch)
    with torch.no_grad():
        purified, t, e = backend.purify(request.method, images, seed=request.seed, sample_ids=ids)
        pred = backend.classify(purified)
        if e is None:  # a constant t needs no score norm; the table reports it all the same
            e = backend.scores(images, seed=request.seed, sample_ids=ids)
    t_rec = recorded_t(t)
    rows = []
    for i in range(images.shape[0]):
        row = {
            "index": i,
            "filename": names[i],
            "sample_id": int(ids[i]),
            "score_norm": float(e[i]),
            "t": int(t_rec[i]),
            "pred": int(pred[i]),
        }
        if labels is not None:
            row["label"] = int(labels[i])
        rows.append(row)
    scores_path = request.scores_path
    if scores_path.suffix == ".json":
        payload = {"method": str(request.method), "kind": request.method.kind, "seed": request.seed, "samples": rows}
        table = json.dumps(payload, indent=1) + "\n"
    else:
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
        table = buffer.getvalue()
    with _writing("--out", request.out):
        request.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(request.out) as out_tmp:
            # open() first: an unwritable folder is then an OSError, where torch.save(path) raises RuntimeError
            with open(out_tmp, "wb") as f:
                torch.save(purified.cpu(), f)
            with _writing("--scores", scores_path):
                scores_path.parent.mkdir(parents=True, exist_ok=True)
                with atomic_output(scores_path) as scores_tmp:
                    scores_tmp.write_text(table, encoding="utf-8", newline="")
                    if request.png is not None:
                        with _writing("--png", request.png):
                            _write_pngs(purified.cpu(), names, request.png)
    return PurifyOutputs(request.out, scores_path, request.png)


def _png_names(names: list[str]) -> list[str]:
    """The PNG file name of each purified image: its input file's stem (`<file>[i]` rows and the preset's images:
    the zero-padded index), prefixed by the index where two stems would collide."""
    width = len(str(max(len(names) - 1, 0)))
    stems = [Path(n).stem if n and not n.endswith("]") else f"{i:0{width}d}" for i, n in enumerate(names)]
    if len(set(stems)) < len(stems):
        stems = [s if s == f"{i:0{width}d}" else f"{i:0{width}d}-{s}" for i, s in enumerate(stems)]
    return [f"{s}.png" for s in stems]


def _write_pngs(images: torch.Tensor, names: list[str], folder: Path) -> None:
    """images float [N, C, H, W] as 8-bit PNGs (clamped to [0, 1], rounded to k/255) in `folder`, all or none."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    with ExitStack() as stack:
        for array, name in zip(pixels, _png_names(names)):
            tmp = stack.enter_context(atomic_output(folder / name))
            Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(tmp, format="PNG")


def calibrate_files(request: CalibrateRequest) -> tuple[Path, str]:
    """`ssni calibrate`: clean score-norm statistics of the reference set (the user's images, else the preset's
    training images) and a proposed τ."""
    from ssni import calibrate, tau_sweep

    preset = resolve_preset(request.preset, request.overrides)
    src = request.sources
    _require_paths(preset, src, data=request.images is None, classifier=False)
    device = resolve_device(src.device)
    if request.images is None and src.data is not None and preset.dataset == "mnist":
        raise SSNIUserError(
            f"--data {src.data}: the mnist preset calibrates on the embedded MNIST training images; to calibrate on "
            f"your own images give them as the input: ssni calibrate {src.data} --out {request.out}"
        )
    if request.images is not None:
        images, source = _user_calibration_images(preset, request.images)
    else:
        images, source = load_calibration_images(preset, src.data, request.num_samples or preset.calibration_samples)
    models = load_models(preset, src, device, classifier=False)
    adversarial = None
    if request.adversarial is not None:
        from ssni.eval.records import CLEAN, read_results

        adv = [r for r in read_results(request.adversarial).records if r["attack"] != CLEAN]
        norms = [r["score_norm"] for r in adv if r["score_norm"] is not None]  # constant t records none
        if not norms:
            what = "score norms (constant-t methods record none)" if adv else "records"
            raise SSNIUserError(f"--adversarial {request.adversarial} has no adversarial {what}")
        adversarial = torch.tensor(norms, dtype=torch.float64)
    cal = calibrate(
        models.diffusion,
        images,
        model_id=models.diffusion_id,
        num_levels=preset.num_levels,
        seed=request.seed,
        batch_size=preset.batch_size,
        device=device,
    )
    if adversarial is not None:  # τ from clean and adversarial norms (the norms of records, not images)
        cal = cal.with_adversarial(adversarial)
    cal = dataclasses.replace(cal, source=source)
    if request.tau is not None:
        cal = cal.with_tau(request.tau)
    with _writing("--out", request.out):
        request.out.parent.mkdir(parents=True, exist_ok=True)
        path = cal.save(request.out)
    sweep = ", ".join(f"{t:.4g}" for t in tau_sweep(cal))
    what = "training images" if request.images is None else f"images of {request.images}"
    text = (
        f"clean score norms of {cal.num_samples} {what} (T'={cal.num_levels}, seed {cal.seed}, model "
        f"{cal.model_id}):\n  mean {cal.mean:.4g}  std {cal.std:.4g}  min {cal.min:.4g}  max {cal.max:.4g}\n"
        f"  proposed tau {cal.tau:.4g}"
        + (f" (adversarial mean {cal.adv_mean:.4g})" if cal.adv_mean else "")
        + f"\n  tau sweep: {sweep}"
    )
    return path, text


def _user_calibration_images(preset: Preset, path: Path) -> tuple[torch.Tensor, dict]:
    """The user's clean images (a folder, .pt or .npy) and the source a calibration records for them."""
    from ssni.data.images import load_images

    images = load_images(path, channels=preset.channels, size=preset.image_size)
    if images.shape[0] < 2:
        raise SSNIUserError(f"input {path}: a calibration needs two images at least, got {images.shape[0]}")
    n = images.shape[0]
    source = {
        "dataset": preset.dataset,
        "split": "input",
        "folder": str(Path(path).resolve()),
        "num_files": n,
        "num_samples": n,
        "flip": False,
    }
    return images, source


def _check_methods(preset: Preset, methods) -> None:
    """constant@t methods need a single-stage purifier (one t per sample)."""
    swept = [str(m) for m in methods if m.t is not None]
    stages = len(preset.purifier.stages)
    if swept and stages != 1:
        raise SSNIUserError(
            f"{', '.join(swept)}: a constant-t method needs a single-stage purifier; preset {preset.name} has {stages}"
        )


def _require_paths(preset: Preset, sources: Sources, *, data: bool = True, classifier: bool = True) -> None:
    """Every file the preset needs from the user (`Preset.needs_paths`) is given, before anything is loaded."""
    skip = {"data"} if not data else set()
    skip |= {"classifier_checkpoint"} if not classifier else set()
    missing = [name for name in preset.needs_paths if name not in skip and getattr(sources, name) is None]
    if missing:
        flags = " ".join(f"--{name.replace('_', '-')}" for name in missing)
        raise SSNIUserError(f"preset {preset.name} needs {flags} (nothing is downloaded)")


def report_files(request: ReportRequest):
    """`ssni report`: report.md and its plots in the output folder; returns (report.md, `Summary`)."""
    from ssni.eval.records import read_results
    from ssni.eval.report import summarize, write_report

    log = read_results(request.results)
    with _writing("--out-dir", request.out_dir_path):
        summary = summarize(log)
        md = write_report(log, request.out_dir_path, summary)
    return md, summary


@contextmanager
def _writing(flag: str, path: Path) -> Iterator[None]:
    """An OSError while writing the output of `flag` (disk full, no permission) as a user error naming it."""
    try:
        yield
    except OSError as e:
        raise SSNIUserError(f"{flag} {path}: cannot write ({one_line(e)})") from None
