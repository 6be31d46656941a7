"""The discrete purifier (§5): a float64 loop oracle, diffusers, active-only compaction, counts, gradients."""

from __future__ import annotations

import pytest
import torch

from ssni import DDPMPurifier
from ssni.purify.base import noise_word
from ssni.schedules import alphas_cumprod_padded, ddpm_alphas_cumprod, step_sequence
from ssni_kernels.reference import STREAM_NOISE_INJECT, STREAM_REVERSE_STEP, normal_noise


def _oracle(model, x, t, n, eta, seed, sample_id, draw=0, steps=None):
    """§5 for one sample, literally: float64, the spec's step list (or `steps`) walked top-down, repeats skipped."""
    ac = alphas_cumprod_padded(ddpm_alphas_cumprod())  # ᾱ_i = ac[i + 1]
    ids = torch.tensor([sample_id])
    shape = x.shape[1:]
    xs = (2 * x.to(torch.float64) - 1)[None]
    i0 = max(t - 1, 0)
    z = normal_noise(shape, seed, ids, noise_word(0, 0, draw), STREAM_NOISE_INJECT).to(torch.float64)
    cur = ac[i0 + 1].sqrt() * xs + (1 - ac[i0 + 1]).sqrt() * z
    steps = step_sequence(t, n if n is not None else max(t, 1)) if steps is None else steps
    distinct = sorted(set(steps))
    for j in range(len(steps) - 1, -1, -1):
        i, nxt = steps[j], (steps[j - 1] if j > 0 else -1)
        if i == nxt:
            continue
        a, an = ac[i + 1], ac[nxt + 1]
        with torch.no_grad():
            eps = model(cur.float(), torch.tensor([float(i)])).to(torch.float64)
        x0 = (cur - (1 - a).sqrt() * eps) / a.sqrt()
        c1 = eta * ((1 - a / an) * (1 - an) / (1 - a)).clamp_min(0).sqrt()
        c2 = (1 - an - c1**2).clamp_min(0).sqrt()
        p = distinct.index(i)
        z = normal_noise(shape, seed, ids, noise_word(p, 0, draw), STREAM_REVERSE_STEP).to(torch.float64)
        cur = an.sqrt() * x0 + c1 * z + c2 * eps
    return ((cur + 1) / 2)[0]


@pytest.mark.parametrize(("eta", "num_steps"), [(1.0, None), (0.0, None), (1.0, 4), (0.0, 3)])
def test_matches_float64_oracle(tiny_eps, images, eta, num_steps):
    model, x = tiny_eps(), images(batch=4)
    t = torch.tensor([0, 3, 9, 6])
    ids = torch.tensor([11, 5, 7, 2])
    pur = DDPMPurifier(model, t_star=10, num_steps=num_steps, eta=eta)
    out = pur.purify(x, t, seed=123, sample_ids=ids, draw=2)
    for b in range(4):
        ref = _oracle(model, x[b], int(t[b]), num_steps, eta, 123, int(ids[b]), draw=2)
        torch.testing.assert_close(out[b].to(torch.float64), ref, rtol=1e-4, atol=1e-4)


def test_active_only_counts_and_labels(tiny_eps, images):
    model, x = tiny_eps(), images(batch=4)
    t = torch.tensor([0, 3, 9, 6])
    pur = DDPMPurifier(model, t_star=10)
    pur.purify(x, t, seed=0)
    assert pur.samples_evaluated == int(t.clamp_min(1).sum()) == 19
    assert pur.network_calls == 9  # one forward per global index 8..0
    labels = model.labels
    assert [lab.numel() for lab in labels] == [1, 1, 1, 2, 2, 2, 3, 3, 4]  # joins when index reaches t_i − 1
    assert all(lab.dtype == torch.float32 for lab in labels)
    assert [int(lab[0]) for lab in labels] == list(range(8, -1, -1))  # integer indices, top down
    pur.reset()
    assert pur.network_calls == 0 and pur.samples_evaluated == 0
    pur.purify(x, seed=0)  # constant t* = 10: B·t*
    assert pur.samples_evaluated == 40 and pur.network_calls == 10


