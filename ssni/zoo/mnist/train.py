"""Training of the embedded MNIST default: the small classifier and the small ε-prediction DDPM UNet.

Both trainers take a dataclass config, run on CPU (or CUDA when asked), and write ssni weights files
(`ssni.models.registry.save_weights`) whose metadata records the model config and a training summary (steps, final
loss/accuracy, wall time). The diffusion trainer checkpoints regularly and resumes from its checkpoint when
restarted with the same command.

CLI entry points (wired as `ssni train-classifier` / `ssni train-diffusion`): `train_classifier_main(argv)` and
`train_diffusion_main(argv)`; each flag is a config field (`--batch-size 64`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ssni.data.mnist import load_mnist
from ssni.models.mnist import MNISTClassifier, MNISTClassifierConfig, MNISTDiffusionConfig, build_mnist_diffusion
from ssni.models.registry import save_weights, spec
from ssni.schedules import ddpm_alphas_cumprod

__all__ = [
    "ClassifierTrainingConfig",
    "DiffusionTrainingConfig",
    "TrainingResult",
    "classifier_accuracy",
    "config_from_argv",
    "random_shift",
    "sample_timesteps",
    "train_classifier",
    "train_classifier_main",
    "train_diffusion",
    "train_diffusion_main",
    "warmup_cosine",
]


@dataclass
class ClassifierTrainingConfig:
    """Train the MNIST classifier: AdamW, warm-up + cosine LR, 50k training images shifted by ±max_shift px."""

    out: str = str(spec("mnist-classifier").embedded)
    epochs: int = 4
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    max_shift: int = 2
    seed: int = 0
    threads: int = 2
    device: str = "cpu"
    model: MNISTClassifierConfig = field(default_factory=MNISTClassifierConfig)


@dataclass
class DiffusionTrainingConfig:
    """Train the MNIST ε-prediction DDPM (simple MSE loss) with t drawn from a restricted range.

    Purification and score norms only query small timesteps (t* ≲ 200 of 1000; score levels ≤ 50), so t is drawn
    from a mixture: with probability `small_t_fraction` uniform on [0, small_t_max), otherwise uniform on
    [0, t_max). The model is not trained (and must not be used) for t ≥ t_max.
    """

    out: str = str(spec("mnist-ddpm").embedded)
    checkpoint: str = "runs/mnist_ddpm/checkpoint.pt"
    iterations: int = 3000
    max_minutes: float = 0.0  # stop early (and export) after this much training wall time in total; 0 = no limit
    batch_size: int = 64
    lr: float = 5e-4
    warmup_steps: int = 100
    ema_decay: float = 0.998
    grad_clip: float = 1.0
    t_max: int = 400
    small_t_max: int = 50
    small_t_fraction: float = 0.3
    checkpoint_every: int = 100
    log_every: int = 20
    seed: int = 0
    threads: int = 2
    device: str = "cpu"
    model: MNISTDiffusionConfig = field(default_factory=MNISTDiffusionConfig)


@dataclass(frozen=True)
class TrainingResult:
    """What a trainer did: where the weights went, steps taken, final metrics, wall time in seconds."""

    out: str
    steps: int
    metrics: dict[str, float]
    wall_time_s: float


def warmup_cosine(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up over `warmup` steps, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image of [B, C, H, W] by its own integer offsets in [−max_shift, max_shift], zero fill."""
    if max_shift == 0:
        return images
    b, _, h, w = images.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (b, 2), generator=generator).to(images.dtype)
    theta = torch.zeros(b, 2, 3, dtype=images.dtype)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    # A shift of k pixels is 2k/size in normalised coordinates (align_corners=False); nearest keeps pixels exact.
    theta[:, 0, 2] = 2.0 * shifts[:, 0] / w
    theta[:, 1, 2] = 2.0 * shifts[:, 1] / h
    grid = F.affine_grid(theta, list(images.shape), align_corners=False).to(images.device)
    return F.grid_sample(images, grid, mode="nearest", padding_mode="zeros", align_corners=False)


