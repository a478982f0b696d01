"""An expert's episode as the chat a policy is cloned on, played through the environment."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from posttrain.envs.base import Env


def play_expert(
    env: Env, task: dict[str, Any], next_command: Callable[[Any, int], str | None]
) -> tuple[list[dict[str, str]], bool]:
    """Reset `env` on `task` and play `next_command(env, step)` (step counts from 0) until
    the episode ends or it returns None: the observations as `user` turns and the commands
    as `assistant` turns, as multi-turn rollout records them (no observation after the last
    action), and whether the episode was won (`info["won"]` of its last step)."""
    messages = [{"role": "user", "content": env.reset(task)}]
    step = 0
    while (command := next_command(env, step)) is not None:
        step += 1
        observation, _, done, info = env.step(command)
        messages.append({"role": "assistant", "content": command})
        if done:
            return messages, bool(info.get("won"))
        messages.append({"role": "user", "content": observation})
    return messages, False
