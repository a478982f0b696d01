"""Reward functions for RL: plain callables with TRL's reward-function signature.

`fn(prompts, completions, completion_ids=None, **columns) -> list[float | None]`, so any of them
drops into TRL's `GRPOTrainer(reward_funcs=[...])` unchanged, and into verl through
`to_verl_compute_score`. Importing this package registers the built-ins by name.
"""

from posttrain.rewards import (
    biases,  # noqa: F401  (registers CHERRL's rubric_main, via judge, and the scripted judges)
    rubric,  # noqa: F401  (registers the LongTraceRL rewards)
    wild_quality,  # noqa: F401  (registers WildReward's judge)
)
from posttrain.rewards.builtin import (
    completion_text,
    exact_match,
    numeric_match,
    numeric_match_reward,
    think_format,
)
from posttrain.rewards.combine import RewardResult, RewardSet
from posttrain.rewards.registry import RewardFunc, get_reward, register_reward, reward_names
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
