"""Reward functions for RL: plain callables with TRL's reward-function signature.

`fn(prompts, completions, completion_ids=None, **columns) -> list[float | None]`, so any of them
drops into TRL's `GRPOTrainer(reward_funcs=[...])` unchanged, and into verl through
`to_verl_compute_score`. `get_reward` finds one by spec (a name, `reward-model:DIR`, an import
path); the built-in names are registered on its first lookup, so importing this package stays
cheap.
"""

from posttrain.rewards.builtin import (
    completion_text,
    exact_match,
    numeric_match,
    numeric_match_reward,
    think_format,
)
from posttrain.rewards.registry import RewardFunc, register_reward
from posttrain.rewards.reward_set import RewardResult, RewardSet
from posttrain.rewards.spec import get_reward, reward_names
from posttrain.rewards.verl import to_verl_compute_score

__all__ = [
    "RewardFunc",
    "RewardResult",
    "RewardSet",
    "completion_text",
    "exact_match",
    "get_reward",
    "numeric_match",
    "numeric_match_reward",
    "register_reward",
    "reward_names",
    "think_format",
    "to_verl_compute_score",
]
