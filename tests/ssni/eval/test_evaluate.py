"""`ssni.evaluate`: `ssni eval`'s records and statistics from one Python call, checked against the defence and
attack run by hand, the records file it keeps, and its argument errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import ssni
from ssni.attacks import AdaptiveSSNI, PurifiedClassifier, pgd_eot
from ssni.errors import SSNIUserError
from ssni.eval import stats
from ssni.eval.presets import AttackSpec
from ssni.eval.records import read_results
from ssni.eval.report import summarize

SIDE, N = 8, 6
IDS = torch.arange(30, 30 + N)


class TimeConv(nn.Module):
    """ε̂(x, label) = tanh(conv(x))·(1 + label/1000): a random, time-dependent, differentiable ε-network."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x, t):
        return torch.tanh(self.conv(x)) * (1 + t.reshape(-1, 1, 1, 1) / 1000)


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    eps_net, classifier = TimeConv(), nn.Sequential(nn.Flatten(), nn.Linear(SIDE * SIDE, 10))
    for p in [*eps_net.parameters(), *classifier.parameters()]:
        p.requires_grad_(False)
    clean = torch.rand(8, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(3))
    norms = ssni.eps_score_norm(eps_net, clean, 4, seed=0)
    calibration = ssni.Calibration.from_norms(norms, model_id="tiny", num_levels=4, resolution=(SIDE, SIDE), seed=0)
    defence = ssni.SSNI(ssni.DDPMPurifier(eps_net, t_star=8, grad_num_steps=2), calibration)
    x = torch.rand(N, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(2))
    y = classifier(defence.purify(x, seed=121, sample_ids=IDS)).argmax(1)
    y[0] = (y[0] + 1) % 10  # one clean error, so accuracies are not all 100%
    return defence, classifier.eval(), x, y


BUDGET = dict(eps=0.1, step_size=0.05, iterations=2, eot=1, seeds=(121, 122), sample_ids=IDS)


def _correct(classifier, defence, x, y, seed) -> torch.Tensor:
    with torch.no_grad():
        return classifier(defence.purify(x, seed=seed, sample_ids=IDS)).argmax(1) == y


def test_accuracies_are_the_defence_and_attack_run_by_hand(setting, tmp_path):
    defence, classifier, x, y = setting
    result = ssni.evaluate(defence, classifier, x, y, batch_size=4, out=tmp_path / "r.jsonl", **BUDGET)
    assert result.method == "ssni-n" and set(result.robust) == {"pgd-linf"}
    clean = torch.stack([_correct(classifier, defence, x, y, s) for s in (121, 122)], dim=1)
    # the shared protocol: one adaptive attack at the first seed, evaluated under every seed
    x_adv = pgd_eot(AdaptiveSSNI(defence, classifier, 121), x, y, sample_ids=IDS, eps=0.1, step_size=0.05,
                    iterations=2, eot=1).x_adv  # fmt: skip
    robust = torch.stack([_correct(classifier, defence, x_adv, y, s) for s in (121, 122)], dim=1)
    for stat, correct in ((result.clean, clean), (result.robust["pgd-linf"], robust)):
        assert stat.per_seed == pytest.approx(
            {s: 100 * correct[:, k].double().mean().item() for k, s in enumerate((121, 122))}
        )
        assert stat.ci == stats.accuracy(correct.numpy())
    assert result.clean.mean < 100  # the planted error counts
    # the records are the file's, and the numbers are the report's summary of it
    log = read_results(result.path)
    assert result.records == log.records and result.header == log.header
    assert summarize(log) == result.summary
    adv = [r for r in result.records if r["attack"] == "pgd-linf" and r["seed"] == 121]
    assert [r["sample_id"] for r in adv] == IDS.tolist()
    assert max(r["perturbation_linf"] for r in adv) <= 0.1 + 1e-6
    with torch.no_grad():
        t, e = defence.timesteps(x, seed=121, sample_ids=IDS)
    clean_121 = [r for r in result.records if r["attack"] == "none" and r["seed"] == 121]
    assert [r["t"] for r in clean_121] == t.tolist()
    torch.testing.assert_close(torch.tensor([r["score_norm"] for r in clean_121]), e)
    assert "ssni-n: clean" in str(result)


class Pixels(nn.Module):
    """Logits = the first ten pixels: a classifier that every purification noise draw can change."""

    def forward(self, z):
        return 100 * z.flatten(1)[:, :10]


