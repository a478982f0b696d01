"""Text environments for agentic (multi-turn) RL."""

# Imported so that the built-in environments register themselves.
from posttrain.envs import arithmetic, arithmetic_tool, latency  # noqa: F401
from posttrain.envs.base import Env
from posttrain.envs.registry import env_factory, register_env

__all__ = ["Env", "env_factory", "register_env"]
