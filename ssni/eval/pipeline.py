"""From a preset and the command line to ready objects: models, calibration, purifier, data, and the backend.

`ModelBackend` is the real `ssni.eval.runner.Backend`: per method it builds the defence once per seed
(constant t*, constant t of a sweep, SSNI-N, SSNI-L around the same host purifier) and runs the attacks of
`ssni.attacks` against it (AdaptiveSSNI for SSNI: t recomputed at every attack iteration).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from ssni.errors import SSNIUserError
from ssni.eval.presets import METHODS, AttackSpec, Preset, PurifierSpec, get_preset
from ssni.eval.runner import DefenceOutput, EvalConfig, EvalData

SMOKE = {"num_samples": 4, "batch_size": 4, "seeds": (121,), "iterations": 2, "eot": 1, "surrogate_steps": 2}


# ---------------------------------------------------------------------------------------------- small helpers
def resolve_device(name: str) -> str:
    """cpu | cuda[:N] | auto (CUDA when present). Under torchrun, plain "cuda" means this rank's LOCAL_RANK GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SSNIUserError(f"--device {name}: CUDA is not available on this machine")
    if name != "cpu" and not name.startswith("cuda"):
        raise SSNIUserError(f"--device must be cpu, cuda, cuda:N or auto, got {name!r}")
    if name == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        name = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return name


def file_identity(path: Path) -> str:
    """'<name>:<size>:<sha256 of the first MiB>': cheap for multi-GB checkpoints, tells different files apart."""
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(1 << 20)).hexdigest()[:16]
    return f"{path.name}:{path.stat().st_size}:{head}"


def _existing(path: Path | None, what: str) -> Path | None:
    if path is not None and not Path(path).exists():
        raise SSNIUserError(f"{what} {path} does not exist")
    return None if path is None else Path(path)


def parse_method(method: str) -> tuple[str, int | None]:
    """("constant", None) | ("constant", t) for "constant@t" | ("ssni-n", None) | ("ssni-l", None)."""
    if method in METHODS:
        return method, None
    if method.startswith("constant@"):
        try:
            t = int(method.split("@", 1)[1])
        except ValueError:
            t = -1
        if 1 <= t <= 1000:
            return "constant", t
    raise SSNIUserError(f"unknown method {method!r}; use {', '.join(METHODS)} or constant@<t> with t in 1..1000")


def _runs(n: int, size: int) -> list[slice]:
    """Consecutive slices of at most `size` covering range(n)."""
    return [slice(s, s + size) for s in range(0, n, size)]


def recorded_t(t: Tensor) -> Tensor:
    """The t a record keeps: t [B] itself, or for a multi-stage host ([B, S]) the largest stage's t."""
    return t.max(dim=1).values if t.dim() == 2 else t


# ---------------------------------------------------------------------------------------------- models
@dataclass
class Models:
    """The loaded networks (eval mode, no parameter gradients) and the identities that name them."""

    diffusion: nn.Module
    classifier: nn.Module | None
    diffusion_id: str
    classifier_id: str | None


def _freeze(model: nn.Module, device: str) -> nn.Module:
    model = model.eval().to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_models(
    preset: Preset, diffusion_path: Path | None, classifier_path: Path | None, device: str, classifier: bool = True
) -> Models:
    """The preset's diffusion model and (if `classifier`) classifier: embedded for MNIST, the user's otherwise."""
    diffusion_path = _existing(diffusion_path, "diffusion checkpoint")
    classifier_path = _existing(classifier_path, "classifier checkpoint") if classifier else None
    c_net, c_id = None, None
    if preset.dataset == "mnist":
        from ssni.models import load, weights_id

        try:
            d_net = load("mnist-ddpm", diffusion_path)
            if classifier:
                c_net = load("mnist-classifier", classifier_path)
                c_id = weights_id("mnist-classifier", classifier_path)
        except FileNotFoundError as e:
            raise SSNIUserError(f"{e} (the embedded MNIST weights ship in ssni/weights/)") from None
        d_id = weights_id("mnist-ddpm", diffusion_path)
    else:
        needed = [(diffusion_path, "--diffusion-checkpoint")] + [
            (classifier_path, "--classifier-checkpoint")
        ] * classifier
        for path, flag in needed:
            if path is None:
                raise SSNIUserError(f"preset {preset.name} needs {flag} (nothing is downloaded; see spec §9)")
        try:
            from ssni.models import load as load_model
        except ImportError:
            raise SSNIUserError(f"preset {preset.name}: this build has no model registry (ssni.models.load)") from None
        d_net = load_model(preset.diffusion, diffusion_path)
        d_id = f"{preset.diffusion}:{file_identity(diffusion_path)}"
        if classifier:
            c_net = load_model(preset.classifier, classifier_path)
            c_id = f"{preset.classifier}:{file_identity(classifier_path)}"
    if c_net is not None:
        c_net = _freeze(c_net, device)
    return Models(_freeze(d_net, device), c_net, d_id, c_id)


