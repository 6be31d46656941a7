"""The streaming purifier: equal to the plain purifiers for any order and batch size, continuous batching, errors."""

from __future__ import annotations

import pytest
import torch

from ssni import SSNI, Calibration, DDPMPurifier, GDMPPurifier, GNSPurifier, SDEPurifier, eps_score_norm
from ssni.purify import StreamingPurifier

T = torch.tensor([0, 3, 9, 6, 1, 12, 5, 5, 7, 2])
IDS = torch.arange(100, 110)

HOSTS = {
    "ddpm": lambda m, **kw: DDPMPurifier(m, t_star=10, **kw),
    "ddpm-n4": lambda m, **kw: DDPMPurifier(m, t_star=10, num_steps=4, **kw),
    "ddim-n4": lambda m, **kw: DDPMPurifier(m, t_star=10, num_steps=4, eta=0.0, **kw),
    "sde": lambda m, **kw: SDEPurifier(m, t_star=10, **kw),
    "sde-discrete": lambda m, **kw: SDEPurifier(m, t_star=10, label="discrete", **kw),
}


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def _calibration(model, x, num_levels=3):
    norms = eps_score_norm(model, x, num_levels, seed=121)
    return Calibration.from_norms(norms, model_id="tiny", num_levels=num_levels, resolution=x.shape[-2:], seed=121)


def _sizes(model) -> list[int]:
    """Batch sizes of every network call the tiny model has seen (it records its label batches)."""
    return [lab.shape[0] for lab in model.labels]


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_equals_plain_purifier_in_any_order(tiny_eps, images, host, batch_size):
    model, x = tiny_eps(), images(batch=10)
    pur = HOSTS[host](model)
    ref = pur.purify(x, T, seed=3, sample_ids=IDS, draw=1)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(batch_size))
    stream = StreamingPurifier(pur, batch_size=batch_size)
    out = stream.purify_all(x[perm], T[perm], seed=3, sample_ids=IDS[perm], draw=1)
    _close(out, ref[perm])
    assert stream.stats.samples_evaluated == pur.samples_evaluated  # the same per-sample work, Σ L_b
    assert stream.stats.purify_evaluations == stream.stats.samples_evaluated


MULTI_STAGE = {
    "gns": lambda m: GNSPurifier(m, t_star=(3, 3, 5, 8), grad_t_star=(3,), grad_num_steps=1),
    "gns-n2": lambda m: GNSPurifier(m, t_star=(4, 6), num_steps=(2, None), grad_t_star=(4,), grad_num_steps=1),
    "gdmp": lambda m: GDMPPurifier(m, t_star=(4, 4, 6), guidance=None),
    "gdmp-ddpm-sampler": lambda m: GDMPPurifier(m, t_star=(4, 6), guidance=None, sampler="ddpm"),
    "gdmp-inject-at-t": lambda m: GDMPPurifier(m, t_star=(4, 5), guidance=None, reference_inject_at_t=True),
}


def _stage_t(pur, n: int, seed: int = 0) -> torch.Tensor:
    """Random per-sample, per-stage t in [0, t*_s] (int64 [n, S])."""
    g = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, s + 1, (n,), generator=g) for s in pur.t_star], dim=1)


@pytest.mark.parametrize("host", MULTI_STAGE)
@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_multi_stage_hosts_equal_plain_in_any_order(tiny_eps, images, host, batch_size):
    model, x = tiny_eps(), images(batch=10)
    pur = MULTI_STAGE[host](model)
    t = _stage_t(pur, 10, seed=batch_size)
    ref = pur.purify(x, t, seed=3, sample_ids=IDS, draw=2)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(batch_size))
    stream = StreamingPurifier(pur, batch_size=batch_size)
    _close(stream.purify_all(x[perm], t[perm], seed=3, sample_ids=IDS[perm], draw=2), ref[perm])
    assert stream.stats.samples_evaluated == pur.samples_evaluated
    stream.reset()
    _close(stream.purify_all(x, seed=3, sample_ids=IDS), pur.purify(x, seed=3, sample_ids=IDS))


def test_draws_stream_together_and_equal_the_vote_runs(tiny_eps, images):
    """GNS's vote runs are independent draws: streamed together, each equals the plain purifier's draw."""
    model, x = tiny_eps(), images(batch=6)
    pur = MULTI_STAGE["gns"](model)
    t = _stage_t(pur, 6)
    stream = StreamingPurifier(pur, batch_size=8)
    out = stream.purify_draws(x, t, seed=1, sample_ids=IDS[:6], draws=(4, 5, 6))
    assert out.shape == (3, *x.shape)
    for r, draw in enumerate((4, 5, 6)):
        _close(out[r], pur.purify(x, t, seed=1, sample_ids=IDS[:6], draw=draw))
    assert not torch.equal(out[0], out[1])
    with pytest.raises(ValueError, match="distinct"):
        stream.purify_draws(x, t, seed=1, sample_ids=IDS[:6], draws=(1, 1))


