"""GiGPO advantages on a hand-built group, their placement on tokens, and GRPO unchanged."""

import math
import statistics

import pytest
import torch

from posttrain.rl import losses
from posttrain.rl.config import LossConfig
from posttrain.rl.objectives import SampleAdvantage, advantage_estimator, assign_advantages
from posttrain.rl.sample import Sample, Turn
from posttrain.rl.update import tensorize

EPS = 1e-4


def trajectory(states, rewards, *, group=0, extra_reward=0.0, action_len=2, gap_len=3):
    """A sample whose turn t acts on states[t] with reward rewards[t]; actions of
    `action_len` tokens separated by `gap_len` environment tokens."""
    turns, ids, mask = [], [], []
    for t, (state, reward) in enumerate(zip(states, rewards, strict=True)):
        if t:
            ids += [7] * gap_len
            mask += [0] * gap_len
        start = len(ids)
        ids += [5] * action_len
        mask += [1] * action_len
        turns.append(Turn(state, f"a{t}", "next", reward, start, len(ids)))
    return Sample(
        prompt_ids=[1, 2],
        response_ids=ids,
        loss_mask=mask,
        rollout_logprobs=[0.0] * len(ids),
        group_id=group,
        reward=sum(rewards) + extra_reward,
        turn_records=turns,
    )


def hand_group():
    # A: s0 -> s1 -> end (reward 1 at the end); B: s0 -> s2 -> end (0);
    # C: s0 -> s1 -> s1 -> end (1). Anchors: s0 {A0, B0, C0}, s1 {A1, C1, C2}, s2 {B1} alone.
    return [
        trajectory(["s0", "s1"], [0.0, 1.0]),
        trajectory(["s0", "s2"], [0.0, 0.0]),
        trajectory(["s0", "s1", "s1"], [0.0, 0.0, 1.0]),
    ]


def normalised(values, scale=True):
    mean = statistics.fmean(values)
    std = statistics.stdev(values)
    return [(v - mean) / (std + EPS) if scale else v - mean for v in values]


def test_gigpo_on_a_hand_built_group():
    config = LossConfig(advantage="gigpo")
    config.gigpo.gamma, config.gigpo.omega = 0.5, 0.5
    samples = hand_group()
    metrics = assign_advantages(advantage_estimator("gigpo"), samples, 3, config)
    episode = normalised([1.0, 0.0, 1.0])
    # Discounted returns, gamma 0.5: A [0.5, 1], B [0, 0], C [0.25, 0.5, 1].
    s0 = normalised([0.5, 0.0, 0.25])  # A0, B0, C0
    s1 = normalised([1.0, 0.5, 1.0])  # A1, C1, C2
    step = {(0, 0): s0[0], (1, 0): s0[1], (2, 0): s0[2], (0, 1): s1[0], (2, 1): s1[1]}
    step[(2, 2)], step[(1, 1)] = s1[2], 0.0  # B1 has no partner: 0
    assert s0[2] == pytest.approx(0.0)
    assert s1[0] == pytest.approx(1 / 6 / (math.sqrt(1 / 12) + EPS))
    for i, sample in enumerate(samples):
        assert sample.advantage == pytest.approx(episode[i])
        for t, turn in enumerate(sample.turn_records):
            want = episode[i] + 0.5 * step[(i, t)]
            assert sample.token_advantages[turn.start : turn.end] == pytest.approx(
                [want] * (turn.end - turn.start), abs=1e-6
            )
    assert metrics["gigpo/anchor_groups"] == 2.0
    assert metrics["gigpo/anchored_turn_frac"] == pytest.approx(6 / 7)


def test_step_normalize_off_only_centres_and_function_rewards_go_to_the_last_turn():
    config = LossConfig(advantage="gigpo", scale_advantages=False)
    config.gigpo.gamma, config.gigpo.omega, config.gigpo.step_normalize = 1.0, 1.0, False
    # Both reach s1; B's reward functions add 2 to its total, counted at its last turn.
    samples = [
        trajectory(["s0", "s1"], [0.0, 1.0]),
        trajectory(["s0", "s1"], [0.0, 0.0], extra_reward=2.0),
    ]
    assign_advantages(advantage_estimator("gigpo"), samples, 2, config)
    # Episode: totals 1 and 2 -> -0.5, 0.5. Returns (gamma 1): A [1, 1], B [2, 2].
    a, b = samples
    assert a.token_advantages[a.turn_records[0].start] == pytest.approx(-0.5 - 0.5)
    assert b.token_advantages[b.turn_records[1].start] == pytest.approx(0.5 + 0.5)


def test_gigpo_without_turns_is_grpo_and_grpo_batches_are_unchanged():
    assert isinstance(advantage_estimator("gigpo"), SampleAdvantage)
    rewards = [0.0, 1.0, 1.0, 0.5, 0.0, 0.25]

    def singles():
        return [
            Sample([1], [3, 4], [1, 1], [0.0, 0.0], group_id=i // 3, reward=r)
            for i, r in enumerate(rewards)
        ]

    grpo, gigpo = singles(), singles()
    assign_advantages(advantage_estimator("grpo"), grpo, 3, LossConfig())
    assign_advantages(advantage_estimator("gigpo"), gigpo, 3, LossConfig())
    expected = losses.group_advantages(torch.tensor(rewards), 3).tolist()
    assert [s.advantage for s in grpo] == expected == [s.advantage for s in gigpo]
    assert all(s.token_advantages is None for s in gigpo)
    batch = tensorize(grpo, pad_id=0)
    assert batch["advantages"].shape == (6,)  # scalar per sample, as before
    assert batch["advantages"].tolist() == pytest.approx(expected)


def test_per_token_advantages_reach_the_policy_loss_on_their_tokens():
    samples = hand_group()
    config = LossConfig(advantage="gigpo")
    assign_advantages(advantage_estimator("gigpo"), samples, 3, config)
    samples.append(Sample([1, 2], [5, 6], [1, 1], [0.0, 0.0], group_id=1, advantage=0.75))
    batch = tensorize(samples, pad_id=0)
    adv, mask = batch["advantages"], batch["mask"]
    assert adv.shape == mask.shape
    for i, sample in enumerate(samples):
        start = len(sample.prompt_ids) - 1
        row = adv[i, start : start + len(sample.response_ids)].tolist()
        assert row == pytest.approx(sample.token_advantages or [0.75, 0.75])
    # A per-token advantage equal everywhere gives the scalar's loss and gradient.
    logp = torch.randn(mask.shape, requires_grad=True)
    scalar = torch.full((len(samples),), 0.3)
    first, _ = losses.policy_loss(logp, logp.detach(), scalar, mask)
    (grad_scalar,) = torch.autograd.grad(first, logp)
    second, _ = losses.policy_loss(logp, logp.detach(), scalar[:, None].expand_as(mask), mask)
    (grad_tokens,) = torch.autograd.grad(second, logp)
    assert first.item() == second.item() and torch.equal(grad_scalar, grad_tokens)


def test_token_advantages_of_the_wrong_length_are_an_error():
    sample = trajectory(["s0"], [1.0])
    sample.token_advantages = [0.0]
    with pytest.raises(ValueError, match="token_advantages"):
        tensorize([sample], pad_id=0)