@torch.no_grad()
def classifier_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy of `model` on images [N, C, H, W] in [0, 1] with labels [N]."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for start in range(0, len(labels), batch_size):
        logits = model(images[start : start + batch_size].to(device))
        correct += (logits.argmax(1).cpu() == labels[start : start + batch_size]).sum().item()
    return correct / len(labels)


def train_classifier(config: ClassifierTrainingConfig) -> TrainingResult:
    """Train the MNIST classifier on the training split; report val and test accuracy; write safetensors."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    device = torch.device(config.device)
    train, val, test = load_mnist("train"), load_mnist("val"), load_mnist("test")
    model = MNISTClassifier(config.model).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total = config.epochs * steps_per_epoch
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, total, config.warmup_steps))
    start = time.perf_counter()
    step = 0
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(train), generator=generator)
        running = 0.0
        for i in range(steps_per_epoch):
            index = order[i * config.batch_size : (i + 1) * config.batch_size]
            x = random_shift(train.images[index], config.max_shift, generator).to(device)
            loss = F.cross_entropy(model(x), train.labels[index].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running += loss.item()
            step += 1
        val_acc = classifier_accuracy(model, val.images, val.labels)
        print(
            f"epoch {epoch + 1}/{config.epochs} loss {running / steps_per_epoch:.4f} val_acc {val_acc:.4f} "
            f"elapsed {time.perf_counter() - start:.0f}s",
            flush=True,
        )
    wall = time.perf_counter() - start
    metrics = {
        "train_loss": running / steps_per_epoch,
        "val_accuracy": val_acc,
        "test_accuracy": classifier_accuracy(model, test.images, test.labels),
    }
    summary = {"steps": str(step), "wall_time_s": f"{wall:.1f}", "metrics": json.dumps(metrics)}
    summary["training_config"] = json.dumps(asdict(config), sort_keys=True)
    save_weights("mnist-classifier", model.cpu(), Path(config.out), config.model, extra=summary)
    print(f"test_acc {metrics['test_accuracy']:.4f}; wrote {config.out} ({wall:.0f}s)", flush=True)
    return TrainingResult(config.out, step, metrics, wall)


def sample_timesteps(batch: int, config: DiffusionTrainingConfig, generator: torch.Generator) -> torch.Tensor:
    """Training timesteps [batch] int64: the small-t / restricted-range mixture of `DiffusionTrainingConfig`."""
    small = torch.rand(batch, generator=generator) < config.small_t_fraction
    upper = torch.where(small, config.small_t_max, config.t_max)
    return (torch.rand(batch, generator=generator) * upper).long()


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.state_dict().values(), model.state_dict().values()):
        if e.dtype.is_floating_point:
            e.lerp_(p, 1.0 - decay)
        else:
            e.copy_(p)


def train_diffusion(config: DiffusionTrainingConfig) -> TrainingResult:
    """Train the MNIST ε-prediction UNet; resume from `config.checkpoint` when it exists; export the EMA weights.

    Loss: ‖ε − ε̂(sqrt(ᾱ_t)·x_s + sqrt(1−ᾱ_t)·ε, t)‖² averaged over pixels, x_s = 2x − 1, DDPM β = linspace(1e-4,
    2e-2, 1000). Training stops after `iterations` steps or `max_minutes` of total training time.
    """
    if not 0 < config.small_t_max <= config.t_max <= 1000:
        raise ValueError(f"need 0 < small_t_max <= t_max <= 1000, got {config.small_t_max}, {config.t_max}")
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    train = load_mnist("train", size=config.model.resolution)
    alphas_cumprod = ddpm_alphas_cumprod().to(device=device, dtype=torch.float32)
    model = build_mnist_diffusion(config.model).to(device)
    ema = build_mnist_diffusion(config.model).to(device)
    ema.load_state_dict(model.state_dict())
    ema.eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(config.seed)
    step, elapsed, loss_avg = 0, 0.0, float("nan")
    checkpoint = Path(config.checkpoint)
    if checkpoint.is_file():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        if state["model_config"] != asdict(config.model):
            raise ValueError(f"{checkpoint} was written for model config {state['model_config']}, not {config.model}")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step, elapsed, loss_avg = state["step"], state["elapsed"], state["loss_avg"]
        print(f"resumed from {checkpoint} at step {step} ({elapsed:.0f}s trained)", flush=True)
    log_path = checkpoint.with_suffix(".log.jsonl")
    checkpoint.parent.mkdir(parents=True, exist_ok=True)

    def save_checkpoint() -> None:
        state = {
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": generator.get_state(),
            "step": step,
            "elapsed": elapsed,
            "loss_avg": loss_avg,
            "model_config": asdict(config.model),
        }
        tmp = checkpoint.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(checkpoint)  # atomic: a kill mid-write leaves the previous checkpoint intact

    model.train()
    time_limit = config.max_minutes * 60.0 if config.max_minutes > 0 else math.inf
    t0 = time.perf_counter() - elapsed
    while step < config.iterations and elapsed < time_limit:
        index = torch.randint(0, len(train), (config.batch_size,), generator=generator)
        x_s = train.images[index].to(device) * 2.0 - 1.0
        t = sample_timesteps(config.batch_size, config, generator).to(device)
        noise = torch.randn(x_s.shape, generator=generator).to(device)
        a = alphas_cumprod[t].view(-1, 1, 1, 1)
        loss = F.mse_loss(model(a.sqrt() * x_s + (1.0 - a).sqrt() * noise, t), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        # The learning rate is a function of the step alone, so a resumed run follows the uninterrupted schedule.
        lr = config.lr * warmup_cosine(step, config.iterations, config.warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.step()
        step += 1
        # EMA decay ramps up from 0 so that early steps are not dominated by the random initialisation.
        _ema_update(ema, model, min(config.ema_decay, (1.0 + step) / (10.0 + step)))
        loss_avg = loss.item() if math.isnan(loss_avg) else 0.98 * loss_avg + 0.02 * loss.item()
        elapsed = time.perf_counter() - t0
        if step % config.log_every == 0:
            record = {"step": step, "loss": loss.item(), "loss_avg": loss_avg, "lr": lr}
            record["elapsed_s"] = round(elapsed, 1)
            with open(log_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)
        if step % config.checkpoint_every == 0:
            save_checkpoint()
    save_checkpoint()
    metrics = {"train_loss_ema": loss_avg}
    summary = {
        "steps": str(step),
        "wall_time_s": f"{elapsed:.1f}",
        "metrics": json.dumps(metrics),
        "training_config": json.dumps(asdict(config), sort_keys=True),
        "valid_timesteps": f"0..{config.t_max - 1}",
    }
    save_weights("mnist-ddpm", ema.cpu(), Path(config.out), config.model, extra=summary)
    print(f"step {step} loss_avg {loss_avg:.4f}; wrote EMA weights to {config.out} ({elapsed:.0f}s)", flush=True)
    return TrainingResult(config.out, step, metrics, elapsed)


def _parser_for(config_cls, prog: str) -> argparse.ArgumentParser:
    """An argparse parser with one `--flag` per scalar field of `config_cls` (nested model configs stay default)."""
    parser = argparse.ArgumentParser(prog=prog, description=(config_cls.__doc__ or "").strip().splitlines()[0])
    for f in dataclasses.fields(config_cls):
        default = f.default if f.default is not dataclasses.MISSING else None
        if default is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(flag, type=type(default), default=default, help=f"(default: {default})")
    return parser


def config_from_argv(config_cls, prog: str, argv: list[str] | None):
    """An instance of `config_cls` from command-line flags (one `--flag` per scalar field)."""
    args = _parser_for(config_cls, prog).parse_args(argv)
    return config_cls(**vars(args))


def train_classifier_main(argv: list[str] | None = None) -> int:
    """`ssni train-classifier [--epochs N ...]`: train and write the MNIST classifier. Returns the exit code."""
    train_classifier(config_from_argv(ClassifierTrainingConfig, "ssni train-classifier", argv))
    return 0


def train_diffusion_main(argv: list[str] | None = None) -> int:
    """`ssni train-diffusion [--iterations N ...]`: train (or resume) and write the MNIST DDPM. Returns exit code."""
    train_diffusion(config_from_argv(DiffusionTrainingConfig, "ssni train-diffusion", argv))
    return 0
