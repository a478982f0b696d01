"""Text environments for agentic (multi-turn) RL."""

# Imported so that the built-in environments register themselves.
# `household_env` (`textworld`) registers without TextWorld installed: it imports TextWorld
# only when an environment is built, which raises an ImportError naming the `textworld` extra.
from posttrain.envs import arithmetic, arithmetic_tool, household_env, latency, webshop  # noqa: F401
from posttrain.envs.base import Env
from posttrain.envs.registry import env_factory, register_env

__all__ = ["Env", "env_factory", "register_env"]