def load_calibration(preset: Preset, path: Path | None, models: Models, num_levels: int):
    """The calibration for these models (embedded for MNIST); refused when made for another model/T'/size."""
    from ssni import Calibration

    if path is None:
        if preset.dataset != "mnist":
            raise SSNIUserError(f"preset {preset.name} needs --calibration (make one with `ssni calibrate`)")
        from ssni.zoo.mnist import CALIBRATION

        path = CALIBRATION
    path = _existing(Path(path), "calibration file")
    size = (preset.image_size, preset.image_size)
    try:
        return Calibration.load(path, model_id=models.diffusion_id, num_levels=num_levels, resolution=size)
    except ValueError as e:  # CalibrationMismatchError included
        raise SSNIUserError(f"calibration {path}: {e}") from None


def build_purifier(spec: PurifierSpec, model: nn.Module) -> nn.Module:
    """The host purifier of a preset (defence schedule and surrogate schedule), at the model's resolution."""
    purifier = _build_host(spec, model)
    purifier.resolution = spec.resolution
    return purifier


def _build_host(spec: PurifierSpec, model: nn.Module) -> nn.Module:
    from ssni import DDPMPurifier, GDMPPurifier, GNSPurifier, SDEPurifier

    stars = tuple(t for t, _ in spec.stages)
    steps = tuple(n for _, n in spec.stages)
    grad_steps = tuple(n for _, n in spec.surrogate_stages)
    if spec.host == "ddpm":
        return DDPMPurifier(model, t_star=stars[0], num_steps=steps[0], eta=spec.eta, grad_num_steps=grad_steps[0])
    if spec.host == "sde":
        return SDEPurifier(model, t_star=stars[0], grad_num_steps=grad_steps[0])
    if spec.host == "gns":
        grad_stars = tuple(t for t, _ in spec.surrogate_stages)
        return GNSPurifier(
            model, t_star=stars, num_steps=steps, grad_t_star=grad_stars, grad_num_steps=grad_steps, eta=spec.eta
        )
    if spec.host == "gdmp":
        return GDMPPurifier(model, t_star=stars, guidance=spec.guidance, grad_num_steps=grad_steps[0])
    raise SSNIUserError(f"unknown purifier host {spec.host!r}")


# ---------------------------------------------------------------------------------------------- data
def load_eval_data(preset: Preset, data: Path | None, data_seed: int = 0) -> EvalData:
    """The protocol subset of spec §8 (first `num_samples` of it), with dataset indices as sample ids."""
    from ssni.data import subsets

    n = preset.num_samples
    if preset.dataset == "mnist":
        from ssni.data.mnist import load_mnist

        index = subsets.mnist_test_subset(n)
        split = load_mnist("test", size=preset.image_size).subset(index)
        images, labels = split.images, split.labels
    elif preset.dataset == "cifar10":
        from ssni.data.cifar10 import load_cifar10

        if data is None:
            raise SSNIUserError(f"preset {preset.name} needs --data (the CIFAR-10 python batches folder)")
        index = (
            subsets.cifar10_test_subset(subsets.CIFAR10_EVAL_SUBSET)[:n]
            if n <= 512
            else subsets.protocol_subset(subsets.CIFAR10_TEST_SIZE, n)
        )
        x, y = load_cifar10(data, "test")
        images, labels = x[index], y[index]
    elif preset.dataset == "imagenet":
        from ssni.data.imagenet import load_imagenet_subset

        if data is None:
            raise SSNIUserError(f"preset {preset.name} needs --data (ImageNet val in class folders)")
        index = subsets.imagenet_val_subset(data_seed, max(n, subsets.IMAGENET_EVAL_SUBSET))[:n]
        images, labels = load_imagenet_subset(data, index)
    else:
        raise SSNIUserError(f"unknown dataset {preset.dataset!r}")
    return EvalData(images.contiguous(), labels, torch.as_tensor(index, dtype=torch.int64))


