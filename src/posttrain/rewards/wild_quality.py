"""The WildReward generator's own quality judge as a reward function.

`posttrain.data.wild_conversations.reply_quality` scores any reply to a held-out prompt in
[1, 5] from the task's oracle facts (the right number, the capital, a refusal of a harmful
request...). An RL run logs it beside the reward model it trains on (with weight 0), so a
rising reward-model score can be checked against a judge the reward model never saw.
"""

from __future__ import annotations

from typing import Any

from posttrain.data.wild_conversations import reply_quality
from posttrain.rewards.builtin import completion_text
from posttrain.rewards.registry import register_reward


@register_reward("wild_reply_quality")
def wild_reply_quality(
    prompts: list[Any],
    completions: list[Any],
    completion_ids: list[Any] | None = None,
    oracle: list[Any] | None = None,
    **columns: Any,
) -> list[float | None]:
    """Quality in [1, 5] per completion; None for rows without an `oracle` column."""
    if oracle is None:
        return [None] * len(completions)
    return [
        None if facts is None else reply_quality({"oracle": facts}, completion_text(completion))
        for facts, completion in zip(oracle, completions, strict=True)
    ]