def test_compaction_equals_each_sample_alone_and_shuffled(tiny_eps, images):
    model, x = tiny_eps(), images(batch=5)
    t = torch.tensor([4, 1, 7, 0, 7])
    ids = torch.arange(100, 105)
    pur = DDPMPurifier(model, t_star=10)
    batch = pur.purify(x, t, seed=9, sample_ids=ids)
    alone = torch.cat([pur.purify(x[i : i + 1], t[i : i + 1], seed=9, sample_ids=ids[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(batch, alone, rtol=1e-5, atol=1e-5)
    perm = torch.tensor([2, 4, 0, 3, 1])
    shuffled = pur.purify(x[perm], t[perm], seed=9, sample_ids=ids[perm])
    torch.testing.assert_close(shuffled, batch[perm], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(pur.purify(x, t, seed=9, sample_ids=ids, draw=1), batch)


def test_noise_inject_matches_diffusers_add_noise(images):
    diffusers = pytest.importorskip("diffusers")
    sched = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=2e-2, beta_schedule="linear")
    import ssni_kernels

    x = images(batch=3) * 2 - 1
    noise = torch.randn_like(x)
    t = torch.tensor([0, 99, 999])
    ours = ssni_kernels.noise_inject(x, t, ddpm_alphas_cumprod(), noise=noise)
    torch.testing.assert_close(ours, sched.add_noise(x, noise, t), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("index", [0, 1, 37, 999])
def test_ancestral_step_matches_diffusers_fixed_small(images, index):
    diffusers = pytest.importorskip("diffusers")
    import ssni_kernels

    sched = diffusers.DDPMScheduler(
        num_train_timesteps=1000,
        beta_start=1e-4,
        beta_end=2e-2,
        beta_schedule="linear",
        variance_type="fixed_small",
        clip_sample=False,
    )
    x, eps = images(batch=2) * 2 - 1, torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    expected = sched.step(eps, index, x, generator=torch.Generator().manual_seed(5)).prev_sample
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    ac = alphas_cumprod_padded(ddpm_alphas_cumprod())
    a, an = ac[index + 1].expand(2), ac[index].expand(2)
    ours = ssni_kernels.reverse_step(x, eps, a, an, eta=1.0, noise=z)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_purify_grad_matches_purify_and_reaches_input(tiny_eps, images):
    model, x = tiny_eps(), images(batch=3)
    t = torch.tensor([5, 2, 8])
    pur = DDPMPurifier(model, t_star=8, num_steps=3)
    fast = pur.purify(x, t, seed=4)
    xg = x.clone().requires_grad_(True)
    out = pur.purify_grad(xg, t, seed=4)
    torch.testing.assert_close(out.detach(), fast, rtol=1e-5, atol=1e-5)
    out.pow(2).sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    plain = DDPMPurifier(model, t_star=8, num_steps=3, grad_checkpoint=False)
    xg2 = x.clone().requires_grad_(True)
    plain.purify_grad(xg2, t, seed=4).pow(2).sum().backward()
    torch.testing.assert_close(xg.grad, xg2.grad, rtol=1e-5, atol=1e-6)


def test_surrogate_step_count(tiny_eps, images):
    model, x = tiny_eps(), images(batch=2)
    pur = DDPMPurifier(model, t_star=20, grad_num_steps=4)
    pur.purify_grad(x, seed=0)
    assert pur.samples_evaluated == 8  # 4 steps per sample
    pur.reset()
    pur.purify_grad(x, seed=0, num_steps=2)
    assert pur.samples_evaluated == 4


def reference_linear_steps(t: int, n: int, b: int) -> list[int]:
    """The authors' SSNI-L step list, literally (robust_eval_model.py): get_diffusion_params(t, n) + b, i.e.
    float32 linspace(0, t, n + 1), ceil, −1, clamped at 0, first entry dropped (n = 1: [max(t − 1, 0)]), plus b."""
    if n == 1:
        return [max(t - 1, 0) + b]
    steps = (torch.linspace(0, t, n + 1).ceil().to(torch.int64) - 1).clamp_min(0)[1:] + b
    return steps.tolist()


def reference_working_indices(steps: list[int]) -> list[int]:
    """The indices the reference's denoising_process evaluates with an effect, top down: pairs (seq[j], seq[j−1])
    (−1 after the first entry) walked in reverse, a repeated index being a no-op."""
    nxt = [-1, *steps[:-1]]
    return [i for i, j in zip(reversed(steps), reversed(nxt)) if i != j]


@pytest.mark.parametrize(("t", "n", "b"), [(4, 10, 2), (50, 100, 5), (50, 20, 5), (0, 10, 3), (7, 1, 2)])
def test_index_shift_is_the_reference_linear_walk(tiny_eps, images, t, n, b):
    """The SSNI-L quirk: the reference's step list for t shifted by b, t (or n) steps, then the jump to x̂0."""
    model, x = tiny_eps(), images(batch=1)
    pur = DDPMPurifier(model, t_star=60, num_steps=n)
    shifted = pur.with_index_shift(b)
    out = shifted.purify(x, torch.tensor([t]), seed=2, sample_ids=torch.tensor([9]))
    steps = reference_linear_steps(t, n, b)
    working = reference_working_indices(steps)
    assert [int(lab[0]) for lab in model.labels] == working
    assert pur.samples_evaluated == len(working) == min(max(t, 1), n)  # t (or n) steps, not t + b: same counter
    assert working[0] == max(t - 1, 0) + b and working[-1] == max(-(-t // n) - 1, 0) + b
    ref = _oracle(model, x[0], t, n, 1.0, 2, 9, steps=steps)
    torch.testing.assert_close(out[0].to(torch.float64), ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="index shift"):
        DDPMPurifier(model, t_star=999).with_index_shift(2).purify(x, seed=0)


def test_extra_steps_visit_every_index_without_gradient_only(tiny_eps, images):
    """SSNI-N's n + b (the authors' code): with n = t* = 10 and t = 12 the walk is not strided; the surrogate
    (purify_grad) keeps its own step count."""
    model, x = tiny_eps(), images(batch=1)
    pur = DDPMPurifier(model, t_star=10, num_steps=10, grad_num_steps=3).with_extra_steps(2)
    pur.purify(x, torch.tensor([12]), seed=0)
    assert [int(lab[0]) for lab in model.labels] == list(range(11, -1, -1))
    model.labels.clear()
    pur.purify_grad(x, torch.tensor([12]), seed=0)
    assert len(model.labels) == 3
    model.labels.clear()
    pur.purify(x, torch.tensor([12]), seed=0, surrogate=True)  # BPDA's attack-schedule forward: 3 + 2 steps
    assert len(model.labels) == 5


def test_bad_inputs(tiny_eps, images):
    pur, x = DDPMPurifier(tiny_eps(), t_star=10), images(batch=2)
    with pytest.raises(TypeError, match="int64"):
        pur.purify(x, torch.tensor([1.0, 2.0]), seed=0)
    with pytest.raises(ValueError, match="shape"):
        pur.purify(x, torch.tensor([1, 2, 3]), seed=0)
    with pytest.raises(ValueError, match=r"\[0, 1000\]"):
        pur.purify(x, torch.tensor([1, 1001]), seed=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pur.purify(x + 1, seed=0)
    with pytest.raises(ValueError, match="seed"):
        pur.purify(x, seed=2**64)
    with pytest.raises(ValueError, match="draw"):
        pur.purify(x, seed=0, draw=-1)
    with pytest.raises(ValueError, match="t_star"):
        DDPMPurifier(tiny_eps(), t_star=0)
    with pytest.raises(ValueError, match="eta"):
        DDPMPurifier(tiny_eps(), eta=2.0)
    with pytest.raises(ValueError, match="num_steps"):
        DDPMPurifier(tiny_eps(), num_steps=0)
    with pytest.raises(TypeError):
        pur.purify(x, seed=0, unknown_option=1)
