"""Online DPO's pair selection and loss against hand-computed values."""

import math

import pytest
import torch

from posttrain.rl.config import RLConfig
from posttrain.rl.losses import token_logprobs
from posttrain.rl.online_dpo import check_config, dpo_loss, select_pairs, sequence_logprobs

NAN = float("nan")


def softplus(x: float) -> float:
    """-log sigmoid(-x) = log(1 + e^x), the DPO loss at logit -x."""
    return math.log1p(math.exp(x))


# --- pair selection -----------------------------------------------------------------------


def test_picks_the_best_and_worst_sample_of_each_group():
    groups = [0, 0, 0, 1, 1, 1]
    rewards = [0.2, 0.9, 0.1, 0.4, 0.3, 0.8]
    selection = select_pairs(groups, rewards)
    assert selection.pairs == [(1, 2), (5, 4)]
    assert selection.skipped == 0


def test_groups_whose_rewards_all_agree_are_skipped_and_counted():
    groups = [0, 0, 1, 1, 2, 3, 3]
    rewards = [1.0, 1.0, 0.0, 1.0, 0.7, 0.0, 0.0]
    selection = select_pairs(groups, rewards)
    # Group 0 ties, group 2 has one sample, group 3 ties at 0: only group 1 forms a pair.
    assert selection.pairs == [(3, 2)]
    assert selection.skipped == 3


def test_ties_at_the_top_or_bottom_go_to_the_earliest_sample():
    selection = select_pairs([7, 7, 7, 7], [0.0, 1.0, 0.0, 1.0])
    assert selection.pairs == [(1, 0)]


def test_groups_need_not_be_contiguous_and_keep_their_first_appearance_order():
    selection = select_pairs([5, 2, 5, 2], [0.0, 3.0, 1.0, 2.0])
    assert selection.pairs == [(2, 0), (1, 3)]


def test_non_finite_rewards_are_left_out_of_their_group():
    selection = select_pairs([0, 0, 0, 1, 1], [NAN, 1.0, 0.0, NAN, 2.0])
    assert selection.pairs == [(1, 2)]
    assert selection.skipped == 1  # group 1 has a single rankable sample


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="group ids"):
        select_pairs([0, 0], [1.0])


# --- sequence log-probs -------------------------------------------------------------------


