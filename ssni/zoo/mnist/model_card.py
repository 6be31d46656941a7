"""The MNIST model-card numbers: accuracy after purification at a few t*, score norms of clean / attacked / noisy
inputs, the shipped calibration, and the clean → noised → purified grid.

`python -m ssni.zoo.mnist.model_card [--sweep-images N ...]` recomputes them from the weights in `--out-dir`
(default: the embedded ones) and writes mnist_report.json, mnist_purification_grid.png and mnist_calibration.json.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ssni.data.mnist import load_mnist
from ssni.models.registry import EMBEDDED_WEIGHTS_DIR, load, spec, weights_id
from ssni.schedules import ddpm_alphas_cumprod
from ssni.zoo.mnist.train import classifier_accuracy, config_from_argv

EMBEDDED_DIFFUSION = spec("mnist-ddpm").embedded
EMBEDDED_CLASSIFIER = spec("mnist-classifier").embedded

__all__ = ["MNISTReportConfig", "mnist_report", "mnist_report_main", "purified_accuracy", "save_purification_grid"]


@torch.no_grad()
def purified_accuracy(
    diffusion: nn.Module,
    classifier: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    t_stars: tuple[int, ...],
    *,
    seed: int = 121,
    num_steps: int | None = None,
    batch_size: int = 64,
) -> dict[int, float]:
    """Clean accuracy of classifier(DDPM-purify(x, t*)) for each t* (spec §5, η = 1; sample ids = row numbers).

    num_steps None visits every index (the defence); an int n uses the §5 step sequence with n steps.
    """
    from ssni.purify.ddpm import DDPMPurifier

    accuracy = {}
    for t_star in t_stars:
        purifier = DDPMPurifier(diffusion, t_star=t_star, num_steps=num_steps)
        correct = 0
        for start in range(0, len(labels), batch_size):
            x = images[start : start + batch_size]
            ids = torch.arange(start, start + x.shape[0])
            purified = purifier.purify(x, seed=seed, sample_ids=ids)
            correct += (classifier(purified).argmax(1) == labels[start : start + batch_size]).sum().item()
        accuracy[t_star] = correct / len(labels)
    return accuracy


@torch.no_grad()
def save_purification_grid(
    diffusion: nn.Module, images: torch.Tensor, t_stars: tuple[int, ...], path: Path, *, seed: int = 121, scale: int = 3
) -> None:
    """PNG grid: row 0 the clean images [N, 1, H, W]; then per t*, the input noised at index t*−1 and its
    purification (the same noise draw as `DDPMPurifier.purify` with sample ids 0..N−1). Needs matplotlib."""
    import matplotlib.pyplot as plt

    from ssni.purify.ddpm import DDPMPurifier, inject

    ids = torch.arange(images.shape[0])
    rows = [images]
    for t_star in t_stars:
        purifier = DDPMPurifier(diffusion, t_star=t_star)
        t = purifier.constant_t(images.shape[0], images.device)
        noised = inject(2 * images - 1, t, ddpm_alphas_cumprod(), seed=seed, sample_ids=ids, draw=0)
        rows += [(noised + 1) / 2, purifier.purify(images, seed=seed, sample_ids=ids)]
    grid = torch.cat([torch.cat(list(row[:, 0].clamp(0, 1)), dim=1) for row in rows], dim=0)
    grid = grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(str(path), grid.numpy(), cmap="gray", vmin=0.0, vmax=1.0)


@dataclass
class MNISTReportConfig:
    """Write the MNIST model-card numbers: purified accuracy vs t*, score norms, calibration, purification grid.

    Lists (t_stars, grid_t_stars) are comma-separated strings.
    """

    out_dir: str = str(EMBEDDED_WEIGHTS_DIR)
    t_stars: str = "50,100,150,200,300"
    sweep_images: int = 64
    sweep_steps: int = 25  # reverse steps per purification in the t* sweep; 0 = every index (the defence)
    grid_t_stars: str = "100,200"
    calibration_samples: int = 1000
    tau_images: int = 200  # training images (outside the reference set) whose FGSM norms set τ
    num_levels: int = 10
    norm_images: int = 200
    fgsm_eps: float = 0.3
    noise_std: float = 0.15
    seed: int = 121
    threads: int = 2


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v.strip())


def mnist_report(config: MNISTReportConfig) -> dict:
    """Compute the model-card numbers with the weights in `config.out_dir`; write mnist_report.json, the grid PNG
    and the calibration (mnist_calibration.json + its norms) there. Returns the report dict."""
    from ssni.calibration import calibrate
    from ssni.data.subsets import calibration_subset, mnist_test_subset

    torch.set_num_threads(config.threads)
    out = Path(config.out_dir)
    diffusion_path = out / EMBEDDED_DIFFUSION.name
    diffusion = load("mnist-ddpm", diffusion_path)
    classifier = load("mnist-classifier", out / EMBEDDED_CLASSIFIER.name)
    train, test = load_mnist("train"), load_mnist("test")
    report: dict = {"seed": config.seed}
    start = time.perf_counter()

    grid_index = [int((test.labels == c).nonzero()[0]) for c in range(10)]  # the first test image of each digit
    save_purification_grid(
        diffusion,
        test.images[grid_index],
        _ints(config.grid_t_stars),
        out / "mnist_purification_grid.png",
        seed=config.seed,
    )
    report["grid"] = {"t_stars": list(_ints(config.grid_t_stars)), "test_indices": grid_index}
    print(f"grid written ({time.perf_counter() - start:.0f}s)", flush=True)

    sweep = test.subset(mnist_test_subset(config.sweep_images))
    accuracy = purified_accuracy(
        diffusion,
        classifier,
        sweep.images,
        sweep.labels,
        _ints(config.t_stars),
        seed=config.seed,
        num_steps=config.sweep_steps or None,
    )
    report["purified_clean_accuracy"] = {
        "images": config.sweep_images,
        "reverse_steps": config.sweep_steps or "every index",
        "no_purification": classifier_accuracy(classifier, sweep.images, sweep.labels),
        "by_t_star": {str(k): v for k, v in accuracy.items()},
    }
    print(json.dumps(report["purified_clean_accuracy"]), f"({time.perf_counter() - start:.0f}s)", flush=True)

    # The reference set, and after it (same draw, no overlap) the training images whose FGSM inputs set τ.
    drawn = calibration_subset(len(train), config.calibration_samples + config.tau_images)
    reference = train.subset(drawn[: config.calibration_samples])
    calibration = calibrate(
        diffusion,
        reference.images,
        model_id=weights_id("mnist-ddpm", diffusion_path),
        num_levels=config.num_levels,
        seed=config.seed,
        batch_size=100,
    )
    tau_set = train.subset(drawn[config.calibration_samples :])
    adv_norms = _norms(diffusion, _fgsm(classifier, tau_set, config.fgsm_eps), config)
    calibration = calibration.with_adversarial(adv_norms)
    calibration.save(out / "mnist_calibration.json")
    report["calibration"] = {
        "samples": config.calibration_samples,
        "num_levels": config.num_levels,
        "mean": calibration.mean,
        "std": calibration.std,
        "tau": calibration.tau,
        "tau_from": f"FGSM (eps {config.fgsm_eps:g}) on {config.tau_images} training images",
        "adversarial_mean": calibration.adv_mean,
    }
    print(json.dumps(report["calibration"]), f"({time.perf_counter() - start:.0f}s)", flush=True)

    probe = test.subset(mnist_test_subset(config.norm_images))
    noise = torch.randn(probe.images.shape, generator=torch.Generator().manual_seed(config.seed))
    inputs = {
        "clean": probe.images,
        f"fgsm_eps{config.fgsm_eps:g}": _fgsm(classifier, probe, config.fgsm_eps),
        f"gaussian_std{config.noise_std:g}": (probe.images + config.noise_std * noise).clamp(0.0, 1.0),
    }
    norms = {}
    for name, x in inputs.items():
        e = _norms(diffusion, x, config)
        norms[name] = {
            "mean": float(e.mean()),
            "std": float(e.std()),
            "fraction_above_clean_q95": float((e > calibration.quantiles["0.95"]).float().mean()),
            "classifier_accuracy": classifier_accuracy(classifier, x, probe.labels),
        }
    report["score_norms"] = {"images": config.norm_images, "num_levels": config.num_levels, "by_input": norms}
    print(json.dumps(report["score_norms"]), f"({time.perf_counter() - start:.0f}s)", flush=True)

    report["wall_time_s"] = round(time.perf_counter() - start, 1)
    (out / "mnist_report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _fgsm(classifier: nn.Module, split, eps: float) -> torch.Tensor:
    """FGSM = one PGD iteration of step ε without EOT (the classifier is deterministic)."""
    from ssni.attacks import PlainClassifier, pgd_eot

    return pgd_eot(
        PlainClassifier(classifier),
        split.images,
        split.labels,
        sample_ids=torch.arange(len(split)),
        norm="Linf",
        eps=eps,
        iterations=1,
        eot=1,
        step_size=eps,
    ).x_adv


def _norms(diffusion: nn.Module, x: torch.Tensor, config: MNISTReportConfig) -> torch.Tensor:
    """Score norms e(x) [N] (row numbers as sample ids)."""
    from ssni.score import eps_score_norm

    ids = torch.arange(len(x))
    return eps_score_norm(diffusion, x, config.num_levels, seed=config.seed, sample_ids=ids, chunk_size=500)


def mnist_report_main(argv: list[str] | None = None) -> int:
    """`python -m ssni.zoo.mnist.model_card [--sweep-images N ...]`: write the MNIST model-card numbers and grid."""
    mnist_report(config_from_argv(MNISTReportConfig, "python -m ssni.zoo.mnist.model_card", argv))
    return 0


if __name__ == "__main__":
    sys.exit(mnist_report_main(sys.argv[1:]))
