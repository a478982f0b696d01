"""The reward-function shape and the table of reward names.

`register_reward("name")` puts a function in the table; `posttrain.rewards.spec.get_reward`
turns a spec (a name, `reward-model:DIR`, `my_pkg.rewards:judge`) into a reward function and
loads the built-in rewards into the table on its first lookup. This module imports no other
reward module, so every one of them may import it.

A reward is never wrapped on the way in or out: the table holds the plain callable, which is
what lets it go to TRL's `GRPOTrainer(reward_funcs=...)` or verl unchanged.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

RewardFunc = Callable[..., list[float | None] | Awaitable[list[float | None]]]
"""TRL's reward-function shape: `fn(prompts, completions, completion_ids=None, **columns)`."""

_F = TypeVar("_F", bound=Callable[..., Any])
_REGISTRY: dict[str, RewardFunc] = {}


def register_reward(name: str) -> Callable[[_F], _F]:
    """Decorator that makes `fn` findable by `get_reward(name)`; the function itself is unchanged.

    Names may not contain `.` or `:`, because those mark an import path in a reward spec.
    """
    if not name or "." in name or ":" in name:
        raise ValueError(f"invalid reward name {name!r}: it must be non-empty, without '.' or ':'")

    def decorator(fn: _F) -> _F:
        if name in _REGISTRY:
            raise ValueError(f"reward {name!r} is already registered (to {_REGISTRY[name]!r})")
        _REGISTRY[name] = fn
        return fn

    return decorator


def registered() -> Mapping[str, RewardFunc]:
    """The table as it stands (read-only): only what has been registered so far."""
    return MappingProxyType(_REGISTRY)


def _unwrap(fn: Any) -> Any:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return fn


def reward_name(fn: RewardFunc) -> str:
    """The name TRL logs a reward under: `__name__`, through partials, else the class name."""
    fn = _unwrap(fn)
    return getattr(fn, "__name__", type(fn).__name__)


def is_async_reward(fn: RewardFunc) -> bool:
    """Whether calling `fn` returns a coroutine: async functions, partials of them, and instances
    with an async `__call__` (the forms TRL also runs as async)."""
    fn = _unwrap(fn)
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)