def test_ssni_over_a_multi_stage_host(tiny_eps, images):
    model = tiny_eps()
    cal = _calibration(model, images(batch=8, seed=1))
    ssni = SSNI(MULTI_STAGE["gns"](model), cal, tau=0.5 * cal.tau, bias=1)
    x = images(batch=7, seed=2)
    stream = StreamingPurifier(ssni, batch_size=16)
    out = stream.purify_draws(x, seed=5, sample_ids=IDS[:7], draws=(0, 1))
    _close(out[0], ssni.purify(x, seed=5, sample_ids=IDS[:7]))
    _close(out[1], ssni.purify(x, seed=5, sample_ids=IDS[:7], draw=1))
    assert stream.stats.score_evaluations == 3 * 7  # one score norm per sample, shared by its draws


def test_constant_t_star_runs_full_batches(tiny_eps, images):
    model, x = tiny_eps(), images(batch=6)
    pur = DDPMPurifier(model, t_star=4)
    stream = StreamingPurifier(pur, batch_size=3)
    out = stream.purify_all(x, seed=0, sample_ids=IDS[:6])
    _close(out, pur.purify(x, seed=0, sample_ids=IDS[:6]))
    assert stream.stats.network_calls == 2 * 4 and stream.stats.fill_ratio == 1.0


def test_network_runs_at_the_target_batch_until_the_queue_drains(tiny_eps, images):
    model, x = tiny_eps(), images(batch=10)
    stream = StreamingPurifier(DDPMPurifier(model, t_star=10), batch_size=4)
    model.labels.clear()
    stream.purify_all(x, T, seed=0, sample_ids=IDS)
    sizes = _sizes(model)
    full = next(i for i, s in enumerate(sizes) if s < 4)
    assert full >= 10 and sizes[full:] == sorted(sizes[full:], reverse=True)
    assert sum(sizes) == int(T.clamp_min(1).sum()) == stream.stats.samples_evaluated
    assert stream.stats.network_calls == len(sizes)
    assert stream.stats.fill_ratio == pytest.approx(sum(sizes) / (4 * len(sizes)))


def test_every_row_gets_its_own_label(tiny_eps, images):
    """Rows at different steps share a call: each one's label is its own DDPM index."""
    model, x = tiny_eps(), images(batch=3)
    stream = StreamingPurifier(DDPMPurifier(model, t_star=10), batch_size=2)
    model.labels.clear()
    stream.purify_all(x, torch.tensor([5, 1, 2]), seed=0, sample_ids=IDS[:3])
    seen = [lab.tolist() for lab in model.labels]
    # The two longest walks start (longest first); the t = 1 walk takes the slot freed after round 2.
    assert seen == [[4.0, 1.0], [3.0, 0.0], [2.0, 0.0], [1.0], [0.0]]


def test_stream_reads_chunks_lazily_and_yields_each_sample_once(tiny_eps, images):
    model, x = tiny_eps(), images(batch=10)
    pur = SDEPurifier(model, t_star=10)
    ref = pur.purify(x, T, seed=7, sample_ids=IDS)
    read = []

    def chunks():
        for lo, hi in ((0, 2), (2, 7), (7, 10)):
            read.append(lo)
            yield x[lo:hi], T[lo:hi], IDS[lo:hi]

    stream = StreamingPurifier(pur, batch_size=2)
    results = stream.purify_stream(chunks(), seed=7)
    first_ids, _ = next(results)
    assert read == [0]  # two slots: the first chunk fills them
    got = {int(s): row for s, row in zip(first_ids, _)}
    for ids, rows in results:
        got.update({int(s): row for s, row in zip(ids, rows)})
    assert sorted(got) == IDS.tolist() and read == [0, 2, 7]
    _close(torch.stack([got[int(s)] for s in IDS]), ref)


