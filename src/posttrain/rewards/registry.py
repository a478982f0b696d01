"""Name → reward-function lookup, so configs can say `exact_match` or `my_pkg.rewards:judge`.

A reward is never wrapped on the way in or out: what `get_reward` returns is the plain callable,
which is what lets it go to TRL's `GRPOTrainer(reward_funcs=...)` or verl unchanged.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

RewardFunc = Callable[..., list[float | None] | Awaitable[list[float | None]]]
"""TRL's reward-function shape: `fn(prompts, completions, completion_ids=None, **columns)`."""

_F = TypeVar("_F", bound=Callable[..., Any])
_REGISTRY: dict[str, RewardFunc] = {}


def register_reward(name: str) -> Callable[[_F], _F]:
    """Decorator that makes `fn` findable by `get_reward(name)`; the function itself is unchanged.

    Names may not contain `.` or `:`, because those mark an import path in `get_reward`.
    """
    if not name or "." in name or ":" in name:
        raise ValueError(f"invalid reward name {name!r}: it must be non-empty, without '.' or ':'")

    def decorator(fn: _F) -> _F:
        if name in _REGISTRY:
            raise ValueError(f"reward {name!r} is already registered (to {_REGISTRY[name]!r})")
        _REGISTRY[name] = fn
        return fn

    return decorator


def reward_names() -> list[str]:
    """The registered reward names, sorted."""
    return sorted(_REGISTRY)


REWARD_MODEL_PREFIX = "reward-model:"
"""`reward-model:DIR[?OPTIONS]` or `reward-model:http://HOST:PORT` (a `posttrain serve-rm`
server): a Bradley–Terry or ordinal reward model as a reward function, scoring whole
conversations through the model's chat template. OPTIONS load a directory's model:
`?torch_dtype=bfloat16&device=cuda:1` (also `batch_size`, `max_length`; see
`posttrain.rewards.reward_model.MODEL_OPTIONS`). A hyphen cannot start a module path, so no
clash."""


def get_reward(spec: str) -> RewardFunc:
    """Resolve a registered name, a reward model (`reward-model:DIR_OR_URL`), or an import path
    `pkg.module:function` / `pkg.module.function`.

    The colon form also reaches attributes of module objects (`pkg.module:Class.method`).
    """
    if spec in _REGISTRY:
        return _REGISTRY[spec]
    if spec.startswith(REWARD_MODEL_PREFIX):
        return _reward_model(spec.removeprefix(REWARD_MODEL_PREFIX))
    if ":" in spec:
        module_name, _, attr_path = spec.partition(":")
    elif "." in spec:
        module_name, _, attr_path = spec.rpartition(".")
    else:
        raise ValueError(
            f"unknown reward {spec!r}: use a registered name ({', '.join(reward_names())}) "
            "or an import path such as 'package.module:function'"
        )
    if not module_name or not attr_path:
        raise ValueError(f"malformed reward path {spec!r}; expected 'package.module:function'")
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:  # any import-time failure is a bad spec from the caller's view
        raise ValueError(f"cannot import module {module_name!r} (reward {spec!r}): {exc}") from exc
    for attr in attr_path.split("."):
        if not hasattr(target, attr):
            raise ValueError(f"module {module_name!r} has no {attr_path!r} (reward {spec!r})")
        target = getattr(target, attr)
    if not callable(target):
        raise ValueError(f"reward {spec!r} resolved to a non-callable {type(target).__name__}")
    return target


@functools.cache  # one loaded model per spec, however many configs name it
def _reward_model(where: str) -> RewardFunc:
    from pathlib import Path

    from posttrain.rewards.reward_model import RewardModel, parse_model_spec, reward_model_reward

    if where.startswith(("http://", "https://")):
        from posttrain.rewards.reward_model_server import HTTPRewardModel

        return reward_model_reward(HTTPRewardModel(where), name="reward_model")
    where, options = parse_model_spec(where)
    if not Path(where).is_dir():
        raise ValueError(f"reward model {where!r}: no such directory (or http(s):// URL)")
    from posttrain.rewards.ordinal import META_FILE, OrdinalRewardModel

    if (Path(where) / META_FILE).is_file():  # WildReward's ordinal head: the expected label
        return reward_model_reward(OrdinalRewardModel(where, **options), name="reward_model")
    return reward_model_reward(RewardModel(where, **options), name="reward_model")


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
