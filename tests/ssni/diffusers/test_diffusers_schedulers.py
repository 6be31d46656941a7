"""ssni.diffusers schedulers against diffusers' own: scalar steps, per-sample steps, noise semantics, configs."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from diffusers_oracle import model_outputs, oracle_step

import ssni_kernels
from ssni_kernels.reference import STREAM_NOISE_INJECT, STREAM_REVERSE_STEP, normal_noise

diffusers = pytest.importorskip("diffusers")
from ssni.diffusers import DDIMScheduler, DDPMScheduler  # noqa: E402

ORACLE_ATOL = 2e-5  # ours (float32) vs diffusers in float64 on the same ᾱ values
STOCK_ATOL = 1e-3  # ours vs diffusers in float32, whose own rounding reaches ~2e-4 near t = 0 (1 − ᾱ ≈ 1e-4)
SPACINGS = [("leading", 1), ("trailing", 0), ("linspace", 0)]


def _pair(cls, stock_cls, num_inference_steps=None, **config):
    ours, stock = cls(**config), stock_cls(**config)
    if num_inference_steps is not None:
        ours.set_timesteps(num_inference_steps)
        stock.set_timesteps(num_inference_steps)
    return ours, stock


def _check_scalar_step(ours, stock, t, model_output, sample, noise, monkeypatch, **kwargs):
    """ours == diffusers (float64 oracle, and float32 loosely) at one scalar timestep; returns the max |Δ|s."""
    prev64, x0_64 = oracle_step(stock, model_output, t, sample, noise, monkeypatch, **kwargs)
    got = ours.step(model_output, t, sample, variance_noise=noise, **kwargs)
    torch.testing.assert_close(got.prev_sample.double(), prev64, atol=ORACLE_ATOL, rtol=1e-5)
    torch.testing.assert_close(got.pred_original_sample.double(), x0_64, atol=ORACLE_ATOL, rtol=1e-5)
    return float((got.prev_sample.double() - prev64).abs().max())


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_small_log", "fixed_large", "learned", "learned_range"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_ddpm_scalar_step_equals_diffusers(variance_type, prediction_type, monkeypatch):
    learned = variance_type if variance_type.startswith("learned") else None
    sample, model_output, noise = model_outputs(3, 2, 4, variance=learned)
    for clip_sample in (True, False):
        for spacing, offset in [(None, 0), *SPACINGS]:
            config = {"variance_type": variance_type, "prediction_type": prediction_type, "clip_sample": clip_sample}
            if spacing is None:
                ours, stock = _pair(DDPMScheduler, diffusers.DDPMScheduler, **config)
                timesteps = [999, 500, 1, 0]
            else:
                ours, stock = _pair(DDPMScheduler, diffusers.DDPMScheduler, 10, timestep_spacing=spacing,
                                    steps_offset=offset, **config)  # fmt: skip
                timesteps = [int(stock.timesteps[i]) for i in (0, 5, -1)]
            for t in timesteps:
                _check_scalar_step(ours, stock, t, model_output, sample, noise, monkeypatch)


def test_ddpm_thresholding_equals_diffusers(monkeypatch):
    sample, model_output, noise = model_outputs(3, 2, 4, seed=1)
    config = {"thresholding": True, "dynamic_thresholding_ratio": 0.9, "sample_max_value": 1.5}
    for prediction_type in ("epsilon", "sample"):
        ours, stock = _pair(DDPMScheduler, diffusers.DDPMScheduler, prediction_type=prediction_type, **config)
        for t in (900, 20):
            _check_scalar_step(ours, stock, t, 3 * model_output, sample, noise, monkeypatch)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("spacing, offset", SPACINGS)
def test_ddim_scalar_step_equals_diffusers(eta, spacing, offset, monkeypatch):
    sample, model_output, noise = model_outputs(3, 2, 4, seed=2)
    for prediction_type in ("epsilon", "sample", "v_prediction"):
        for clip_sample in (True, False):
            for set_alpha_to_one in (True, False):
                ours, stock = _pair(DDIMScheduler, diffusers.DDIMScheduler, 10, timestep_spacing=spacing,
                                    steps_offset=offset, prediction_type=prediction_type, clip_sample=clip_sample,
                                    set_alpha_to_one=set_alpha_to_one)  # fmt: skip
                for t in [int(stock.timesteps[i]) for i in (0, 5, -1)]:
                    for use_clipped in (False, True):
                        _check_scalar_step(ours, stock, t, model_output, sample, noise, monkeypatch, eta=eta,
                                           use_clipped_model_output=use_clipped)  # fmt: skip


def test_ddim_thresholding_equals_diffusers(monkeypatch):
    sample, model_output, noise = model_outputs(3, 2, 4, seed=3)
    ours, stock = _pair(DDIMScheduler, diffusers.DDIMScheduler, 20, thresholding=True, dynamic_thresholding_ratio=0.9,
                        sample_max_value=2.0)  # fmt: skip
    for t in (951, 1):
        _check_scalar_step(ours, stock, t, 3 * model_output, sample, noise, monkeypatch, eta=1.0)


@pytest.mark.parametrize("cls, stock_cls", [(DDPMScheduler, diffusers.DDPMScheduler),
                                            (DDIMScheduler, diffusers.DDIMScheduler)])  # fmt: skip
def test_scalar_step_with_generator_equals_diffusers_float32(cls, stock_cls):
    """diffusers' generator= semantics: the same draws, so the stock float32 step agrees to its own rounding."""
    sample, model_output, _ = model_outputs(4, 3, 8, seed=4)
    ours, stock = _pair(cls, stock_cls, 50)
    kwargs = {"eta": 1.0} if cls is DDIMScheduler else {}
    for t in stock.timesteps[[0, 25, -1]]:
        got = ours.step(model_output, t, sample, generator=torch.Generator().manual_seed(7), **kwargs)
        want = stock.step(model_output, t, sample, generator=torch.Generator().manual_seed(7), **kwargs)
        torch.testing.assert_close(got.prev_sample, want.prev_sample, atol=STOCK_ATOL, rtol=0)
        torch.testing.assert_close(got.pred_original_sample, want.pred_original_sample, atol=1e-5, rtol=1e-5)
    t = int(stock.timesteps[-1])
    tuple_out = ours.step(
        model_output, t, sample, generator=torch.Generator().manual_seed(7), return_dict=False, **kwargs
    )
    assert isinstance(tuple_out, tuple) and len(tuple_out) == 2


