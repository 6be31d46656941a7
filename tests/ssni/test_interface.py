"""The ε-model adapter: plain modules, learned-σ outputs, diffusers-style outputs, shape errors; the time-label
contract's guard (a network that truncates fractional labels is warned about once)."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ssni import SSNI, Calibration, DDPMPurifier
from ssni.models.interface import EpsModel, as_eps_model, check_time_labels
from ssni.purify import StreamingPurifier


class Fixed(nn.Module):
    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, x, t):
        return self.out(x)


def test_plain_module_and_learned_sigma():
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(as_eps_model(Fixed(lambda v: v * 2))(x, torch.zeros(2)), x * 2)
    six = Fixed(lambda v: torch.cat([v, -v], dim=1))
    assert torch.equal(EpsModel(six)(x, torch.zeros(2)), x)
    assert torch.equal(EpsModel(Fixed(lambda v: torch.cat([v, v, v], 1)), out_channels=3)(x, torch.zeros(2)), x)
    wrapped = EpsModel(six)
    assert as_eps_model(wrapped) is wrapped


def test_diffusers_style_and_tuple_outputs():
    x = torch.randn(2, 1, 4, 4)
    assert torch.equal(EpsModel(Fixed(lambda v: SimpleNamespace(sample=v + 1)))(x, torch.zeros(2)), x + 1)
    assert torch.equal(EpsModel(Fixed(lambda v: (v - 1, None)))(x, torch.zeros(2)), x - 1)


def test_shape_errors():
    x = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError, match="channels"):
        EpsModel(Fixed(lambda v: v[:, :2]))(x, torch.zeros(2))
    with pytest.raises(ValueError, match="shaped like x"):
        EpsModel(Fixed(lambda v: v.flatten(1)))(x, torch.zeros(2))
    with pytest.raises(ValueError, match="out_channels"):
        EpsModel(Fixed(lambda v: v), out_channels=0)


class LabelCast(nn.Module):
    """A continuous ε-network seen through a label cast (e.g. an embedding table indexed by t.long())."""

    def __init__(self, inner: nn.Module, cast):
        super().__init__()
        self.inner, self.cast = inner, cast

    def forward(self, x, t):
        return self.inner(x, self.cast(t).to(torch.float32))


def _ssni(net, x) -> SSNI:
    norms = torch.linspace(1.0, 2.0, 8)
    cal = Calibration.from_norms(norms, model_id="tiny", num_levels=3, resolution=tuple(x.shape[-2:]), seed=0)
    return SSNI(DDPMPurifier(net, t_star=5), cal)


def test_ssni_warns_once_about_a_network_that_truncates_its_labels(tiny_eps, images):
    net, x = LabelCast(tiny_eps(), lambda t: t.long()), images(batch=3)
    defence = _ssni(net, x)
    with pytest.warns(UserWarning, match=r"LabelCast .* truncates or rounds fractional labels \(e.g. nn.Embedding"):
        defence.timesteps(x, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the probe ran once for this network: no second warning
        defence.timesteps(x, seed=1)
        _ssni(net, x).scores(x, seed=2)


def test_streamed_score_norms_warn_too(tiny_eps, images):
    net, x = LabelCast(tiny_eps(), torch.floor), images(batch=3)
    with pytest.warns(UserWarning, match="truncates or rounds"):
        StreamingPurifier(_ssni(net, x), batch_size=4).score_all(x, seed=0, sample_ids=torch.arange(3))


@pytest.mark.parametrize(
    ("cast", "flagged"),
    [(torch.round, True), (torch.ceil, True), (lambda t: t, False), (torch.zeros_like, False)],
    ids=["round", "ceil", "continuous", "ignores-t"],
)
def test_the_probe_flags_rounding_but_not_continuous_or_time_free_networks(tiny_eps, images, cast, flagged):
    net, x_s = LabelCast(tiny_eps(), cast), 2 * images(batch=2) - 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert check_time_labels(EpsModel(net), x_s) is flagged
        assert check_time_labels(net, x_s) is False  # probed once per network, wrapped or not
    assert len(caught) == int(flagged)