@pytest.mark.parametrize("host", ["ddpm", "sde"])
@pytest.mark.parametrize("batch_size", [1, 2, 64])
def test_ssni_score_and_purify_equal_plain(tiny_eps, images, host, batch_size):
    model = tiny_eps()
    cal = _calibration(model, images(batch=8, seed=1))
    ssni = SSNI(HOSTS[host](model), cal, tau=0.5 * cal.tau)
    x = images(batch=10, seed=2)
    ref = ssni.purify(x, seed=5, sample_ids=IDS)
    t, e = ssni.timesteps(x, seed=5, sample_ids=IDS)
    stream = StreamingPurifier(ssni, batch_size=batch_size)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    _close(stream.score_all(x[perm], seed=5, sample_ids=IDS[perm]), e[perm])
    stream.reset()
    _close(stream.purify_all(x[perm], seed=5, sample_ids=IDS[perm]), ref[perm])
    assert stream.stats.score_evaluations == 3 * 10
    assert stream.stats.purify_evaluations == int(t.clamp_min(1).sum())
    got_t = {}
    for ids, _, t_done in stream.purify_stream([(x, None, IDS)], seed=5, with_t=True):
        got_t.update(zip(ids.tolist(), t_done.tolist()))
    assert [got_t[i] for i in IDS.tolist()] == t.tolist()
    # A given t skips the score stage.
    stream.reset()
    _close(stream.purify_all(x, t, seed=5, sample_ids=IDS), ref)
    assert stream.stats.score_evaluations == 0


def test_ssni_stream_mixes_scored_and_given_t_chunks(tiny_eps, images):
    model = tiny_eps()
    cal = _calibration(model, images(batch=8, seed=1))
    ssni = SSNI(DDPMPurifier(model, t_star=8), cal, tau=0.5 * cal.tau)
    x = images(batch=6, seed=4)
    given = torch.tensor([2, 0, 7])
    chunks = [(x[:3], given, IDS[:3]), (x[3:], None, IDS[3:6])]
    got = {}
    for ids, rows in StreamingPurifier(ssni, batch_size=4).purify_stream(chunks, seed=2):
        got.update(zip(ids.tolist(), rows))
    _close(torch.stack([got[i] for i in IDS[:3].tolist()]), ssni.purify(x[:3], given, seed=2, sample_ids=IDS[:3]))
    _close(torch.stack([got[i] for i in IDS[3:6].tolist()]), ssni.purify(x[3:], seed=2, sample_ids=IDS[3:6]))


def test_ssni_linear_reference_shift(tiny_eps, images):
    model = tiny_eps()
    cal = _calibration(model, images(batch=8, seed=1))
    ssni = SSNI(
        DDPMPurifier(model, t_star=8),
        cal,
        reweight="linear",
        linear_minmax="reference",
        reference_linear_shift=True,
        bias=2,
    )
    x = images(batch=5, seed=3)
    out = StreamingPurifier(ssni, batch_size=3).purify_all(x, seed=1, sample_ids=IDS[:5])
    _close(out, ssni.purify(x, seed=1, sample_ids=IDS[:5]))


def test_bfloat16_network_is_close_to_float32(tiny_eps, images):
    model, x = tiny_eps(), images(batch=4)
    pur = DDPMPurifier(model, t_star=5)
    out = StreamingPurifier(pur, batch_size=4, network_dtype=torch.bfloat16).purify_all(x, seed=0)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, pur.purify(x, seed=0), rtol=0, atol=0.05)


