"""Text environments for agentic (multi-turn) RL."""

from posttrain.envs import arithmetic  # noqa: F401  (registers the built-in environments)
from posttrain.envs.base import Env
from posttrain.envs.registry import env_factory, register_env

__all__ = ["Env", "env_factory", "register_env"]
