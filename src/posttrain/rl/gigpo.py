"""GiGPO advantages (Feng et al. 2025, "Group-in-Group Policy Optimization for LLM Agent
Training"; the rules as verl-agent's `gigpo/core_gigpo.py` applies them).

For each group of trajectories of the same task:
- episode advantage: GRPO's, from each trajectory's total reward (`losses.group_advantages`,
  std-scaled when `loss.scale_advantages`);
- step return of turn t: r_t + gamma r_t+1 + gamma^2 r_t+2 + ... over the trajectory's later
  step rewards (the paper's discounted return);
- anchor groups: the turns of the group's trajectories whose observation before acting (the
  anchor state s_t) is the same text, exactly; a turn's step advantage is its return minus
  its anchor group's mean, divided by the group's std (+ eps) when `gigpo.step_normalize`;
  a turn with no partner gets 0 (its group's mean is itself);
- each turn's action tokens carry episode advantage + omega x step advantage.

Step rewards are the environment's per-step rewards; what the reward functions add to a
trajectory (scored on its final reply) counts as a reward of its last turn. Written here
rather than imported because verl-agent's code is tied to verl's DataProto batches.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import torch

from posttrain.rl import losses

if TYPE_CHECKING:
    from posttrain.rl.config import LossConfig
    from posttrain.rl.sample import Sample

_EPS = 1e-4
"""As `losses.group_advantages`, so both levels scale alike."""


def discounted_returns(rewards: list[float], gamma: float) -> list[float]:
    """G_t = r_t + gamma G_t+1, from the last step back."""
    returns = [0.0] * len(rewards)
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def step_rewards(sample: Sample) -> list[float]:
    """Each turn's environment reward; the rest of the sample's reward (reward functions)
    goes to its last turn."""
    rewards = [turn.reward for turn in sample.turn_records]
    if rewards:
        rewards[-1] += sample.reward - sum(rewards)
    return rewards


def anchor_advantages(returns: list[float], normalize: bool) -> list[float]:
    """Step advantages of the turns of one anchor group (0 for a group of one)."""
    if len(returns) < 2:
        return [0.0] * len(returns)
    values = torch.tensor(returns, dtype=torch.float64)
    centred = values - values.mean()
    if normalize:
        centred = centred / (values.std() + _EPS)
    return centred.tolist()


def gigpo_advantages(
    samples: list[Sample], group_size: int, config: LossConfig
) -> dict[str, float]:
    """Set `advantage` (the episode advantage) and, for multi-turn samples,
    `token_advantages` on `samples` (consecutive groups of `group_size`); return metrics."""
    settings = config.gigpo
    if not 0.0 <= settings.gamma <= 1.0:
        raise ValueError(f"loss.gigpo.gamma must lie in [0, 1], got {settings.gamma}")
    rewards = torch.tensor([s.reward for s in samples])
    episode = losses.group_advantages(rewards, group_size, scale=config.scale_advantages).tolist()
    step_adv: dict[tuple[int, int], float] = {}
    anchored = turns = anchor_groups = 0
    for first in range(0, len(samples), group_size):
        by_anchor: dict[str, list[tuple[int, int, float]]] = defaultdict(list)
        for i in range(first, first + group_size):
            returns = discounted_returns(step_rewards(samples[i]), settings.gamma)
            for t, (turn, value) in enumerate(zip(samples[i].turn_records, returns, strict=True)):
                by_anchor[turn.observation].append((i, t, value))
        for members in by_anchor.values():
            turns += len(members)
            if len(members) > 1:
                anchored += len(members)
                anchor_groups += 1
            advantages = anchor_advantages([m[2] for m in members], settings.step_normalize)
            for (i, t, _), advantage in zip(members, advantages, strict=True):
                step_adv[(i, t)] = advantage
    for i, sample in enumerate(samples):
        sample.advantage = episode[i]
        if not sample.turn_records:
            sample.token_advantages = None  # single turn: GiGPO is GRPO
            continue
        per_token = [episode[i]] * len(sample.response_ids)
        for t, turn in enumerate(sample.turn_records):
            value = episode[i] + settings.omega * step_adv[(i, t)]
            per_token[turn.start : turn.end] = [value] * (turn.end - turn.start)
        sample.token_advantages = per_token
    return {
        "gigpo/anchor_groups": float(anchor_groups),
        "gigpo/anchored_turn_frac": anchored / turns if turns else 0.0,
        "gigpo/step_adv_abs_mean": (
            sum(abs(v) for v in step_adv.values()) / len(step_adv) if step_adv else 0.0
        ),
    }