def test_ddpm_no_generator_draws_at_timestep_zero():
    """diffusers draws noise only for t > 0: a generator is left untouched by the last step (and by ours)."""
    sample, model_output, _ = model_outputs(2, 1, 4)
    g = torch.Generator().manual_seed(3)
    DDPMScheduler().step(model_output, 0, sample, generator=g)
    assert torch.equal(torch.randn(4, generator=g), torch.randn(4, generator=torch.Generator().manual_seed(3)))


# --------------------------------------------------------------------------------------------- per-sample timesteps
def _per_sample_vs_loop(ours, timesteps, model_output, sample, noise, **kwargs):
    batched = ours.step(model_output, timesteps, sample, variance_noise=noise, **kwargs)
    for b, t in enumerate(timesteps.tolist()):
        rows = slice(b, b + 1)
        one = ours.step(model_output[rows], t, sample[rows], variance_noise=noise[rows], **kwargs)
        torch.testing.assert_close(batched.prev_sample[rows], one.prev_sample, atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(batched.pred_original_sample[rows], one.pred_original_sample, atol=1e-6, rtol=1e-6)
    return batched


@pytest.mark.parametrize("variance_type", ["fixed_small", "fixed_large", "learned_range"])
def test_ddpm_per_sample_step_equals_a_loop_of_scalar_steps(variance_type, monkeypatch):
    learned = variance_type if variance_type.startswith("learned") else None
    sample, model_output, noise = model_outputs(5, 2, 4, variance=learned, seed=5)
    ours, stock = _pair(DDPMScheduler, diffusers.DDPMScheduler, 20, variance_type=variance_type)
    timesteps = stock.timesteps[[0, 3, 9, 18, 19]]
    batched = _per_sample_vs_loop(ours, timesteps, model_output, sample, noise)
    for b, t in enumerate(timesteps.tolist()):  # and each row equals diffusers' own scalar step
        prev64, _ = oracle_step(stock, model_output[b : b + 1], t, sample[b : b + 1], noise[b : b + 1], monkeypatch)
        torch.testing.assert_close(batched.prev_sample[b : b + 1].double(), prev64, atol=ORACLE_ATOL, rtol=1e-5)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_ddim_per_sample_step_equals_a_loop_of_scalar_steps(eta, monkeypatch):
    sample, model_output, noise = model_outputs(4, 2, 4, seed=6)
    ours, stock = _pair(DDIMScheduler, diffusers.DDIMScheduler, 10, clip_sample=True)
    timesteps = stock.timesteps[[0, 4, 8, 9]]
    batched = _per_sample_vs_loop(ours, timesteps, model_output, sample, noise, eta=eta)
    for b, t in enumerate(timesteps.tolist()):
        rows = slice(b, b + 1)
        prev64, _ = oracle_step(stock, model_output[rows], t, sample[rows], noise[rows], monkeypatch, eta=eta)
        torch.testing.assert_close(batched.prev_sample[rows].double(), prev64, atol=ORACLE_ATOL, rtol=1e-5)


def test_per_sample_step_with_a_generator_per_sample_equals_diffusers_loop():
    """A list of B generators: row b draws from generator b, as diffusers' scalar step on that row would."""
    sample, model_output, _ = model_outputs(4, 2, 4, seed=7)
    ours, stock = _pair(DDPMScheduler, diffusers.DDPMScheduler, 10)
    timesteps = stock.timesteps[[0, 2, 5, 9]]
    batched = ours.step(model_output, timesteps, sample, generator=[torch.Generator().manual_seed(b) for b in range(4)])
    for b, t in enumerate(timesteps.tolist()):
        rows = slice(b, b + 1)
        want = stock.step(model_output[rows], t, sample[rows], generator=torch.Generator().manual_seed(b))
        torch.testing.assert_close(batched.prev_sample[rows], want.prev_sample, atol=STOCK_ATOL, rtol=0)


def test_waiting_samples_are_returned_unchanged():
    sample, model_output, _ = model_outputs(3, 2, 4)
    out = DDPMScheduler().step(model_output, torch.tensor([-1, 10, -1]), sample, seed=1)
    assert torch.equal(out.prev_sample[[0, 2]], sample[[0, 2]])
    assert not torch.equal(out.prev_sample[1], sample[1])


def test_prev_timestep_overrides_the_schedule(monkeypatch):
    sample, model_output, noise = model_outputs(2, 2, 4, seed=8)
    ours, stock = _pair(DDIMScheduler, diffusers.DDIMScheduler, 4)  # stock steps 751 → 501
    stock5 = diffusers.DDIMScheduler()
    stock5.set_timesteps(5)  # ... and with 5 steps 800 → 600
    got = ours.step(model_output, torch.tensor([751, 800]), sample, eta=1.0, variance_noise=noise,
                    prev_timestep=torch.tensor([501, 600]))  # fmt: skip
    want0, _ = oracle_step(stock, model_output[:1], 751, sample[:1], noise[:1], monkeypatch, eta=1.0)
    want1, _ = oracle_step(stock5, model_output[1:], 800, sample[1:], noise[1:], monkeypatch, eta=1.0)
    torch.testing.assert_close(got.prev_sample.double(), torch.cat([want0, want1]), atol=ORACLE_ATOL, rtol=1e-5)


def test_previous_timestep_per_sample():
    ddpm = DDPMScheduler()
    assert ddpm.previous_timestep(5) == 4 and ddpm.previous_timestep(0) == -1
    ddpm.set_timesteps(4)  # 750, 500, 250, 0
    assert ddpm.previous_timestep(torch.tensor([750, 0, -1, 250])).tolist() == [500, -1, -1, 0]
    ddim = DDIMScheduler()
    ddim.set_timesteps(10)
    assert ddim.previous_timestep(torch.tensor(900)).item() == 800
    assert ddim.previous_timestep(torch.tensor([900, 50, 0])).tolist() == [800, -1, -1]


# --------------------------------------------------------------------------------------------- keyed noise
def test_keyed_noise_is_the_philox_stream_of_the_current_timestep():
    sample, model_output, _ = model_outputs(3, 2, 4)
    t, ids = torch.tensor([900, 31, 5]), torch.tensor([11, 4, 70])
    ours = DDPMScheduler(variance_type="fixed_small")
    keyed = ours.step(model_output, t, sample, seed=9, sample_ids=ids).prev_sample
    z = normal_noise(sample.shape[1:], 9, ids, t, STREAM_REVERSE_STEP)
    given = ours.step(model_output, t, sample, variance_noise=z).prev_sample
    torch.testing.assert_close(keyed, given, atol=1e-6, rtol=1e-6)
    large = DDPMScheduler(variance_type="fixed_large")  # materialised noise: the same z
    keyed = large.step(model_output, t, sample, seed=9, sample_ids=ids).prev_sample
    torch.testing.assert_close(keyed, large.step(model_output, t, sample, variance_noise=z).prev_sample)
    other_seed = ours.step(model_output, t, sample, seed=10, sample_ids=ids).prev_sample
    assert (other_seed - given).abs().amax(dim=(1, 2, 3)).min() > 1e-3


@pytest.mark.parametrize("cls", [DDPMScheduler, DDIMScheduler])
def test_keyed_noise_is_batch_invariant(cls):
    sample, model_output, _ = model_outputs(4, 2, 4, seed=9)
    ours = cls()
    ours.set_timesteps(10)
    kwargs = {"eta": 1.0} if cls is DDIMScheduler else {}
    t, ids = ours.timesteps[[0, 3, 3, 8]], torch.tensor([5, 6, 7, 8])
    full = ours.step(model_output, t, sample, seed=3, sample_ids=ids, **kwargs).prev_sample
    order = torch.tensor([2, 0])
    part = ours.step(model_output[order], t[order], sample[order], seed=3, sample_ids=ids[order], **kwargs)
    torch.testing.assert_close(part.prev_sample, full[order], atol=1e-6, rtol=1e-6)


def test_add_noise_per_sample_equals_diffusers_and_keyed_noise_is_noise_inject():
    x, _, noise = model_outputs(4, 3, 4, seed=10)
    t = torch.tensor([0, 17, 500, 999])
    ours, stock = (
        DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
        diffusers.DDPMScheduler(beta_schedule="squaredcos_cap_v2"),
    )
    torch.testing.assert_close(ours.add_noise(x, noise, t), stock.add_noise(x, noise, t), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ours.add_noise(x, noise, 250), stock.add_noise(x, noise, torch.tensor(250)))
    ids = torch.tensor([3, 1, 4, 1])
    z = normal_noise(x.shape[1:], 12, ids, 0, STREAM_NOISE_INJECT)
    keyed = ours.add_noise(x, None, t, seed=12, sample_ids=ids)
    torch.testing.assert_close(keyed, stock.add_noise(x, z, t), atol=1e-6, rtol=1e-6)
    want = ssni_kernels.noise_inject(x, t, ours.alphas_cumprod, seed=12, sample_ids=ids)
    assert torch.equal(keyed, want)


# --------------------------------------------------------------------------------------------- configs and errors
def test_configs_load_from_local_folders_and_round_trip_to_diffusers(tmp_path):
    diffusers.DDIMScheduler(clip_sample=False, steps_offset=1, prediction_type="v_prediction").save_pretrained(tmp_path)
    ours = DDIMScheduler.from_pretrained(tmp_path)
    assert isinstance(ours, DDIMScheduler) and isinstance(ours, diffusers.DDIMScheduler)
    assert ours.config.steps_offset == 1 and ours.config.prediction_type == "v_prediction"
    ddpm = DDPMScheduler.from_config(ours.config)  # diffusers' compatible-config loading
    assert isinstance(ddpm, DDPMScheduler) and ddpm.config.clip_sample is False
    ddpm.save_pretrained(tmp_path / "ours")
    assert json.loads((tmp_path / "ours" / "scheduler_config.json").read_text())["_class_name"] == "DDPMScheduler"
    back = diffusers.DDPMScheduler.from_pretrained(tmp_path / "ours")
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}
    assert public(back.config) == public(ddpm.config)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"variance_type": "fixed_large_log"}, "fixed_large_log"),
        ({"rescale_betas_zero_snr": True}, "rescale_betas_zero_snr"),
        ({"prediction_type": "x0"}, "prediction_type"),
    ],
)
def test_unsupported_configs_are_refused(config, message):
    with pytest.raises(ValueError, match=message):
        DDPMScheduler(**config)
    if "variance_type" not in config:
        with pytest.raises(ValueError, match=message):
            DDIMScheduler(**config)


