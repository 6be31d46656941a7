"""DiffusersPurifier: a diffusers UNet2DModel purifying each image from its own timestep."""

from __future__ import annotations

import pytest
import torch

diffusers = pytest.importorskip("diffusers")
from ssni.diffusers import DDIMScheduler, DDPMScheduler, DiffusersPurifier, per_sample_walks  # noqa: E402
from ssni.purify import DDPMPurifier  # noqa: E402


@pytest.fixture(scope="module")
def unet():
    torch.manual_seed(0)
    return diffusers.UNet2DModel(
        sample_size=8,
        in_channels=3,
        out_channels=3,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4,
    ).eval()


@pytest.fixture
def images():
    return torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def test_equals_ddpm_purifier_when_every_timestep_is_visited(unet, images):
    """Same walks, same keyed noise (step word = timestep = DDPMPurifier's index): the same purification."""
    scheduler = DDPMScheduler(clip_sample=False)
    purifier = DiffusersPurifier(unet, scheduler)
    t, ids = torch.tensor([3, 0, 11, 6]), torch.tensor([7, 2, 9, 4])
    got = purifier.purify(images, t, seed=5, sample_ids=ids)
    host = DDPMPurifier(unet, t_star=10, eta=1.0, alphas_cumprod=scheduler.alphas_cumprod)
    want = host.purify(images, t + 1, seed=5, sample_ids=ids)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert purifier.counter.network_calls == 12 and purifier.counter.samples_evaluated == int((t + 1).sum())


@pytest.mark.parametrize("scheduler", [DDPMScheduler(), DDIMScheduler(clip_sample=False)])
def test_result_does_not_depend_on_the_batch(unet, images, scheduler):
    options = {"eta": 1.0} if isinstance(scheduler, DDIMScheduler) else {}
    purifier = DiffusersPurifier(unet, scheduler, num_inference_steps=3, **options)
    t, ids = torch.tensor([40, 7, 999, 1]), torch.tensor([0, 1, 2, 3])
    full = purifier.purify(images, t, seed=2, sample_ids=ids)
    alone = purifier.purify(images[2:3], t[2:3], seed=2, sample_ids=ids[2:3])
    torch.testing.assert_close(alone, full[2:3], atol=1e-5, rtol=1e-5)


def test_equals_the_diffusers_style_loop_over_per_sample_walks(unet, images):
    """The README loop: set_timesteps_per_sample, then `for t in scheduler.timesteps` (waiting rows stay put)."""
    t = torch.tensor([999, 250, 60, 5])
    purifier = DiffusersPurifier(unet, DDIMScheduler(), num_inference_steps=4, eta=0.0)
    got = purifier.purify(images, t, seed=1)
    scheduler = DDIMScheduler()
    scheduler.set_timesteps_per_sample(t, num_inference_steps=4)
    assert torch.equal(scheduler.timesteps, per_sample_walks(t, 4))
    x = scheduler.add_noise(2 * images - 1, None, t, seed=1)
    with torch.no_grad():
        for step_t in scheduler.timesteps:
            x = scheduler.step(unet(x, step_t.clamp(min=0)).sample, step_t, x, seed=1).prev_sample
    torch.testing.assert_close(got, (x + 1) / 2, atol=1e-5, rtol=1e-5)
    assert purifier.counter.samples_evaluated == 4 + 4 + 4 + 4  # every walk has 4 steps (t ≥ 4)
    scheduler.set_timesteps(10)
    assert scheduler.timesteps.shape == (10,) and not scheduler.per_sample


def test_from_pretrained_pipeline_folder(unet, images, tmp_path):
    diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDIMScheduler(clip_sample=False)).save_pretrained(tmp_path)
    purifier = DiffusersPurifier.from_pretrained(tmp_path, num_inference_steps=2, eta=0.5)
    assert isinstance(purifier.scheduler, DDIMScheduler) and purifier.scheduler.config.clip_sample is False
    direct = DiffusersPurifier(unet, diffusers.DDIMScheduler(clip_sample=False), num_inference_steps=2, eta=0.5)
    t = torch.tensor([10, 500, 0, 3])
    torch.testing.assert_close(purifier.purify(images, t, seed=4), direct.purify(images, t, seed=4))
    unet_only = DiffusersPurifier.from_pretrained(tmp_path / "unet")
    assert isinstance(unet_only.scheduler, DDPMScheduler)


def test_ddpm_pipeline_runs_our_scheduler_like_diffusers(unet):
    """A stock diffusers pipeline with our scheduler and a generator gives the stock scheduler's images."""
    ours = diffusers.DDPMPipeline(unet=unet, scheduler=DDPMScheduler())
    stock = diffusers.DDPMPipeline(unet=unet, scheduler=diffusers.DDPMScheduler())
    run = lambda pipe: pipe(batch_size=2, num_inference_steps=5, output_type="np",
                            generator=torch.Generator().manual_seed(0)).images  # fmt: skip
    got, want = run(ours), run(stock)
    assert abs(got - want).max() < 1e-3


def test_errors(unet, images, tmp_path):
    with pytest.raises(ValueError, match="eta is the DDIM"):
        DiffusersPurifier(unet, DDPMScheduler(), eta=0.0)
    with pytest.raises(TypeError, match="DDPMScheduler or DDIMScheduler"):
        DiffusersPurifier(unet, diffusers.EulerDiscreteScheduler())
    with pytest.raises(ValueError, match="num_inference_steps"):
        DiffusersPurifier(unet, num_inference_steps=0)
    with pytest.raises(ValueError, match="not a local diffusers pipeline folder"):
        DiffusersPurifier.from_pretrained(tmp_path)
    purifier = DiffusersPurifier(unet)
    with pytest.raises(ValueError, match="timesteps must be in \\[0, 1000\\)"):
        purifier.purify(images, torch.tensor([1, 2, 3, 1000]))
    with pytest.raises(ValueError, match="images in \\[0, 1\\]"):
        purifier.purify(2 * images - 1, torch.tensor([1, 2, 3, 4]))
