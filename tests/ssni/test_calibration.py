"""Calibration file round trip, refusal on mismatch, τ proposal and sweep."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ssni import Calibration, CalibrationMismatchError, calibrate, eps_score_norm, propose_tau, tau_sweep


def _cal(**kw) -> Calibration:
    norms = torch.linspace(10.0, 20.0, 11)
    return Calibration.from_norms(norms, model_id="tiny", num_levels=5, resolution=(6, 6), seed=121, **kw)


def test_statistics():
    cal = _cal()
    assert cal.mean == pytest.approx(15.0) and cal.min == 10.0 and cal.max == 20.0
    assert cal.std == pytest.approx(torch.linspace(10.0, 20.0, 11, dtype=torch.float64).std().item())
    assert cal.quantiles["0.5"] == pytest.approx(15.0) and cal.num_samples == 11
    assert cal.tau == pytest.approx(cal.std)  # clean-only proposal


def test_tau_proposal_with_adversarial_norms():
    cal = _cal(adv_norms=torch.tensor([25.0, 27.0]))
    assert cal.adv_mean == 26.0
    assert cal.tau == pytest.approx((26.0 - 15.0) / math.log(9.0))
    assert 1 / (1 + math.exp(-(26.0 - cal.mean) / cal.tau)) == pytest.approx(0.9)
    assert propose_tau(torch.tensor([1.0, 3.0]), torch.tensor([0.5])) == pytest.approx(
        torch.tensor([1.0, 3.0]).std().item()
    )
    assert tau_sweep(cal, (0.5, 2.0)) == [pytest.approx(cal.tau * 0.5), pytest.approx(cal.tau * 2)]
    assert cal.with_tau(3.0).tau == 3.0 and cal.with_tau(3.0).mean == cal.mean
    clean_only = _cal()
    again = clean_only.with_adversarial(torch.tensor([25.0, 27.0]))  # the clean statistics kept, τ re-proposed
    assert clean_only.adv_mean is None and (again.adv_mean, again.tau, again.mean) == (26.0, cal.tau, clean_only.mean)


def test_save_load_round_trip_and_refusal(tmp_path):
    cal = _cal()
    path = cal.save(tmp_path / "cal.json")
    assert json.loads(path.read_text())["model_id"] == "tiny"
    loaded = Calibration.load(path, model_id="tiny", num_levels=5, resolution=(6, 6))
    assert loaded == cal and torch.equal(loaded.norms, cal.norms)
    with pytest.raises(CalibrationMismatchError, match="model_id"):
        Calibration.load(path, model_id="other")
    with pytest.raises(CalibrationMismatchError, match="num_levels"):
        Calibration.load(path, num_levels=50)
    with pytest.raises(CalibrationMismatchError, match="resolution"):
        Calibration.load(path, resolution=(32, 32))
    with pytest.raises(FileNotFoundError):
        Calibration.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        Calibration.load(tmp_path / "bad.json")


def test_calibrate_tensor_and_loader_agree(tiny_eps, images):
    model, x = tiny_eps(), images(batch=5)
    cal = calibrate(model, x, model_id="tiny", num_levels=3, seed=121, batch_size=2)
    assert cal.resolution == (6, 6) and cal.num_levels == 3 and cal.seed == 121 and cal.num_samples == 5
    direct = eps_score_norm(model, x, 3, seed=121, sample_ids=torch.arange(5))
    torch.testing.assert_close(cal.norms.float(), direct, rtol=1e-5, atol=1e-5)
    loader = [(x[:3], torch.zeros(3)), (x[3:], torch.zeros(2))]
    cal2 = calibrate(model, loader, model_id="tiny", num_levels=3, seed=121)
    assert cal2.mean == pytest.approx(cal.mean, rel=1e-5)
    with pytest.raises(ValueError, match="empty"):
        calibrate(model, [], model_id="tiny", num_levels=3)


@pytest.mark.parametrize(
    "content, message",
    [
        ("[]", "corrupt: expected a JSON object, got list"),
        ({"tau": "abc"}, "field 'tau' must be a positive finite number, got 'abc'"),
        ({"tau": float("nan")}, "field 'tau'"),
        ({"num_levels": "5"}, "field 'num_levels'"),
        ({"resolution": [6]}, "field 'resolution'"),
        ({"quantiles": None}, "field 'quantiles'"),
        ({"extra": 1}, "unknown field"),
        ({"max": 0.0}, "'min' <= 'mean' <= 'max'"),
    ],
)
def test_load_checks_every_field_naming_file_and_field(tmp_path, content, message):
    from ssni.calibration import CalibrationFileError
    from ssni.errors import SSNIUserError

    path = tmp_path / "cal.json"
    if isinstance(content, dict):
        fields = json.loads(_cal().save(path).read_text())
        Calibration.norms_path(path).unlink()
        content = json.dumps({**fields, **content})
    path.write_text(content)
    with pytest.raises(CalibrationFileError) as err:
        Calibration.load(path)
    assert str(path) in str(err.value) and message in str(err.value)
    assert isinstance(err.value, SSNIUserError) and isinstance(err.value, ValueError)


def test_missing_field_and_bad_norms_file(tmp_path):
    from ssni.calibration import CalibrationFileError

    path = _cal().save(tmp_path / "cal.json")
    Calibration.norms_path(path).write_bytes(b"not safetensors")
    with pytest.raises(CalibrationFileError, match=r"cal\.json\.norms\.safetensors is corrupt"):
        Calibration.load(path)
    fields = json.loads(path.read_text())
    del fields["tau"]
    path.write_text(json.dumps(fields))
    with pytest.raises(CalibrationFileError, match="field 'tau' is missing"):
        Calibration.load(path)


def test_save_is_all_or_nothing(tmp_path, monkeypatch):
    import safetensors.torch

    path = _cal().save(tmp_path / "cal.json")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    with pytest.raises(OSError, match="No space"):
        _cal().with_tau(7.0).save(path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary file, nothing replaced
    monkeypatch.undo()
    without_norms = Calibration.load(path)
    without_norms.norms = None
    without_norms.save(path)
    assert not Calibration.norms_path(path).exists()  # a stale norms file is not left beside the new JSON
