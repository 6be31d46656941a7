"""ADM / guided-diffusion UNet: the reference vector, the 256x256 manifests, fp16 torso, attention orders."""

from __future__ import annotations

import copy

import pytest
import torch
from reference_data import VECTORS, load_vector, manifest, randomize_, read_manifest, state_dict_signature

from ssni.models.adm import ADM_IMAGENET_256_UNCOND, ADMConfig, build_adm

VECTOR = "guided_diffusion_unet_small"
MANIFEST = "guided_diffusion_256x256_diffusion_uncond.state_dict"
RUNTIME_MANIFEST = "guided_diffusion_256x256_diffusion_uncond.runtime_after_convert_to_fp16"

# The vector's topology at a size that runs in well under a second.
TINY = dict(
    image_size=16,
    num_channels=32,
    num_res_blocks=1,
    channel_mult="1,2,2",
    learn_sigma=True,
    attention_resolutions="8,4",
    num_heads=4,
    num_head_channels=16,
    use_scale_shift_norm=True,
    resblock_updown=True,
)


@pytest.fixture(scope="module")
def vector():
    config, state_dict, io = load_vector(VECTOR)
    model = build_adm(**config).eval()
    model.load_state_dict(state_dict, strict=True)
    with torch.no_grad():
        out = model(io["x"], io["t"])
    return model, io, out


def test_reproduces_reference_vector(vector):
    _, io, out = vector
    assert out.shape == (2, 6, 64, 64) and out.dtype == torch.float32
    err = (out - io["out"]).abs().max().item()
    print(f"guided_diffusion_unet_small: max|Δ| = {err:.3g} (max|ref| = {io['out'].abs().max().item():.3g})")
    assert err <= 1e-4


def test_vector_state_dict_order_matches_manifest(vector):
    model, _, _ = vector
    assert state_dict_signature(model) == read_manifest(VECTORS / VECTOR / "state_dict_manifest.jsonl.gz")


def test_vector_is_batch_invariant(vector):
    model, io, both = vector
    with torch.no_grad():
        second = model(io["x"][1:], io["t"][1:])
    torch.testing.assert_close(second, both[1:], atol=1e-5, rtol=1e-5)


def test_scalar_and_float_t_match_integer_t():
    model = randomize_(build_adm(**TINY).eval())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        ref = model(x, torch.tensor([37, 37]))
        torch.testing.assert_close(model(x, 37), ref, atol=0, rtol=0)
        torch.testing.assert_close(model(x, torch.tensor([37.0, 37.0], dtype=torch.float64)), ref, atol=0, rtol=0)


def test_fp16_torso_stays_close_to_fp32_vector(vector):
    reference, io, _ = vector
    model = copy.deepcopy(reference)
    model.convert_to_fp16()
    assert model.torso_dtype == torch.float16
    assert model.time_embed[0].weight.dtype == torch.float32 and model.out[2].weight.dtype == torch.float32
    with torch.no_grad():  # one sample: half-precision convolutions are slow on CPU
        out = model(io["x"][:1], io["t"][:1])
    assert out.dtype == torch.float32
    assert (out - io["out"][:1]).abs().max().item() <= 2e-2


def test_full_preset_matches_manifests():
    with torch.device("meta"):
        model = build_adm(**ADM_IMAGENET_256_UNCOND)
    assert sum(p.numel() for p in model.parameters()) == 552_814_086
    assert state_dict_signature(model) == manifest(MANIFEST)
    model.convert_to_fp16()
    assert state_dict_signature(model) == manifest(RUNTIME_MANIFEST)
    model.convert_to_fp32()
    assert state_dict_signature(model) == manifest(MANIFEST)


def test_preset_config_resolves_like_create_model():
    cfg = ADMConfig(**ADM_IMAGENET_256_UNCOND)
    assert cfg.channel_mult == (1, 1, 2, 2, 4, 4)
    assert cfg.attention_ds == (8, 16, 32)
    assert cfg.out_channels == 6 and cfg.num_classes is None
    assert cfg.heads_for(512, decoder=True) == 8  # 64 channels per head


@pytest.mark.slow  # ~17 s to build and ~160 s for the forward on a 2-core CPU
def test_full_preset_random_forward_is_finite():
    torch.manual_seed(0)
    model = build_adm(**ADM_IMAGENET_256_UNCOND).eval()
    # Undo the reference's zero init of the residual branches' last layers so the whole torso contributes.
    for name, module in model.named_modules():
        if name.endswith(("out_layers.3", "proj_out")) or name == "out.2":
            module.reset_parameters()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 256), torch.tensor([500]))
    assert out.shape == (1, 6, 256, 256)
    assert torch.isfinite(out).all() and out.abs().max() > 0