def load_calibration_images(preset: Preset, data: Path | None, num_samples: int) -> Tensor:
    """Clean TRAINING images of spec §3: RandomState(0).choice(n_train, num_samples, replace=False)."""
    from ssni.data import subsets

    if preset.dataset == "mnist":
        from ssni.data.mnist import load_mnist

        train = load_mnist("train", size=preset.image_size)
        return train.images[torch.as_tensor(subsets.calibration_subset(len(train), num_samples))]
    if data is None:
        raise SSNIUserError(f"calibrating preset {preset.name} needs --data (the training images)")
    if preset.dataset == "cifar10":
        from ssni.data.cifar10 import load_cifar10

        x, _ = load_cifar10(data, "train")
        return x[torch.as_tensor(subsets.calibration_subset(x.shape[0], num_samples))]
    from ssni.data.imagenet import list_imagenet_val, load_imagenet_subset

    index = subsets.calibration_subset(len(list_imagenet_val(data)), num_samples)
    return load_imagenet_subset(data, index)[0]


# ---------------------------------------------------------------------------------------------- backend
class ModelBackend:
    """The real backend: defences built from one host purifier, attacks from `ssni.attacks`.

    network_batch: the most rows the diffusion network evaluates in one call outside the attacks' gradients
    (score norms and purification; None: the preset's batch size). Inputs with more samples than that go through
    the streaming engine (`ssni.purify.StreamingPurifier`, continuous batching at network_batch rows) when the
    host is streamed (DDPM/DDIM, SDE; not GNS votes or GDMP); the results equal the chunked path's up to float
    rounding, since every sample's noise is keyed on (seed, sample id, step).
    """

    def __init__(self, preset: Preset, models: Models, calibration, tau: float | None, device: str, network_batch=None):
        from ssni import SSNI

        network_batch = preset.batch_size if network_batch is None else network_batch
        if isinstance(network_batch, bool) or not isinstance(network_batch, int) or network_batch < 1:
            raise SSNIUserError(f"--network-batch must be an int >= 1, got {network_batch!r}")
        self.preset = preset
        self.models = models
        self.device = device
        self.network_batch = network_batch
        self.purifier = build_purifier(preset.purifier, models.diffusion).to(device)
        common = dict(bias=preset.bias, chunk_size=network_batch)
        self.ssni = {
            "ssni-n": SSNI(self.purifier, calibration, reweight="sigmoid", tau=tau, **common),
            "ssni-l": SSNI(self.purifier, calibration, reweight="linear", **common),
        }
        self.streams = self._streams()

    def _streams(self):
        """(score engine, purification engine) when the host is streamed, else None."""
        from ssni import DDPMPurifier, SDEPurifier
        from ssni.purify import StreamingPurifier

        if self.preset.purifier.votes > 1 or not isinstance(self.purifier, (DDPMPurifier, SDEPurifier)):
            return None
        # t is always given to the purification engine (SSNI-L's batch min/max is the chunk's, as unstreamed)
        return (
            StreamingPurifier(self.ssni["ssni-n"], self.network_batch),
            StreamingPurifier(self.purifier, self.network_batch),
        )

    def _counters(self):
        engines = [s.stats for s in self.streams or ()]
        return [self.purifier.counter, *(s.score_counter for s in self.ssni.values()), *engines]

    @property
    def network_calls(self) -> int:
        """Forward passes of the diffusion network so far (purification, score norms, attack gradients)."""
        return sum(c.network_calls for c in self._counters())

    @property
    def samples_evaluated(self) -> int:
        """Per-sample evaluations of the diffusion network so far."""
        return sum(c.samples_evaluated for c in self._counters())

    def streamed(self, x: Tensor) -> bool:
        """Whether x goes through the streaming engine: a streamed host and more samples than network_batch."""
        return self.streams is not None and x.shape[0] > self.network_batch

    def scores(self, x: Tensor, *, seed: int, sample_ids: Tensor) -> Tensor:
        """The EPS score norm e [N] of every sample (it depends on the model, T', seed and id, not the method)."""
        if self.streamed(x):
            return self.streams[0].score_all(x, seed=seed, sample_ids=sample_ids)
        score, dev = self.ssni["ssni-n"].scores, self.device
        runs = _runs(x.shape[0], self.preset.batch_size)
        return torch.cat([score(x[r].to(dev), seed=seed, sample_ids=sample_ids[r].to(dev)) for r in runs])

    def timesteps(self, method: str, e: Tensor) -> Tensor:
        """`method`'s t for one chunk of score norms e [B] (SSNI-L's min/max take the chunk as its batch)."""
        kind, t_const = parse_method(method)
        if kind != "constant":
            return self.ssni[kind].timesteps_from_scores(e).to(e.device)
        t = self.purifier.constant_t(e.shape[0], e.device)
        if t_const is not None:
            if t.dim() != 1:
                raise SSNIUserError(f"{method}: a constant-t sweep needs a single-stage purifier")
            t = torch.full_like(t, t_const)
        return t

    def purify(self, method: str, x: Tensor, *, seed: int, sample_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(x̂, t, e) for x [N] in [0, 1] on any device (results on x's device). t is computed per chunk of the
        preset's batch size; x̂ comes from the streaming engine when `streamed(x)`, else from the host in runs of
        network_batch samples."""
        e = self.scores(x, seed=seed, sample_ids=sample_ids).to(x.device)
        t = torch.cat([self.timesteps(method, e[r]) for r in _runs(x.shape[0], self.preset.batch_size)])
        if self.streamed(x):
            return self.streams[1].purify_all(x, t, seed=seed, sample_ids=sample_ids), t, e
        purify, dev = self.purifier.purify, self.device
        runs = _runs(x.shape[0], self.network_batch)
        out = [
            purify(x[r].to(dev), t[r].to(dev), seed=seed, sample_ids=sample_ids[r].to(dev)).to(x.device) for r in runs
        ]
        return torch.cat(out), t, e

    def classify(self, x: Tensor) -> Tensor:
        """Predicted labels [N] on the CPU, in runs of the preset's batch size."""
        runs = _runs(x.shape[0], self.preset.batch_size)
        return torch.cat([self.models.classifier(x[r].to(self.device)).argmax(dim=1).cpu() for r in runs])

    @torch.no_grad()
    def evaluate(self, method: str, x: Tensor, *, seed: int, sample_ids: Tensor) -> DefenceOutput:
        x, ids = x.to(self.device), sample_ids.to(self.device)
        if self.preset.purifier.votes > 1:
            from ssni import GNSDefense

            e = self.scores(x, seed=seed, sample_ids=ids)
            t = self.timesteps(method, e)
            pred = GNSDefense(self.purifier, self.models.classifier, self.preset.purifier.votes)(
                x, t, seed=seed, sample_ids=ids
            )
        else:
            purified, t, e = self.purify(method, x, seed=seed, sample_ids=ids)
            pred = self.classify(purified)
        return DefenceOutput(pred.cpu(), recorded_t(t).cpu(), e.float().cpu())

    def defended(self, method: str, seed: int):
        """The `DefendedModel` attacks see for `method` (adaptive for SSNI)."""
        from ssni.attacks import AdaptiveSSNI, PurifiedClassifier

        kind, t_const = parse_method(method)
        defence = self.purifier if kind == "constant" else self.ssni[kind]
        predict = None
        if self.preset.purifier.votes > 1:  # success is judged on the majority vote, as the defence predicts
            from ssni import GNSDefense

            vote = GNSDefense(defence, self.models.classifier, self.preset.purifier.votes)

            def predict(x_in, *, sample_ids):
                t_in = None if t_const is None else torch.full((x_in.shape[0],), t_const, device=x_in.device)
                counts, _ = vote.votes(x_in, t_in, seed=seed, sample_ids=sample_ids)
                return counts.float()

        if kind != "constant":
            return AdaptiveSSNI(defence, self.models.classifier, seed, predict=predict)
        # an int, not a per-batch tensor: attacks re-batch (AutoAttack's second stage runs on a subset)
        return PurifiedClassifier(defence, self.models.classifier, seed, t=t_const, predict=predict)

    def attack(self, method: str, attack: AttackSpec, x, y, *, seed: int, sample_ids, on_iteration=None) -> Tensor:
        from ssni.attacks import autoattack_rand, bpda_eot, pgd_eot

        x, y, ids = x.to(self.device), y.to(self.device), sample_ids.to(self.device)
        model = self.defended(method, seed)
        common = dict(sample_ids=ids, norm=attack.norm, eps=attack.eps, iterations=attack.iterations, eot=attack.eot)
        if attack.name.startswith("autoattack"):
            result = autoattack_rand(model, x, y, seed=seed, on_iteration=on_iteration, **common)
        elif attack.name.startswith("bpda"):
            result = bpda_eot(model, x, y, step_size=attack.step_size, on_iteration=on_iteration, **common)
        else:
            result = pgd_eot(model, x, y, step_size=attack.step_size, on_iteration=on_iteration, **common)
        return result.x_adv.detach().cpu()


# ---------------------------------------------------------------------------------------------- commands
def preset_from_args(args, *, smoke: bool = False) -> Preset:
    """The named preset with the command line's overrides applied."""
    preset = get_preset(args.preset)
    o = {**SMOKE} if smoke else {}
    for name in ("num_samples", "batch_size", "num_levels", "seeds", "iterations", "eot", "surrogate_steps"):
        if getattr(args, name, None) is not None:
            o[name] = getattr(args, name)
    for name in ("num_samples", "batch_size", "num_levels", "iterations", "eot", "surrogate_steps"):
        if name in o and o[name] < 1:
            raise SSNIUserError(f"--{name.replace('_', '-')} must be >= 1, got {o[name]}")
    preset = preset.select_attacks(getattr(args, "attacks", None))
    methods = tuple(getattr(args, "methods", None) or preset.methods)
    methods += tuple(f"constant@{t}" for t in (getattr(args, "t_sweep", None) or ()))
    for m in methods:
        parse_method(m)
    attacks = tuple(
        AttackSpec(a.name, a.norm, a.eps, a.step_size, o.get("iterations", a.iterations), o.get("eot", a.eot))
        for a in preset.attacks
    )
    purifier = preset.purifier
    t_star = getattr(args, "t_star", None)
    if t_star is not None:
        if len(purifier.stages) != 1 or not 1 <= t_star <= 995:
            raise SSNIUserError(f"--t-star needs a single-stage purifier and 1 <= t* <= 995, got {t_star}")
        n = purifier.stages[0][1]
        purifier = replace(
            purifier,
            stages=((t_star, t_star if n == purifier.stages[0][0] else min(n, t_star)),),
            surrogate_stages=((t_star, min(purifier.surrogate_stages[0][1], t_star)),),
        )
    if "surrogate_steps" in o:
        stages = tuple((t, min(t, o["surrogate_steps"])) for t, _ in purifier.surrogate_stages)
        purifier = replace(purifier, surrogate_stages=stages)
    note = preset.demo_note
    if smoke:
        note = "smoke configuration (CI): not a meaningful robustness number"
    elif note and any(k in o for k in ("iterations", "eot", "surrogate_steps")):
        note = "attack budget changed on the command line"
    return preset.with_overrides(
        num_samples=o.get("num_samples"),
        batch_size=o.get("batch_size"),
        num_levels=o.get("num_levels"),
        seeds=tuple(o["seeds"]) if "seeds" in o else None,
        methods=tuple(dict.fromkeys(methods)),
        attacks=attacks,
        purifier=purifier,
    ).with_overrides(demo_note=note)


def build_eval(args):
    """(EvalConfig, ModelBackend, EvalData, device) for `ssni eval`."""
    preset = preset_from_args(args, smoke=args.smoke)
    device = resolve_device(args.device)
    models = load_models(preset, args.diffusion_checkpoint, args.classifier_checkpoint, device)
    calibration = load_calibration(preset, args.calibration, models, preset.num_levels)
    data = load_eval_data(preset, args.data, args.data_seed)
    out = args.out or Path("ssni-results") / f"{preset.name}{'-smoke' if args.smoke else ''}.jsonl"
    identities = {
        "diffusion": models.diffusion_id,
        "classifier": models.classifier_id,
        "calibration_tau": repr(args.tau if args.tau is not None else calibration.tau),
        "calibration_mean": repr(calibration.mean),
        "data_seed": str(args.data_seed),
    }
    config = EvalConfig(
        preset=preset, out=Path(out), identities=identities, overwrite=args.overwrite, progress=not args.no_progress
    )
    backend = ModelBackend(preset, models, calibration, args.tau, device, args.network_batch)
    return config, backend, data, device


def run_purify(args) -> tuple[Path, Path]:
    """`ssni purify`: purified images (.pt) and a per-sample table of score norm and t (.csv or .json)."""
    import csv
    import json

    from ssni.data.images import load_images

    preset = preset_from_args(args)
    device = resolve_device(args.device)
    if args.out.suffix != ".pt":
        raise SSNIUserError(f"--out must be a .pt file, got {args.out}")
    scores_path = args.scores or args.out.with_suffix(".csv")
    if scores_path.suffix not in (".csv", ".json"):
        raise SSNIUserError(f"--scores must end in .csv or .json, got {scores_path}")
    if args.input is not None:
        images = load_images(args.input, channels=preset.channels, size=preset.image_size)
        labels, ids = None, torch.arange(images.shape[0])
    else:
        data = load_eval_data(preset, args.data, args.data_seed)
        images, labels, ids = data.images, data.labels, data.sample_ids
    models = load_models(preset, args.diffusion_checkpoint, args.classifier_checkpoint, device)
    calibration = load_calibration(preset, args.calibration, models, preset.num_levels)
    backend = ModelBackend(preset, models, calibration, args.tau, device, args.network_batch)
    kind, _ = parse_method(args.method)
    with torch.no_grad():
        purified, t, e = backend.purify(args.method, images, seed=args.seed, sample_ids=ids)
        pred = backend.classify(purified)
    t_rec = recorded_t(t)
    rows = []
    for i in range(images.shape[0]):
        row = {
            "index": i,
            "sample_id": int(ids[i]),
            "score_norm": float(e[i]),
            "t": int(t_rec[i]),
            "pred": int(pred[i]),
        }
        if labels is not None:
            row["label"] = int(labels[i])
        rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(purified.cpu(), args.out)
    if scores_path.suffix == ".json":
        payload = {"method": args.method, "kind": kind, "seed": args.seed, "samples": rows}
        scores_path.write_text(json.dumps(payload, indent=1) + "\n")
    else:
        with open(scores_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return args.out, scores_path


def run_calibrate(args) -> tuple[Path, str]:
    """`ssni calibrate`: clean score-norm statistics of the §3 reference set and a proposed τ."""
    from ssni import calibrate, tau_sweep

    preset = preset_from_args(args)
    device = resolve_device(args.device)
    models = load_models(preset, args.diffusion_checkpoint, None, device, classifier=False)
    n = args.num_samples or preset.calibration_samples
    images = load_calibration_images(preset, args.data, n)
    adversarial = None
    if args.adversarial is not None:
        from ssni.eval.records import read_results

        norms = [r["score_norm"] for r in read_results(args.adversarial).records if r["attack"] != "none"]
        if not norms:
            raise SSNIUserError(f"{args.adversarial} has no adversarial records")
        adversarial = torch.tensor(norms, dtype=torch.float64)
    cal = calibrate(
        models.diffusion,
        images,
        model_id=models.diffusion_id,
        num_levels=preset.num_levels,
        seed=args.seed,
        batch_size=preset.batch_size,
        device=device,
    )
    if adversarial is not None:  # τ from clean and adversarial norms (the norms of records, not images)
        from ssni import Calibration

        cal = Calibration.from_norms(
            cal.norms,
            model_id=cal.model_id,
            num_levels=cal.num_levels,
            resolution=cal.resolution,
            seed=cal.seed,
            adv_norms=adversarial,
        )
    if args.tau is not None:
        cal = cal.with_tau(args.tau)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    path = cal.save(args.out)
    sweep = ", ".join(f"{t:.4g}" for t in tau_sweep(cal))
    text = (
        f"clean score norms of {cal.num_samples} training images (T'={cal.num_levels}, seed {cal.seed}, model "
        f"{cal.model_id}):\n  mean {cal.mean:.4g}  std {cal.std:.4g}  min {cal.min:.4g}  max {cal.max:.4g}\n"
        f"  proposed tau {cal.tau:.4g}"
        + (f" (adversarial mean {cal.adv_mean:.4g})" if cal.adv_mean else "")
        + f"\n  tau sweep: {sweep}"
    )
    return path, text