def test_step_errors_name_the_argument():
    sample, model_output, noise = model_outputs(2, 2, 4)
    ddpm = DDPMScheduler()
    with pytest.raises(ValueError, match="timestep must be in"):
        ddpm.step(model_output, 1000, sample)
    with pytest.raises(TypeError, match="timestep must hold integers"):
        ddpm.step(model_output, torch.tensor([1.0, 2.0]), sample)
    with pytest.raises(ValueError, match="shape \\[2\\]"):
        ddpm.step(model_output, torch.tensor([1, 2, 3]), sample)
    with pytest.raises(ValueError, match="at most one of generator and variance_noise"):
        ddpm.step(model_output, 5, sample, generator=torch.Generator(), variance_noise=noise)
    with pytest.raises(ValueError, match="variance_noise must have the shape"):
        ddpm.step(model_output, 5, sample, variance_noise=noise[:1])
    with pytest.raises(ValueError, match="one generator per sample"):
        ddpm.step(model_output, 5, sample, generator=[torch.Generator()] * 3)
    with pytest.raises(ValueError, match="prev_timestep must be smaller"):
        ddpm.step(model_output, 5, sample, prev_timestep=5)
    with pytest.raises(ValueError, match="learned-variance model"):
        ddpm.step(torch.cat([model_output, model_output], 1), 5, sample)
    with pytest.raises(ValueError, match="needs model_output with 2×2 channels"):
        DDPMScheduler(variance_type="learned_range").step(model_output, 5, sample)
    ddpm.set_timesteps(10)
    with pytest.raises(ValueError, match="timestep 5 of sample 0 is not in"):
        ddpm.step(model_output, 5, sample)
    with pytest.raises(ValueError, match="set_timesteps"):
        DDIMScheduler().step(model_output, 5, sample)


def test_import_error_names_pip_install_when_diffusers_is_missing(monkeypatch):
    for name in [m for m in sys.modules if m == "diffusers" or m.startswith(("diffusers.", "ssni.diffusers"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(ImportError, match="pip install diffusers"):
        import ssni.diffusers  # noqa: F401
