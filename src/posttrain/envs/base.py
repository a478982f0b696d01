"""The environment protocol multi-turn rollout speaks, gym-style but with text actions."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Env(Protocol):
    """A text environment: the policy's reply is the action, the reply to it the observation."""

    def reset(self, task: dict[str, Any]) -> str:
        """Start an episode for `task` (a dataset row); return the first observation."""
        ...

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        """Apply the policy's reply; return (observation, reward, done, info)."""
        ...
