"""Off-policy corrections for asynchronous RL, against hand-computed values."""

import math

import pytest
import torch

from posttrain.rl.losses import (
    decoupled_ppo_loss,
    direct_is_loss,
    icepop_weights,
    policy_loss,
    tis_weights,
)


def test_direct_is_masks_tokens_outside_the_trust_region():
    # r = 1.1 (inside), 1.5 (above 1.28), 1.0 (inside), 0.7 (below 0.8); A = 2 everywhere.
    logp = torch.tensor([[math.log(1.1), math.log(1.5), 0.0, math.log(0.7)]], requires_grad=True)
    rollout = torch.zeros(1, 4)
    loss, metrics = direct_is_loss(
        logp, rollout, torch.tensor([2.0]), torch.ones(1, 4), eps_low=0.2, eps_high=0.28
    )
    # per token: -1.1*2, 0, -1.0*2, 0; token-mean over all 4 tokens.
    assert loss.item() == pytest.approx(-4.2 / 4)
    assert metrics["is_masked_frac"] == pytest.approx(0.5)
    loss.backward()
    # d(-r A)/d logp = -r A, divided by the 4 tokens; masked tokens get no gradient.
    assert torch.allclose(logp.grad, torch.tensor([[-0.55, 0.0, -0.5, 0.0]]))


def test_decoupled_ppo_weights_by_the_behaviour_ratio():
    logp = torch.tensor([[0.1, -0.2]], requires_grad=True)
    prox = torch.tensor([[0.0, 0.0]])
    adv = torch.tensor([1.0])
    mask = torch.ones(1, 2)
    plain, _ = policy_loss(logp, prox, adv, mask, eps_low=0.2, eps_high=0.28)
    same, _ = decoupled_ppo_loss(logp, prox, prox, adv, mask)
    assert same.item() == pytest.approx(plain.item())
    # pi_prox / pi_behav = 2 on every token: the loss doubles; capped at 1.5 it is x1.5.
    behaviour = prox - math.log(2.0)
    doubled, _ = decoupled_ppo_loss(logp, prox, behaviour, adv, mask)
    capped, _ = decoupled_ppo_loss(logp, prox, behaviour, adv, mask, behaviour_cap=1.5)
    assert doubled.item() == pytest.approx(2 * plain.item())
    assert capped.item() == pytest.approx(1.5 * plain.item())


def test_without_drift_every_correction_is_plain_grpo():
    """Synchronous training (eta = 0) with no train/inference mismatch: all ratios are 1."""
    torch.manual_seed(0)
    logp = (-torch.rand(3, 5)).requires_grad_()
    same = logp.detach().clone()
    adv = torch.randn(3)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.float)

    def value_and_grad(fn):
        logp.grad = None
        loss, _ = fn()
        loss.backward()
        return loss.item(), logp.grad.clone()

    grpo = value_and_grad(lambda: policy_loss(logp, same, adv, mask))
    variants = [
        lambda: policy_loss(logp, same, adv, mask, weights=tis_weights(same, same)),
        lambda: policy_loss(logp, same, adv, mask, weights=icepop_weights(same, same)),
        lambda: direct_is_loss(logp, same, adv, mask),
        lambda: decoupled_ppo_loss(logp, same, same, adv, mask),
    ]
    expected = -(adv[:, None] * mask).sum() / mask.sum()  # on-policy policy-gradient value
    assert grpo[0] == pytest.approx(expected.item())
    for variant in variants:
        value, grad = value_and_grad(variant)
        assert value == pytest.approx(grpo[0])
        assert torch.allclose(grad, grpo[1])