@pytest.mark.parametrize("vote_scores", ["per-vote", "shared"])
def test_votes_are_the_vote_defence_run_by_hand(setting, vote_scores):
    """votes=3: predictions are GNSDefense's majority vote over three purifications (the score norm per vote or
    shared), at every seed, and differ from one purification's; the vote count is part of the configuration."""
    defence, _, x, _ = setting
    classifier = Pixels()
    y = classifier(defence.purify(x, seed=121, sample_ids=IDS)).argmax(1)
    runs = dict(attacks=(), seeds=(121, 122), sample_ids=IDS, batch_size=4)
    voted = ssni.evaluate(defence, classifier, x, y, votes=3, vote_scores=vote_scores, **runs)
    single = ssni.evaluate(defence, classifier, x, y, **runs)
    vote = ssni.GNSDefense(defence, classifier, runs=3, scores_per_vote=vote_scores == "per-vote")
    voted_preds, single_preds = (
        {(r["seed"], r["sample_id"]): r["pred"] for r in res.records} for res in (voted, single)
    )
    for seed in (121, 122):
        expected = vote(x, seed=seed, sample_ids=IDS).tolist()
        assert [voted_preds[(seed, i)] for i in IDS.tolist()] == expected
    assert voted_preds != single_preds  # the votes change predictions on this setting
    assert voted.header["config"]["preset"]["purifier"]["votes"] == 3
    assert single.header["config"]["preset"]["purifier"]["votes"] == 1


def test_rerun_resumes_and_another_budget_is_refused(setting, tmp_path):
    defence, classifier, x, y = setting
    out = tmp_path / "r.jsonl"
    first = ssni.evaluate(defence, classifier, x, y, attacks=("bpda",), out=out, **BUDGET)
    calls = defence.network_calls
    again = ssni.evaluate(defence, classifier, x, y, attacks=("bpda",), out=out, **BUDGET)
    assert defence.network_calls == calls and again.records == first.records  # nothing recomputed
    with pytest.raises(SSNIUserError, match="another configuration"):
        ssni.evaluate(defence, classifier, x, y, attacks=("bpda",), out=out, **{**BUDGET, "eps": 0.2})
    with pytest.raises(SSNIUserError, match="another configuration"):  # other images, same everything else
        ssni.evaluate(defence, classifier, x.flip(-1), y, attacks=("bpda",), out=out, **BUDGET)


def test_constant_purifier_baseline_and_attack_specs(setting):
    defence, classifier, x, y = setting
    spec = AttackSpec("pgd-l2", "L2", 0.5, 0.2, 2, 1)
    result = ssni.evaluate(defence, classifier, x, y, attacks=(spec,), baseline=True, **BUDGET)
    assert result.summary.methods == ["constant", "ssni-n"] and "ssni-n" in result.summary.differences
    constant = [r for r in result.records if r["method"] == "constant"]
    assert {r["t"] for r in constant} == {8} and {r["score_norm"] for r in constant} == {None}
    x_adv = pgd_eot(PurifiedClassifier(defence.host, classifier, 121), x, y, sample_ids=IDS, norm="L2", eps=0.5,
                    step_size=0.2, iterations=2, eot=1).x_adv  # fmt: skip
    expected = {s: 100 * _correct(classifier, defence.host, x_adv, y, s).double().mean().item() for s in (121, 122)}
    assert result.summary.robust_accuracy["constant"]["pgd-l2"].per_seed == pytest.approx(expected)
    host_only = ssni.evaluate(defence.host, classifier, x, y, attacks=(), seeds=(121,), sample_ids=IDS)
    assert host_only.method == "constant" and host_only.robust == {}
    assert host_only.clean.per_seed[121] == result.summary.clean_accuracy["constant"].per_seed[121]


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        (dict(eps=None), ValueError, "eps is required"),
        (dict(attacks=("fgsm",)), ValueError, "unknown attack 'fgsm'"),
        (dict(attacks=("pgd", "pgd")), ValueError, "its own name"),
        (dict(norm="L1"), ValueError, "norm"),
        (dict(iterations=0), ValueError, "iterations"),
        (dict(seeds=(121, 121)), ValueError, "seeds"),
        (dict(sample_ids=torch.zeros(N, dtype=torch.int64)), ValueError, "unique"),
        (dict(attack_seeds="all"), ValueError, "attack_seeds"),
        (dict(votes=0), ValueError, "votes"),
        (dict(vote_scores="each"), ValueError, "vote_scores"),
        (dict(y=torch.zeros(N)), ValueError, "y must be an integer tensor"),
        (dict(x=torch.full((N, 1, SIDE, SIDE), 2.0)), ValueError, r"\[0, 1\]"),
        (dict(defence=nn.Identity()), TypeError, "defence"),
    ],
)
def test_bad_arguments_name_themselves(setting, changes, error, message):
    defence, classifier, x, y = setting
    args = {**dict(defence=defence, classifier=classifier, x=x, y=y), **BUDGET, **changes}
    with pytest.raises(error, match=message):
        ssni.evaluate(args.pop("defence"), args.pop("classifier"), args.pop("x"), args.pop("y"), **args)
