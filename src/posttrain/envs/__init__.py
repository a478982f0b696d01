"""Text environments for agentic (multi-turn) RL."""

# Imported so that the built-in environments register themselves.
# `household_env` (`textworld`) and `alfworld_env` (`alfworld`) register without their packages
# installed: each imports its package only when an environment is built, which raises an
# ImportError naming its extra.
from posttrain.envs import (  # noqa: F401
    alfworld_env,
    arithmetic,
    arithmetic_tool,
    household_env,
    latency,
    webshop,
)
from posttrain.envs.base import Env
from posttrain.envs.registry import env_factory, register_env

__all__ = ["Env", "env_factory", "register_env"]
