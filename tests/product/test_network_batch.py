"""`--network-batch`: inputs larger than it stream through the continuous-batching engine, with the same results.

The tiny random MNIST-format models keep this fast; the equalities are the engine's contract (every sample's
noise is keyed on (seed, sample id, step), so only float rounding of the network may differ with the batch).
"""

from __future__ import annotations

import csv
from dataclasses import replace

import pytest
import torch
from product_fixtures import write_tiny_models

from ssni.cli import build_parser, eval_request, main
from ssni.errors import SSNIUserError
from ssni.eval.backend import ModelBackend
from ssni.eval.commands import prepare_eval
from ssni.eval.methods import Method


@pytest.fixture(autouse=True)
def _in_tmp_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-nb")
    diffusion, classifier = write_tiny_models(folder, seed=1)
    cal = folder / "cal.json"
    args = ["--diffusion-checkpoint", str(diffusion), "--num-levels", "3"]
    assert main(["calibrate", *args, "--out", str(cal), "--num-samples", "8"]) == 0
    return [*args, "--calibration", str(cal), "--classifier-checkpoint", str(classifier), "--t-star", "12"]


def _backend(tiny, *extra) -> tuple[ModelBackend, object]:
    args = build_parser().parse_args(["eval", *tiny, "--num-samples", "7", "--batch-size", "7", *extra])
    _, backend, data, _ = prepare_eval(eval_request(args))
    return backend, data


def _same(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["constant", "ssni-n", "ssni-l", "constant@5"])
def test_streamed_evaluation_equals_the_chunked_one(tiny, method):
    method = Method.parse(method)
    plain, data = _backend(tiny)
    streamed, _ = _backend(tiny, "--network-batch", "3")
    assert not plain.streamed(data.images) and streamed.streamed(data.images)
    args = dict(seed=121, sample_ids=data.sample_ids)
    a = plain.evaluate(method, data.images, **args)
    b = streamed.evaluate(method, data.images, **args)
    assert torch.equal(a.t, b.t) and torch.equal(a.pred, b.pred)
    _same(a.score_norm, b.score_norm)
    assert a.t.unique().numel() > 1 or not method.is_ssni  # heterogeneous t: the engine's real case
    # the same per-sample work, at most 3 rows per network call, counted in the backend's totals
    assert streamed.samples_evaluated == plain.samples_evaluated
    stats = [streamed.engines[method.kind].stats] + ([streamed.streams[0].stats] if method.is_ssni else [])
    assert all(s.network_calls > 0 for s in stats)
    assert streamed.network_calls == sum(s.stats.network_calls for s in streamed.streams) > plain.network_calls
    assert sum(s.network_calls for s in stats) == streamed.network_calls


STAGED = {"gns": ((6, 6), (12, 12)), "gdmp": ((5, 5), (7, 7))}


def test_purified_images_equal_for_every_host(tiny):
    for host in ("ddpm", "sde", "gns", "gdmp"):
        plain, data = _backend(tiny)
        spec = replace(plain.preset.purifier, host=host)
        if host in STAGED:
            spec = replace(spec, stages=STAGED[host], surrogate_stages=((STAGED[host][0][0], 1),))
        backends = [
            ModelBackend(
                replace(plain.preset, purifier=spec),
                plain.models,
                plain.ssni["ssni-n"].calibration,
                None,
                "cpu",
                network_batch=nb,
            )
            for nb in (None, 2)
        ]
        (xa, ta, ea), (xb, tb, eb) = (
            b.purify(Method("ssni-n"), data.images, seed=3, sample_ids=data.sample_ids) for b in backends
        )
        assert torch.equal(ta, tb) and backends[1].streamed(data.images)
        _same(xa, xb)
        _same(ea, eb)


def test_gns_votes_stream_as_draws(tiny):
    plain, data = _backend(tiny)
    spec = replace(plain.preset.purifier, host="gns", stages=STAGED["gns"], surrogate_stages=((6, 1),), votes=3)
    preset = replace(plain.preset, purifier=spec)
    calibration = plain.ssni["ssni-n"].calibration
    chunked, streamed = (ModelBackend(preset, plain.models, calibration, None, "cpu", network_batch=n) for n in (64, 4))
    assert not chunked.streamed(data.images) and streamed.streamed(data.images)
    for method in (Method("constant"), Method("ssni-n")):
        a = chunked.evaluate(method, data.images, seed=5, sample_ids=data.sample_ids)
        b = streamed.evaluate(method, data.images, seed=5, sample_ids=data.sample_ids)
        assert torch.equal(a.pred, b.pred) and torch.equal(a.t, b.t)
    purified = sum(s.stats.purify_evaluations for s in streamed.streams[1:])
    assert purified == chunked.purifier.samples_evaluated  # the same work


def test_unstreamed_hosts_run_in_network_batches(tiny):
    plain, data = _backend(tiny)
    spec = replace(plain.preset.purifier, host="gdmp", stages=((12, 12),), guidance="mse")
    backend = ModelBackend(
        replace(plain.preset, purifier=spec),
        plain.models,
        plain.ssni["ssni-n"].calibration,
        None,
        "cpu",
        network_batch=3,
    )
    assert backend.streams is None and not backend.streamed(data.images)
    out, t, e = backend.purify(Method("constant"), data.images, seed=0, sample_ids=data.sample_ids)
    assert out.shape == data.images.shape and torch.isfinite(out).all() and (t == 12).all()


def test_purify_command_streams_and_writes_the_same_table(tiny, tmp_path):
    images = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.save(images, tmp_path / "x.pt")
    tables, outs = [], []
    for name, extra in (("plain", []), ("stream", ["--network-batch", "2"])):
        out = tmp_path / f"{name}.pt"
        assert main(["purify", str(tmp_path / "x.pt"), "--out", str(out), *tiny, *extra]) == 0
        outs.append(torch.load(out))
        with open(out.with_suffix(".csv")) as f:
            tables.append(list(csv.DictReader(f)))
    _same(outs[0], outs[1])
    for a, b in zip(*tables):
        assert (a["sample_id"], a["t"], a["pred"]) == (b["sample_id"], b["t"], b["pred"])
        assert float(a["score_norm"]) == pytest.approx(float(b["score_norm"]), rel=1e-5)


def test_bad_network_batch(tiny, capsys):
    with pytest.raises(SSNIUserError, match="--network-batch"):
        _backend(tiny, "--network-batch", "0")
    assert main(["purify", "--out", "p.pt", *tiny, "--network-batch", "-1"]) == 2
    assert "--network-batch" in capsys.readouterr().err