def test_sequence_logprobs_sum_over_the_mask_and_ignore_garbage():
    logp = torch.tensor([[-1.0, -2.0, NAN], [float("-inf"), -0.5, -0.25]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    total = sequence_logprobs(logp, mask)
    torch.testing.assert_close(total, torch.tensor([-3.0, -0.75]))
    total.sum().backward()
    torch.testing.assert_close(logp.grad, mask)


# --- the loss -----------------------------------------------------------------------------


def test_dpo_loss_matches_a_hand_computed_example():
    # Pair 1: (pi_c - ref_c) = -2 - -2.5 = 0.5, (pi_r - ref_r) = -3 - -2.5 = -0.5,
    #   z = 1.0, beta z = 0.1, loss = log(1 + e^-0.1) = 0.6443967.
    # Pair 2: (pi_c - ref_c) = -4 - -4 = 0, (pi_r - ref_r) = -1 - -3 = 2,
    #   z = -2.0, beta z = -0.2, loss = log(1 + e^0.2) = 0.7981389.
    loss, metrics = dpo_loss(
        torch.tensor([-2.0, -4.0]),
        torch.tensor([-3.0, -1.0]),
        torch.tensor([-2.5, -4.0]),
        torch.tensor([-2.5, -3.0]),
        beta=0.1,
    )
    assert loss.item() == pytest.approx((softplus(-0.1) + softplus(0.2)) / 2, abs=1e-6)
    assert loss.item() == pytest.approx((0.6443967 + 0.7981389) / 2, abs=1e-6)
    assert metrics["rewards/chosen"] == pytest.approx((0.05 + 0.0) / 2)
    assert metrics["rewards/rejected"] == pytest.approx((-0.05 + 0.2) / 2)
    assert metrics["rewards/margins"] == pytest.approx((0.1 - 0.2) / 2)
    assert metrics["rewards/accuracies"] == pytest.approx(0.5)
    assert metrics["logps/chosen"] == pytest.approx(-3.0)
    assert metrics["logps/rejected"] == pytest.approx(-2.0)


def test_the_reference_term_makes_an_unmoved_policy_score_log_2():
    # Before any update the policy is the reference: whatever the responses' log-probs,
    # every logit is 0 and the loss is -log sigmoid(0) = log 2.
    chosen, rejected = torch.tensor([-1.0, -7.5]), torch.tensor([-5.0, -0.2])
    loss, metrics = dpo_loss(chosen, rejected, chosen.clone(), rejected.clone(), beta=0.1)
    assert loss.item() == pytest.approx(math.log(2))
    assert metrics["rewards/margins"] == 0.0
    assert metrics["rewards/accuracies"] == 0.0
    # Without the reference term the same policy would already look trained (or untrained).
    zero = torch.zeros(2)
    no_ref, _ = dpo_loss(chosen, rejected, zero, zero, beta=0.1)
    assert no_ref.item() != pytest.approx(math.log(2))


def test_the_gradient_pushes_chosen_up_and_rejected_down():
    chosen = torch.tensor([-2.0], requires_grad=True)
    rejected = torch.tensor([-2.0], requires_grad=True)
    loss, _ = dpo_loss(chosen, rejected, torch.tensor([-2.0]), torch.tensor([-2.0]), beta=0.1)
    loss.backward()
    # d/d pi_c of -log sigmoid(beta z) at z = 0 is -beta * sigmoid(0) = -0.05; +0.05 for pi_r.
    assert chosen.grad.item() == pytest.approx(-0.05)
    assert rejected.grad.item() == pytest.approx(0.05)


def test_a_gradient_step_raises_chosen_and_lowers_rejected_token_probabilities():
    # A unigram "policy" over 3 tokens at every position; chosen says [0, 0], rejected [1, 1].
    logits = torch.zeros(3, requires_grad=True)
    targets = torch.tensor([[0, 0], [1, 1]])
    mask = torch.ones(2, 2)

    def sums() -> torch.Tensor:
        return sequence_logprobs(token_logprobs(logits.expand(2, 2, 3), targets), mask)

    before = sums().detach()
    policy = sums()
    loss, _ = dpo_loss(policy[:1], policy[1:], before[:1], before[1:], beta=0.1)
    loss.backward()
    with torch.no_grad():
        logits -= 1.0 * logits.grad
    after = sums().detach()
    assert after[0] > before[0]  # chosen response more likely
    assert after[1] < before[1]  # rejected response less likely


def test_loss_refuses_bad_shapes_and_beta():
    one, two = torch.zeros(1), torch.zeros(2)
    with pytest.raises(ValueError, match="shape"):
        dpo_loss(one, two, one, one)
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(one, one, one, one, beta=0.0)


# --- configuration ------------------------------------------------------------------------


def online(**loss) -> RLConfig:
    config = RLConfig()
    config.loss.kind = "online_dpo"
    for key, value in {"kl_coef": 0.1, **loss}.items():
        setattr(config.loss, key, value)
    return config


def test_config_checks_name_the_setting_to_fix():
    check_config(online())
    with pytest.raises(ValueError, match="kl_coef"):
        check_config(online(kl_coef=0.0))
    with pytest.raises(ValueError, match="tis_cap"):
        check_config(online(tis_cap=2.0))
    single = online()
    single.rollout.n = 1
    with pytest.raises(ValueError, match="rollout.n"):
        check_config(single)


def test_online_dpo_is_a_loss_kind_the_yaml_loader_accepts():
    from posttrain.config import load_config

    config = load_config(RLConfig, None, ["loss.kind=online_dpo", "loss.kl_coef=0.1"])
    assert config.loss.kind == "online_dpo" and config.loss.kl_coef == 0.1