def test_fresh_model_outputs_zero_like_the_reference_init():
    model = build_adm(**TINY).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 16, 16), torch.tensor([3, 700]))
    assert torch.equal(out, torch.zeros_like(out))


def test_new_attention_order_is_the_legacy_function_with_permuted_qkv():
    legacy = randomize_(build_adm(**TINY).eval())
    new = build_adm(**TINY, use_new_attention_order=True).eval()
    state = legacy.state_dict()
    for key, value in list(state.items()):
        if key.endswith(("qkv.weight", "qkv.bias")):
            channels = value.shape[0] // 3
            heads = legacy.get_submodule(key.rsplit(".", 2)[0]).num_heads
            # legacy row (head, part, c) -> new row (part, head, c)
            rows = value.reshape(heads, 3, channels // heads, *value.shape[1:]).transpose(0, 1)
            state[key] = rows.reshape(value.shape)
    new.load_state_dict(state, strict=True)
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([10, 900])
    with torch.no_grad():
        torch.testing.assert_close(new(x, t), legacy(x, t), atol=1e-5, rtol=1e-5)
        plain = build_adm(**TINY, use_new_attention_order=True).eval()
        plain.load_state_dict(legacy.state_dict(), strict=True)
        assert (plain(x, t) - legacy(x, t)).abs().max() > 1e-3  # the two layouts really differ


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = randomize_(build_adm(**TINY).eval())
    ckpt = build_adm(**TINY, use_checkpoint=True).eval()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 16, 16)
    grads = []
    for model in (plain, ckpt):
        xi = x.clone().requires_grad_(True)
        model(xi, torch.tensor([100])).square().sum().backward()
        grads.append(xi.grad)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=1e-5)


def test_class_conditional_model_uses_labels():
    model = randomize_(build_adm(**TINY, class_cond=True).eval())
    assert model.label_emb.weight.shape == (1000, 128)
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([5, 5])
    with torch.no_grad():
        a = model(x, t, torch.tensor([1, 2]))
        b = model(x, t, torch.tensor([1, 3]))
    torch.testing.assert_close(a[0], b[0])
    assert (a[1] - b[1]).abs().max() > 1e-4
    with pytest.raises(ValueError, match="class-conditional"):
        model(x, t)


def test_config_errors_name_the_argument():
    with pytest.raises(ValueError, match="image_size 48"):
        build_adm(image_size=48, num_channels=32, num_res_blocks=1)
    with pytest.raises(ValueError, match="channel_mult"):
        build_adm(image_size=32, num_channels=32, num_res_blocks=1, channel_mult="1,a")
    with pytest.raises(ValueError, match="heads"):
        build_adm(**{**TINY, "num_head_channels": 24})
    with pytest.raises(ValueError, match="GroupNorm"):
        build_adm(**{**TINY, "num_channels": 48})
    with pytest.raises(TypeError):
        build_adm(**TINY, bogus=1)


def test_bad_inputs_are_rejected():
    model = build_adm(**TINY)
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.randn(1, 3, 14, 14), 1)
    with pytest.raises(ValueError, match="shape"):
        model(torch.randn(1, 1, 16, 16), 1)
    with pytest.raises(ValueError, match="empty"):
        model(torch.randn(0, 3, 16, 16), 1)
    with pytest.raises(ValueError, match="NaN"):
        model(torch.randn(1, 3, 16, 16), torch.tensor([float("inf")]))
    with pytest.raises(ValueError, match="t must"):
        model(torch.randn(2, 3, 16, 16), torch.tensor([1, 2, 3]))


def test_conv_resampling_additive_embedding_and_head_counts():
    cfg = dict(TINY, resblock_updown=False, use_scale_shift_norm=False, num_head_channels=-1, num_heads=2)
    model = randomize_(build_adm(**cfg, num_heads_upsample=1).eval())
    keys = model.state_dict().keys()
    assert "input_blocks.2.0.op.weight" in keys  # Downsample conv after level 0
    assert "output_blocks.1.2.conv.weight" in keys  # ResBlock, AttentionBlock, Upsample conv closing level 2
    assert model.input_blocks[0][0].weight.shape == (32, 3, 3, 3)
    assert model.input_blocks[1][0].emb_layers[1].weight.shape == (32, 128)  # additive: no scale half
    assert model.middle_block[1].num_heads == 2 and model.output_blocks[0][1].num_heads == 1
    with torch.no_grad():
        out = model(torch.randn(2, 3, 16, 16), torch.tensor([1, 2]))
    assert out.shape == (2, 6, 16, 16) and torch.isfinite(out).all() and out.abs().max() > 0
