"""The adaptive attack on SSNI recomputes t from the current iterate at every iteration (spec §8)."""

from __future__ import annotations

import pytest
import torch

from ssni.attacks import AdaptiveSSNI, apgd, autoattack_rand, derive_seed, pgd_eot
from ssni.attacks.defended import STREAM_EOT_DRAW, STREAM_SCORE


def test_pgd_recomputes_t_once_per_iteration_on_the_current_iterate(mlp_net, batch, fake_ssni):
    x, ids = batch
    y = mlp_net(x).argmax(1)
    iterates = []
    model = AdaptiveSSNI(fake_ssni, mlp_net, seed=121, num_steps=7)

    class Recorder:  # records the iterate each surrogate is built at
        def logits(self, x_, *, sample_ids):
            return model.logits(x_, sample_ids=sample_ids)

        def surrogate(self, x_, *, sample_ids, iteration):
            iterates.append(x_.clone())
            return model.surrogate(x_, sample_ids=sample_ids, iteration=iteration)

    pgd_eot(Recorder(), x, y, sample_ids=ids, iterations=5, eot=3, eps=0.2, step_size=0.05)

    assert len(fake_ssni.timesteps_inputs) == 5
    for seen, iterate in zip(fake_ssni.timesteps_inputs, iterates):
        assert torch.equal(seen, iterate)
    assert not torch.equal(fake_ssni.timesteps_inputs[0], fake_ssni.timesteps_inputs[-1])
    # every EOT draw of iteration k purifies with that iteration's t, and its own seed
    grad_calls = [(t, seed) for kind, t, seed, _ in fake_ssni.calls if kind == "purify_grad"]
    assert len(grad_calls) == 15
    for k in range(5):
        for j in range(3):
            t, seed = grad_calls[3 * k + j]
            assert torch.equal(t, fake_ssni.timesteps_outputs[k])
            assert seed == derive_seed(121, STREAM_EOT_DRAW, 3 * k + j)
    # t actually moved with the iterate (the fake's t is 100·mean(x))
    assert len({tuple(t.tolist()) for t in fake_ssni.timesteps_outputs}) > 1


def test_score_seeds_are_per_iteration_and_prediction_lets_ssni_choose_t(mlp_net, batch, fake_ssni):
    x, ids = batch
    y = mlp_net(x).argmax(1)
    seeds = []
    original = fake_ssni.timesteps

    def timesteps(x_, *, seed, sample_ids):
        seeds.append(seed)
        assert torch.equal(sample_ids, ids)
        return original(x_, seed=seed, sample_ids=sample_ids)

    fake_ssni.timesteps = timesteps
    result = pgd_eot(AdaptiveSSNI(fake_ssni, mlp_net, seed=122), x, y, sample_ids=ids, iterations=3, eot=1,
                     eps=0.1, check_success=True)  # fmt: skip
    assert seeds == [derive_seed(122, STREAM_SCORE, k) for k in range(3)]
    kind, t, seed, _ = fake_ssni.calls[-1]
    assert (kind, t, seed) == ("purify", None, 122)
    assert result.success.shape == (x.shape[0],)


def test_t_is_computed_without_gradient(mlp_net, batch, fake_ssni):
    x, ids = batch
    y = mlp_net(x).argmax(1)
    # FakeSSNI.timesteps asserts that grad mode is off; APGD and AutoAttack go through the same adapter
    apgd(AdaptiveSSNI(fake_ssni, mlp_net, seed=1), x, y, sample_ids=ids, eps=8 / 255, iterations=3, eot=2)
    assert len(fake_ssni.timesteps_inputs) == 4  # the start point and 3 iterates


def test_autoattack_rand_on_ssni_calls_timesteps_per_iteration_of_both_stages(mlp_net, batch, fake_ssni):
    x, ids = batch
    y = mlp_net(x).argmax(1)
    result = autoattack_rand(
        AdaptiveSSNI(fake_ssni, mlp_net, seed=1), x, y, sample_ids=ids, eps=8 / 255, iterations=4, eot=2
    )
    ce_left = (~result.success_by["clean"]).sum().item()
    dlr_left = (~(result.success_by["clean"] | result.success_by["apgd-ce"])).sum().item()
    expected_calls = (5 if ce_left else 0) + (5 if dlr_left else 0)
    assert len(fake_ssni.timesteps_inputs) == expected_calls > 0


def test_bad_gradient_mode_is_rejected(mlp_net, fake_ssni):
    with pytest.raises(ValueError, match="gradient"):
        AdaptiveSSNI(fake_ssni, mlp_net, seed=0, gradient="exact")
