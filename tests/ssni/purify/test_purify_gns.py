"""GNS (§7): stages equal chained DDPM purifications, surrogate stages, counts, majority vote."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssni import DDPMPurifier, GNSDefense, GNSPurifier, majority_vote
from ssni.purify.walks import run_active


def test_stages_chain_ddpm(tiny_eps, images):
    model, x = tiny_eps(), images(batch=2)
    gns = GNSPurifier(model, t_star=(3, 5), grad_t_star=(5,), grad_num_steps=2)
    t = torch.tensor([[3, 5], [1, 4]])
    ids = torch.tensor([0, 1])
    out = gns.purify(x, t, seed=2, sample_ids=ids)
    assert gns.samples_evaluated == 3 + 5 + 1 + 4
    host = DDPMPurifier(model, t_star=5)
    cur = 2 * x - 1
    for stage in range(2):
        walks = host.plan(cur, t[:, stage], ids, seed=2, draw=0, stage=stage, num_steps=None)
        cur = run_active(host, walks, ids, seed=2, grad=False)
    torch.testing.assert_close(out, (cur + 1) / 2)


def test_surrogate_stages_take_matching_columns(tiny_eps, images):
    model, x = tiny_eps(), images(batch=2)
    gns = GNSPurifier(model, t_star=(3, 3, 6), grad_t_star=(3, 6), grad_num_steps=(1, 2))
    xg = x.clone().requires_grad_(True)
    out = gns.purify_grad(xg, torch.tensor([[2, 3, 6], [3, 1, 4]]), seed=0)
    assert gns.samples_evaluated == 2 * (1 + 2)
    out.sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="grad_t_star"):
        GNSPurifier(model, t_star=(3, 3), grad_t_star=(5,))
    with pytest.raises(ValueError, match="shape"):
        gns.purify(x, torch.tensor([3, 3]), seed=0)


def test_majority_vote():
    logits = [torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])]
    logits.append(torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    votes, pred = majority_vote(logits)
    assert votes.tolist() == [[1, 0, 2], [1, 2, 0]] and pred.tolist() == [2, 1]
    _, tie = majority_vote(logits[:2])
    assert tie.tolist() == [0, 1]  # ties go to the lowest class


def test_defense_runs_independent_draws(tiny_eps, images):
    model, x = tiny_eps(), images(batch=2)
    gns = GNSPurifier(model, t_star=(2,), grad_t_star=(2,), grad_num_steps=1)
    seen = []

    class Recorder(nn.Module):
        def forward(self, xp):
            seen.append(xp.clone())
            return xp.flatten(1)[:, :3]

    votes, pred = GNSDefense(gns, Recorder(), runs=3).votes(x, seed=0)
    assert votes.sum(dim=1).tolist() == [3, 3] and pred.shape == (2,)
    assert not torch.allclose(seen[0], seen[1])
    torch.testing.assert_close(seen[2], gns.purify(x, seed=0, draw=2))


def test_defense_around_ssni_scores_once(tiny_eps, images):
    from ssni import SSNI, Calibration, eps_score_norm

    model, x = tiny_eps(), images(batch=2)
    norms = eps_score_norm(model, images(batch=6, seed=1), 3, seed=121)
    cal = Calibration.from_norms(norms, model_id="tiny", num_levels=3, resolution=(6, 6), seed=121)
    ssni = SSNI(GNSPurifier(model, t_star=(2, 3), grad_t_star=(3,), grad_num_steps=1), cal, bias=1)
    votes, _ = GNSDefense(ssni, nn.Sequential(nn.Flatten(), nn.Linear(36, 4)), runs=3).votes(x, seed=0)
    assert votes.sum(dim=1).tolist() == [3, 3]
    assert ssni.score_counter.network_calls == 1  # one score norm shared by the runs


def test_defense_around_ssni_rescores_every_vote_as_the_reference(tiny_eps, images):
    """The authors' evaluation recomputes the score norm (fresh EPS noise) inside its vote loop: vote r scores
    with vote_score_seed(seed, r), the base seed for vote 0."""
    from ssni import SSNI, Calibration, eps_score_norm
    from ssni.purify.gns import vote_score_seed

    model, x = tiny_eps(), images(batch=2)
    norms = eps_score_norm(model, images(batch=6, seed=1), 3, seed=121)
    cal = Calibration.from_norms(norms, model_id="tiny", num_levels=3, resolution=(6, 6), seed=121)
    ssni = SSNI(GNSPurifier(model, t_star=(2, 3), grad_t_star=(3,), grad_num_steps=1), cal, bias=1)
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(36, 4))
    votes, _ = GNSDefense(ssni, classifier, runs=3, scores_per_vote=True).votes(x, seed=7)
    assert ssni.score_counter.network_calls == 3  # one score norm per vote
    seeds = [vote_score_seed(7, r) for r in range(3)]
    assert seeds[0] == 7 and len(set(seeds)) == 3
    expected = []
    for r, s in enumerate(seeds):
        t_r, _ = ssni.timesteps(x, seed=s)
        expected.append(classifier(ssni.purify(x, t_r, seed=7, draw=r)))
    assert torch.equal(votes, majority_vote(expected)[0])
    e = [ssni.scores(x, seed=s) for s in seeds]
    assert not torch.equal(e[0], e[1])  # fresh EPS noise per vote
