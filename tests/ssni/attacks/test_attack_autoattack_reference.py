"""APGD, APGD-T, FAB-T, Square and AutoAttack "standard" against an independent implementation: torchattacks.

torchattacks (a test-only dependency) follows fra31/auto-attack. With the same random numbers our attacks must
take the same steps: APGD's random starts are replaced by AutoAttack's torch.rand draws, and torchattacks' Square
reads our per-sample Philox draws. Where the two differ only by floating-point rounding (the L2 projection,
targeted DLR's denominator), near-equal losses can later take different branches, so there the test compares the
iterates up to the first step-size review and the outcome (which samples are broken).
"""

from __future__ import annotations

import importlib
import math

import pytest
import torch
from torch import nn

from ssni.attacks import PlainClassifier, apgd, apgd_targeted, autoattack_standard, fab_targeted, square
from ssni.attacks.defended import STREAM_SQUARE, derive_seed
from ssni.attacks.fab import hyperplane_step
from ssni_kernels.reference import normal_noise

torchattacks = pytest.importorskip("torchattacks")
ta_fab = importlib.import_module("torchattacks.attacks.fab")
ta_square = importlib.import_module("torchattacks.attacks.square")
apgd_module = importlib.import_module("ssni.attacks.apgd")


class InputRecorder(nn.Module):
    """Wraps a classifier; records every input that requires grad (the iterates an attack differentiates at)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.iterates: list[torch.Tensor] = []

    def forward(self, x):
        if x.requires_grad:
            self.iterates.append(x.detach().clone())
        return self.net(x)


class NearestCentroid(nn.Module):
    """A deterministic MNIST classifier built in milliseconds: logits_k = −5·‖x − m_k‖₂ with m_k the mean training
    image of class k (80% test accuracy); non-linear and differentiable, so every AutoAttack component has work."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        super().__init__()
        means = torch.stack([images[labels == k].mean(0).flatten() for k in range(10)])
        self.means = nn.Parameter(means, requires_grad=False)  # a parameter, so torchattacks finds the device

    def forward(self, x):
        return -5.0 * (x.flatten(1)[:, None, :] - self.means[None]).norm(dim=2)


@pytest.fixture(scope="module")
def mnist_centroids():
    """(NearestCentroid classifier, x [32, 1, 28, 28], y [32]): the first 32 correctly classified MNIST test images."""
    from ssni.data.mnist import load_mnist

    train, test = load_mnist("train"), load_mnist("test")
    net = NearestCentroid(train.images[:5000], train.labels[:5000]).eval()
    x, y = test.images[:100], test.labels[:100]
    correct = net(x).argmax(1) == y
    return net, x[correct][:32], y[correct][:32]


