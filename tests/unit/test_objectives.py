"""Policy losses and advantage estimators by registered name or dotted path."""

import pytest
import torch

from posttrain.rl.config import LossConfig
from posttrain.rl.objectives import (
    POLICY_LOSSES,
    PolicyLoss,
    advantage_estimator,
    policy_loss,
    ppo_loss,
)


def test_built_in_kinds_are_registered_entries():
    assert {"ppo", "direct_is", "decoupled_ppo", "online_dpo"} <= set(POLICY_LOSSES)
    assert policy_loss("ppo").fn is ppo_loss
    assert policy_loss("online_dpo").rows_together == 2


def test_a_dotted_path_names_a_loss_or_a_plain_function():
    assert policy_loss("posttrain.rl.objectives.ppo_loss").fn is ppo_loss
    assert isinstance(policy_loss("posttrain.rl.objectives:ppo_loss"), PolicyLoss)


def test_unknown_names_list_the_registered_ones():
    with pytest.raises(ValueError, match=r"unknown loss.kind 'nope'.*ppo"):
        policy_loss("nope")
    with pytest.raises(ValueError, match=r"unknown loss.advantage 'nah'.*rloo"):
        advantage_estimator("nah")
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        policy_loss("no_such_module.loss")


def test_rloo_subtracts_the_mean_of_the_other_samples():
    rewards = torch.tensor([1.0, 0.0, 0.0, 2.0, 2.0, 2.0])
    # group 1: 1 - 0 = 1, 0 - 0.5 = -0.5 (twice); group 2: all equal -> 0.
    got = advantage_estimator("rloo")(rewards, 3, LossConfig())
    torch.testing.assert_close(got, torch.tensor([1.0, -0.5, -0.5, 0.0, 0.0, 0.0]))


def test_grpo_follows_scale_advantages():
    rewards = torch.tensor([1.0, 0.0])
    grpo = advantage_estimator("grpo")
    unscaled = grpo(rewards, 2, LossConfig(scale_advantages=False))
    torch.testing.assert_close(unscaled, torch.tensor([0.5, -0.5]))
    scaled = grpo(rewards, 2, LossConfig())
    assert scaled[0] > unscaled[0]  # divided by the group std (0.707)
