"""Adapter from a TRL-style reward function to verl's per-sample `compute_score`.

verl's reward managers call `compute_score(data_source=..., solution_str=...,
ground_truth=..., extra_info=...)` once per response with keyword arguments, and append the
config's `custom_reward_function.reward_kwargs` as further keyword arguments; the returned
function forwards those unchanged (winning over a same-named column, as in verl). verl awaits a
`compute_score` that is a coroutine function, so an async reward becomes an async one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from posttrain.rewards.registry import RewardFunc, is_async_reward, reward_name

_RESERVED = ("prompts", "completions", "completion_ids")


def _trl_kwargs(
    data_source: Any, solution_str: str, ground_truth: Any, extra_info: dict[str, Any] | None
) -> dict[str, Any]:
    """One-sample TRL call: `extra_info` keys become one-element columns, `prompt` the prompt.

    `answer` always comes from `ground_truth` (verl's GSM8K data, for one, also keeps the full
    worked solution under `extra_info["answer"]`), and `data_source` is passed as a column too.
    """
    extra = dict(extra_info or {})
    clash = [key for key in _RESERVED if key in extra]
    if clash:
        raise ValueError(f"extra_info keys {clash} clash with reward-function arguments")
    prompt = extra.pop("prompt", "")
    columns = {key: [value] for key, value in extra.items()}
    columns["answer"] = [ground_truth]
    columns["data_source"] = [data_source]
    return {"prompts": [prompt], "completions": [solution_str], "completion_ids": [None], **columns}


def _score(name: str, output: list[float | None]) -> float:
    if len(output) != 1:
        raise ValueError(f"reward function {name!r} returned {len(output)} rewards for 1 response")
    reward = output[0]
    return 0.0 if reward is None else float(reward)


def to_verl_compute_score(
    fn: RewardFunc,
) -> Callable[..., float] | Callable[..., Awaitable[float]]:
    """Wrap `fn` as verl's `compute_score(data_source, solution_str, ground_truth, extra_info)`.

    A None reward (not applicable) scores 0.0, since verl needs a number for every response.
    """
    name = reward_name(fn)

    if is_async_reward(fn):

        async def compute_score_async(
            data_source: Any,
            solution_str: str,
            ground_truth: Any,
            extra_info: dict[str, Any] | None = None,
            **reward_kwargs: Any,
        ) -> float:
            kwargs = _trl_kwargs(data_source, solution_str, ground_truth, extra_info)
            return _score(name, await fn(**{**kwargs, **reward_kwargs}))

        compute_score_async.__name__ = compute_score_async.__qualname__ = name
        return compute_score_async

    def compute_score(
        data_source: Any,
        solution_str: str,
        ground_truth: Any,
        extra_info: dict[str, Any] | None = None,
        **reward_kwargs: Any,
    ) -> float:
        kwargs = _trl_kwargs(data_source, solution_str, ground_truth, extra_info)
        return _score(name, fn(**{**kwargs, **reward_kwargs}))

    compute_score.__name__ = compute_score.__qualname__ = name
    return compute_score