def _autoattack_start(x, norm, eps, *, seed, sample_ids, restart):
    """AutoAttack's (and torchattacks') APGD start, drawn from the global torch RNG in the same order."""
    if norm == "Linf":
        t = 2 * torch.rand(x.shape) - 1
        return (x + eps * t / t.flatten(1).abs().amax(1).view(-1, 1, 1, 1)).clamp(0.0, 1.0)
    t = torch.randn(x.shape)
    return (x + eps * t / ((t**2).sum(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-12)).clamp(0.0, 1.0)


def _toy(mlp_net, n=32):
    x = torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    return x, mlp_net(x).argmax(1), torch.arange(n)


def _broken(net, x_adv, y):
    return net(x_adv).argmax(1) != y


@pytest.mark.parametrize("loss", ["ce", "dlr"])
def test_apgd_takes_autoattacks_steps_exactly(mlp_net, monkeypatch, loss):
    """Linf, 100 iterations, every checkpoint rule: bit-identical iterates (F12: first checkpoint without the
    stalled rule, t ≤ k·ρ, the first window compared with AutoAttack's zero entry)."""
    x, y, ids = _toy(mlp_net)
    monkeypatch.setattr(apgd_module, "random_start", _autoattack_start)
    ours_net, their_net = InputRecorder(mlp_net), InputRecorder(mlp_net)
    torch.manual_seed(7)
    ours = apgd(PlainClassifier(ours_net), x, y, sample_ids=ids, loss=loss, eps=0.05, eot=1, check_success=True)
    theirs = torchattacks.APGD(their_net, norm="Linf", eps=0.05, steps=100, seed=7, loss=loss)(x, y)

    assert len(ours_net.iterates) == len(their_net.iterates) == 101
    assert torch.equal(torch.stack(ours_net.iterates), torch.stack(their_net.iterates))
    broken = _broken(mlp_net, theirs, y)
    assert torch.equal(ours.success, broken) and 0 < broken.sum() < len(y)
    assert torch.equal(ours.x_adv[broken], theirs[broken])


class _ScriptedLoss(nn.Module):
    """A classifier whose CE loss follows a script: at the k-th differentiated call (the start point, then one per
    iterate) the logit of the true class gets 12 − levels[k]/4 + ⟨d_k, x − x_clean⟩ added, with d_k a fresh random
    direction (‖d_k‖₁ = 1). Consecutive levels differ by 1, a factor e^{±1/4} in the loss that neither ⟨d_k, ·⟩
    (at most ε) nor the tenfold-damped network can undo, while d_k turns the gradient every iteration, so the
    iterates keep moving and every step size shows. The true class always wins (no sample is broken)."""

    def __init__(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, levels: list[int]):
        super().__init__()
        self.net, self.x, self.y, self.levels = net, x, y, levels
        directions = torch.randn(len(levels), x[0].numel(), generator=torch.Generator().manual_seed(3))
        self.directions = directions / directions.abs().sum(dim=1, keepdim=True)
        self.iterates: list[torch.Tensor] = []

    def forward(self, x):
        boost = torch.full((x.shape[0],), 12.0)
        if x.requires_grad:
            k = len(self.iterates)
            boost = boost - self.levels[k] / 4 + (x - self.x).flatten(1) @ self.directions[k]
            self.iterates.append(x.detach().clone())
        return 0.1 * self.net(x) + torch.nn.functional.one_hot(self.y, 10) * boost[:, None]


def _step_size_review_script() -> list[int]:
    """Loss levels for 100 iterations, built so that each of AutoAttack's three step-size rules decides a review
    (checkpoints after iterations 22, 41, 57):
    - window 1: the first step drops far below the start and the loss never regains it; 16 of the 21 later
      comparisons go up. AutoAttack counts the first step as an increase (it compares with a zero entry): 17 >
      0.75·22, no oscillation; and no "stalled" rule at the first review, so the step is kept. (Comparing the first
      step with the start, or the stalled rule, would halve it.)
    - window 2: 19 increases past the start's level: kept.
    - window 3: exactly 12 increases in 16 iterations, then a new best: 12 ≤ 0.75·16 halves the step (< would not).
    """
    up, down = +1, -1
    window_1 = [up if i not in (5, 9, 13, 17, 21) else down for i in range(1, 22)]
    steps = window_1 + [up] * 19 + [up] * 12 + [down] * 4 + [down, up] * 22
    levels = [20, 0]  # the start, then the first iterate
    for step in steps[: 100 - 1]:
        levels.append(levels[-1] + step)
    return levels


@pytest.mark.parametrize(("norm", "eps"), [("Linf", 0.05), ("L2", 0.3)])
def test_apgd_step_size_reviews_are_autoattacks(mlp_net, monkeypatch, norm, eps):
    """F12: the first review without the stalled rule, t ≤ k·ρ, the first window compared with AutoAttack's zero
    entry; each of them decides one review of this scripted run. Linf: the iterates equal torchattacks' exactly;
    L2: up to the rounding of the projection."""
    x, y, ids = _toy(mlp_net, n=8)
    monkeypatch.setattr(apgd_module, "random_start", _autoattack_start)
    levels = _step_size_review_script()
    ours_net, their_net = _ScriptedLoss(mlp_net, x, y, levels), _ScriptedLoss(mlp_net, x, y, levels)
    torch.manual_seed(7)
    ours = apgd(PlainClassifier(ours_net), x, y, sample_ids=ids, norm=norm, eps=eps, eot=1, check_success=True)
    torchattacks.APGD(their_net, norm=norm, eps=eps, steps=100, seed=7)(x, y)
    assert not ours.success.any()
    assert len(ours_net.iterates) == len(their_net.iterates) == 101
    ours_path, their_path = torch.stack(ours_net.iterates), torch.stack(their_net.iterates)
    torch.testing.assert_close(ours_path, their_path, rtol=0, atol=0 if norm == "Linf" else 1e-5)


def test_apgd_l2_matches_autoattack_up_to_rounding(mlp_net, monkeypatch):
    x, y, ids = _toy(mlp_net)
    monkeypatch.setattr(apgd_module, "random_start", _autoattack_start)
    ours_net, their_net = InputRecorder(mlp_net), InputRecorder(mlp_net)
    torch.manual_seed(7)
    ours = apgd(PlainClassifier(ours_net), x, y, sample_ids=ids, norm="L2", eps=0.3, eot=1, check_success=True)
    theirs = torchattacks.APGD(their_net, norm="L2", eps=0.3, steps=100, seed=7)(x, y)
    first_review = 22
    ours_path, their_path = torch.stack(ours_net.iterates), torch.stack(their_net.iterates)
    torch.testing.assert_close(ours_path[: first_review + 1], their_path[: first_review + 1], rtol=0, atol=1e-6)
    assert torch.equal(ours.success, _broken(mlp_net, theirs, y))


def _torchattacks_targeted_dlr(logits, y, target):
    """torchattacks' rounding of targeted DLR's denominator: z_π1 − z_π3/2 − z_π4/2 (fra31: z_π1 − (z_π3 + z_π4)/2)."""
    z = logits.sort(dim=1).values
    rows = torch.arange(len(y))
    return -(logits[rows, y] - logits[rows, target]) / (z[:, -1] - 0.5 * z[:, -3] - 0.5 * z[:, -4] + 1e-12)


def test_apgd_targeted_takes_autoattacks_steps(mlp_net, monkeypatch):
    """3 target classes: same targets, same runs on the same still-robust samples, same iterates."""
    x, y, ids = _toy(mlp_net)
    monkeypatch.setattr(apgd_module, "random_start", _autoattack_start)
    torch.manual_seed(7)
    ours = apgd_targeted(PlainClassifier(mlp_net), x, y, sample_ids=ids, eps=0.05, target_classes=3)
    theirs = torchattacks.APGDT(mlp_net, eps=0.05, steps=100, seed=7, n_classes=4)(x, y)
    broken = _broken(mlp_net, theirs, y)
    assert torch.equal(ours.success, broken) and 0 < broken.sum() < len(y)

    monkeypatch.setattr(apgd_module, "dlr_targeted", _torchattacks_targeted_dlr)
    ours_net, their_net = InputRecorder(mlp_net), InputRecorder(mlp_net)
    torch.manual_seed(7)
    apgd_targeted(PlainClassifier(ours_net), x, y, sample_ids=ids, eps=0.05, target_classes=3)
    torchattacks.APGDT(their_net, eps=0.05, steps=100, seed=7, n_classes=4)(x, y)
    assert len(ours_net.iterates) == len(their_net.iterates) > 101
    assert torch.equal(torch.cat(ours_net.iterates), torch.cat(their_net.iterates))


@pytest.mark.parametrize(("norm", "eps"), [("Linf", 0.05), ("L2", 0.3)])
def test_fab_targeted_matches_autoattack(mlp_net, norm, eps):
    x, y, ids = _toy(mlp_net)
    ours = fab_targeted(PlainClassifier(mlp_net), x, y, sample_ids=ids, norm=norm, eps=eps, target_classes=3)
    theirs = torchattacks.FAB(mlp_net, norm=norm, eps=eps, steps=100, multi_targeted=True, n_classes=4)(x, y)
    broken = _broken(mlp_net, theirs, y)
    assert torch.equal(ours.success, broken) and 0 < broken.sum() < len(y)
    torch.testing.assert_close(ours.x_adv, theirs, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("norm", "projection"), [("Linf", "projection_linf"), ("L2", "projection_l2")])
def test_hyperplane_step_equals_fabs_projection(norm, projection):
    g = torch.Generator().manual_seed(0)
    points = torch.rand(64, 30, generator=g, dtype=torch.float64)
    w = torch.randn(64, 30, generator=g, dtype=torch.float64)
    w[:, :4] = 0.0  # coordinates that cannot help stay put
    # offsets from on-the-plane to far beyond the box, so some planes are out of reach
    b = (w * points).sum(1) + torch.randn(64, generator=g, dtype=torch.float64) * torch.linspace(0, 8, 64)
    d = hyperplane_step(points, w, b, norm)
    torch.testing.assert_close(d, getattr(ta_fab, projection)(points, w.clone(), b.clone()), rtol=0, atol=1e-12)
    assert ((points + d) >= 0).all() and ((points + d) <= 1).all()
    reached = ((w * (points + d)).sum(1) - b).abs() < 1e-9
    assert 10 < reached.sum() < 64


class _FeedRand:
    """Stands in for the `torch` module inside torchattacks' Square: `rand` returns the queued numbers."""

    def __init__(self):
        self.queue: list[float] = []

    def rand(self, shape):
        n = math.prod(shape)
        values, self.queue = self.queue[:n], self.queue[n:]
        return torch.tensor(values).view(*shape)

    def __getattr__(self, name):
        return getattr(torch, name)


def _square_numbers(norm, channels, sample_id, seed, queries):
    """Our Square's random numbers for one sample, in the order torchattacks asks for them: uniforms for window
    positions, values whose 2u − 1 has our sign, and u > 0.5 exactly where we transpose η."""
    square_seed = derive_seed(seed, STREAM_SQUARE, 0)
    c = channels

    def draws(count, first, number):
        steps = torch.arange(first, first + number)
        return normal_noise((count,), square_seed, torch.full((number,), sample_id), steps, 0)

    def uniform(z):
        return 0.5 * torch.erfc(-z / math.sqrt(2.0))

    def signs(z):
        return torch.where(z >= 0, 0.75, 0.25)

    def transposes(z):
        return torch.where(z > 0, 0.75, 0.25)

    if norm == "Linf":
        start = signs(draws(c * 28, 0, 1))  # the stripes of a 28-pixel-wide image
        z = draws(c + 2, 1, queries)
        per_query = torch.cat([uniform(z[:, c:]), signs(z[:, :c])], dim=1)
    else:
        z0 = draws(25 * (c + 1), 0, 1).view(25, c + 1)  # the 5×5 grid of η windows of the start point
        start = torch.cat([transposes(z0[:, c:]), signs(z0[:, :c])], dim=1)
        z = draws(c + 5, 1, queries)
        per_query = torch.cat([uniform(z[:, c : c + 4]), transposes(z[:, c + 4 :]), signs(z[:, :c])], dim=1)
    return start.flatten().tolist() + per_query.flatten().tolist()


@pytest.mark.parametrize(("norm", "eps"), [("Linf", 0.1), ("L2", 1.5)])
def test_square_takes_autoattacks_steps_with_our_random_numbers(mnist_centroids, monkeypatch, norm, eps):
    """torchattacks' Square, one sample at a time, reading our draws, ends at our points (200 queries)."""
    net, x, y = mnist_centroids
    x, y, ids, queries = x[:6], y[:6], torch.arange(100, 106), 200
    ours = square(PlainClassifier(net), x, y, sample_ids=ids, norm=norm, eps=eps, queries=queries, seed=5)
    feed = _FeedRand()
    monkeypatch.setattr(ta_square, "torch", feed)
    attack = torchattacks.Square(net, norm=norm, eps=eps, n_queries=queries, p_init=0.8, resc_schedule=False)
    for b in range(len(y)):
        feed.queue = _square_numbers(norm, x.shape[1], ids[b].item(), 5, queries)
        attack.init_hyperparam(x[b : b + 1])
        _, theirs = attack.attack_single_run(x[b : b + 1], y[b : b + 1])
        torch.testing.assert_close(ours.x_adv[b : b + 1], theirs, rtol=0, atol=1e-6)
        assert ours.success[b] == _broken(net, theirs, y[b : b + 1])
    assert 0 < ours.success.sum() < len(y)


def _torchattacks_standard(net, norm, eps, iterations, target_classes, queries):
    """fra31's "standard" configuration in torchattacks' attacks (torchattacks' own AutoAttack uses 10 steps)."""
    options = dict(norm=norm, eps=eps, seed=0)
    return torchattacks.MultiAttack(
        [
            torchattacks.APGD(net, steps=iterations, loss="ce", **options),
            torchattacks.APGDT(net, steps=iterations, n_classes=target_classes + 1, **options),
            torchattacks.FAB(net, steps=iterations, multi_targeted=True, n_classes=target_classes + 1, **options),
            torchattacks.Square(net, n_queries=queries, p_init=0.8, resc_schedule=False, **options),
        ]
    )


def _robust_counts(net, x, y, norm, eps, iterations, target_classes, queries):
    ours = autoattack_standard(
        PlainClassifier(net),
        x,
        y,
        sample_ids=torch.arange(len(y)),
        norm=norm,
        eps=eps,
        iterations=iterations,
        target_classes=target_classes,
        square_queries=queries,
    )
    theirs = _torchattacks_standard(net, norm, eps, iterations, target_classes, queries)(x, y)
    return (~ours.success).sum().item(), (~_broken(net, theirs, y)).sum().item()


def test_autoattack_standard_robust_accuracy_matches_autoattack(mnist_centroids):
    """Linf, 16 images, 3 target classes, 300 Square queries: the same robust accuracy within one image."""
    net, x, y = mnist_centroids
    ours, theirs = _robust_counts(net, x[:16], y[:16], "Linf", 0.1, iterations=100, target_classes=3, queries=300)
    assert abs(ours - theirs) <= 1 and 0 < ours < 16


@pytest.mark.slow  # AutoAttack's full budget (100 iterations, 9 targets, 5,000 queries), both sides: ~1 CPU-min a norm
@pytest.mark.parametrize(("norm", "eps"), [("Linf", 0.1), ("L2", 1.5)])
def test_full_autoattack_standard_matches_autoattack(mnist_centroids, norm, eps):
    net, x, y = mnist_centroids
    ours, theirs = _robust_counts(net, x, y, norm, eps, iterations=100, target_classes=9, queries=5000)
    assert abs(ours - theirs) <= 1 and 0 < ours < len(y)