def test_refusals(tiny_eps, images):
    model, x = tiny_eps(), images(batch=2)
    pur = DDPMPurifier(model, t_star=4)
    with pytest.raises(ValueError, match="batch_size"):
        StreamingPurifier(pur, batch_size=0)
    with pytest.raises(ValueError, match="batch execution only"):
        StreamingPurifier(GDMPPurifier(model, guidance="ssim"))
    with pytest.raises(ValueError, match="network_dtype"):
        StreamingPurifier(pur, network_dtype=torch.float64)
    with pytest.raises(ValueError, match="compile"):
        StreamingPurifier(pur, compile="fast")
    with pytest.raises(ValueError, match="cuda_graph"):
        StreamingPurifier(pur, cuda_graph=True)
    stream = StreamingPurifier(pur, batch_size=2)
    with pytest.raises(ValueError, match="seed"):
        stream.purify_stream([], seed=-1)
    with pytest.raises(ValueError, match="unique"):
        stream.purify_all(x, seed=0, sample_ids=torch.tensor([1, 1]))
    with pytest.raises(ValueError, match="sample_ids are required"):
        list(stream.purify_stream([(x, None, None)], seed=0))
    with pytest.raises(ValueError, match="in flight"):
        list(StreamingPurifier(pur, batch_size=4).purify_stream([(x, None, IDS[:2]), (x, None, IDS[:2])], seed=0))
    with pytest.raises(ValueError, match="per-sample shape"):
        list(stream.purify_stream([(x, None, IDS[:2]), (images(batch=2, size=4), None, IDS[2:4])], seed=0))
    with pytest.raises(ValueError, match=r"t must be in"):
        stream.purify_all(x, torch.tensor([1, 1001]), seed=0)
    with pytest.raises(TypeError, match="chunk"):
        list(stream.purify_stream([x], seed=0))
    with pytest.raises(TypeError, match="SSNI"):
        stream.score_all(x, seed=0)
    cal = _calibration(model, images(batch=4, seed=1))
    ssni_l = SSNI(pur, cal, reweight="linear")
    with pytest.raises(ValueError, match="reference\\+batch"):
        StreamingPurifier(ssni_l).purify_all(x, seed=0)
    with pytest.raises(ValueError, match="score_model"):
        StreamingPurifier(SSNI(pur, cal, score_model=tiny_eps(seed=1)))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_is_refused_for_the_score_levels(tiny_eps, images, dtype):
    """The EPS levels' smallest σ(0.001) ≈ 0.0105 is of the order of bf16's spacing near 1 (7.8e-3): SSNI's
    score norm is never run under autocast; the host alone may be."""
    from ssni.schedules import eps_levels

    sigma_min = float(eps_levels(1)[2][0])
    assert torch.finfo(torch.bfloat16).eps > sigma_min / 2  # why: the rounding step is ~ the smallest σ
    model = tiny_eps()
    cal = _calibration(model, images(batch=4, seed=1))
    ssni = SSNI(DDPMPurifier(model, t_star=4), cal)
    with pytest.raises(ValueError, match="score norm"):
        StreamingPurifier(ssni, network_dtype=dtype)
    StreamingPurifier(ssni.purifier, network_dtype=dtype)  # given t, the host may run reduced


@pytest.mark.slow
def test_compiled_network_equals_eager(tiny_eps, images):
    model, x = tiny_eps(), images(batch=5)
    pur = DDPMPurifier(model, t_star=4)
    stream = StreamingPurifier(pur, batch_size=4, compile="default")
    _close(stream.purify_all(x, seed=0), pur.purify(x, seed=0))
    assert stream.stats.padded_rows > 0  # the tail runs at the full static batch


@pytest.mark.parametrize("host", ["ddpm", "sde"])
def test_host_resolution_resizes_like_the_plain_purifier(tiny_eps, images, host):
    model, x = tiny_eps(), images(batch=5, size=6)
    pur = HOSTS[host](model, resolution=8)
    ref = pur.purify(x, T[:5], seed=4, sample_ids=IDS[:5])
    sizes = set()
    model.register_forward_hook(lambda module, args, out: sizes.add(tuple(args[0].shape[-2:])))
    stream = StreamingPurifier(pur, batch_size=2)
    out = stream.purify_all(x, T[:5], seed=4, sample_ids=IDS[:5])
    assert out.shape == x.shape and sizes == {(8, 8)}
    _close(out, ref)


def test_resolution_with_ssni_scores_at_input_size_then_takes_t(tiny_eps, images):
    model, x = tiny_eps(), images(batch=5, size=6)
    pur = DDPMPurifier(model, t_star=10, resolution=8)
    ssni = SSNI(pur, _calibration(model, images(batch=4, seed=1)))
    stream = StreamingPurifier(ssni, batch_size=4)
    with pytest.raises(ValueError, match="score_all first"):
        stream.purify_all(x, seed=2, sample_ids=IDS[:5])
    e = stream.score_all(x, seed=2, sample_ids=IDS[:5])
    t, e_ref = ssni.timesteps(x, seed=2, sample_ids=IDS[:5])
    _close(e, e_ref)
    _close(
        stream.purify_all(x, ssni.timesteps_from_scores(e), seed=2, sample_ids=IDS[:5]),
        ssni.purify(x, seed=2, sample_ids=IDS[:5]),
    )


def test_one_step_call_per_round_for_rows_at_different_steps(tiny_eps, images):
    """Rows at different positions of their own walks share one reverse_step call (a step word per row)."""
    model, x = tiny_eps(), images(batch=10)
    pur = DDPMPurifier(model, t_star=10)
    ref = pur.purify(x, T, seed=6, sample_ids=IDS)
    stream = StreamingPurifier(pur, batch_size=4)
    calls = []
    apply = pur.apply
    pur.apply = lambda *args, **kwargs: calls.append(args[4].tolist()) or apply(*args, **kwargs)
    _close(stream.purify_all(x, T, seed=6, sample_ids=IDS), ref)
    assert len(calls) == stream.stats.network_calls
    assert any(len(set(words)) > 1 for words in calls)  # mixed steps in one call
