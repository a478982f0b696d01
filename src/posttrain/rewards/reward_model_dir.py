"""`load_reward_model_dir`: the reward model a directory holds, loaded as what it is.

A reward-model directory is WildReward's ordinal model when it holds ordinal.json (it scores
the expected label) and a Bradley–Terry model otherwise; `posttrain.specs.describe_model_dir`
says which. `reward-model:DIR` in RL, a DIR given to rm-bench or best-of-n, and
`posttrain serve-rm DIR` all load through here, so a directory scores the same everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posttrain.rewards.ordinal import OrdinalRewardModel
from posttrain.rewards.reward_model import RewardModel
from posttrain.specs import ModelKind, describe_model_dir


def load_reward_model_dir(
    model_dir: str | Path, **options: Any
) -> RewardModel | OrdinalRewardModel:
    """The reward model in `model_dir`; `options` (batch_size, max_length, device, torch_dtype)
    go to its constructor. Anything but a local ordinal directory goes to `RewardModel`, which
    also takes a Hugging Face Hub name and names a path that holds no model."""
    local = Path(model_dir).expanduser()
    if local.is_dir() and describe_model_dir(local).kind is ModelKind.ORDINAL:
        return OrdinalRewardModel(model_dir, **options)
    return RewardModel(model_dir, **options)
