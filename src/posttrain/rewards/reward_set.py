"""Several reward functions scored together, with TRL's weighting and None semantics.

`RewardSet` is for code that drives rewards itself (posttrain's RL engine, evaluation); the
functions it holds stay plain TRL reward functions, so the same list can be handed to
`GRPOTrainer(reward_funcs=..., args=GRPOConfig(reward_weights=...))` instead.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from posttrain.rewards.registry import RewardFunc, is_async_reward, reward_name
from posttrain.rewards.spec import get_reward


@dataclass(frozen=True)
class RewardResult:
    """Scores of one batch.

    `total` is the weighted sum over functions, skipping a function's None for that sample (TRL's
    nansum). A sample that every function returned None for gets a total of 0.0; `scored` tells
    such samples apart, since TRL excludes them from its reward statistics and advantages.
    """

    total: list[float]
    breakdown: dict[str, list[float | None]]

    @property
    def scored(self) -> list[bool]:
        """Per sample: whether at least one function gave it a reward."""
        return [
            any(values[i] is not None for values in self.breakdown.values())
            for i in range(len(self.total))
        ]


def _unique_names(names: list[str]) -> list[str]:
    """Suffix repeats (`f`, `f_2`, `f_3`) so every function keeps its own breakdown column."""
    unique: list[str] = []
    for name in names:
        candidate, k = name, 1
        while candidate in unique:
            k += 1
            candidate = f"{name}_{k}"
        unique.append(candidate)
    return unique


def _checked(name: str, output: Any, n: int) -> list[float | None]:
    """Validate one function's output; NaN counts as None, as it does inside TRL."""
    if isinstance(output, str | bytes) or not isinstance(output, Sequence):
        raise ValueError(f"reward function {name!r} returned {type(output).__name__}, not a list")
    if len(output) != n:
        raise ValueError(
            f"reward function {name!r} returned {len(output)} rewards for {n} completions"
        )
    values: list[float | None] = []
    for value in output:
        if value is None:
            values.append(None)
            continue
        try:
            reward = float(value)
        except (TypeError, ValueError):
            raise ValueError(
                f"reward function {name!r} returned a non-numeric reward {value!r}"
            ) from None
        values.append(None if math.isnan(reward) else reward)
    return values


def _run_async(coroutine_fns: list[Any], kwargs: dict[str, Any]) -> list[Any]:
    """Await all async rewards concurrently; works whether or not the caller is in an event loop."""

    async def gather() -> list[Any]:
        return await asyncio.gather(*(fn(**kwargs) for fn in coroutine_fns))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(gather())
    # asyncio.run refuses to nest (e.g. inside Jupyter), so give it a thread of its own.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(gather())).result()


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (Bessel-corrected like TRL's nanstd); NaN where undefined."""
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


class RewardSet:
    """Weighted reward functions given as registered names, import paths or callables.

    `weights` follows TRL's `reward_weights`: one per function, all 1.0 when omitted.
    """

    def __init__(
        self, rewards: Sequence[str | RewardFunc], weights: Sequence[float] | None = None
    ) -> None:
        if not rewards:
            raise ValueError("a RewardSet needs at least one reward function")
        if weights is not None and len(weights) != len(rewards):
            raise ValueError(
                f"got {len(weights)} weights for {len(rewards)} reward functions; "
                "give one weight per function"
            )
        self.functions: list[RewardFunc] = [
            get_reward(r) if isinstance(r, str) else r for r in rewards
        ]
        self.names: list[str] = _unique_names([reward_name(fn) for fn in self.functions])
        self.weights: list[float] = (
            [float(w) for w in weights] if weights is not None else [1.0] * len(rewards)
        )

    def __repr__(self) -> str:
        parts = ", ".join(f"{n}×{w:g}" for n, w in zip(self.names, self.weights, strict=True))
        return f"RewardSet({parts})"

    def __call__(
        self,
        prompts: list[Any],
        completions: list[Any],
        completion_ids: list[Any] | None = None,
        **columns: Any,
    ) -> RewardResult:
        """Score a batch: sync functions run in order, then all async ones concurrently."""
        n = len(completions)
        if len(prompts) != n:
            raise ValueError(f"got {len(prompts)} prompts for {n} completions")
        kwargs = {
            "prompts": prompts,
            "completions": completions,
            "completion_ids": completion_ids,
            **columns,
        }
        outputs: dict[str, Any] = {}
        pending: list[tuple[str, Any]] = []
        for name, fn in zip(self.names, self.functions, strict=True):
            if is_async_reward(fn):
                pending.append((name, fn))
            else:
                outputs[name] = fn(**kwargs)
        if pending:
            results = _run_async([fn for _, fn in pending], kwargs)
            outputs.update(zip([name for name, _ in pending], results, strict=True))

        breakdown = {name: _checked(name, outputs[name], n) for name in self.names}
        total = [
            sum(
                weight * values[i]
                for weight, values in zip(self.weights, breakdown.values(), strict=True)
                if values[i] is not None
            )
            for i in range(n)
        ]
        return RewardResult(total=[float(t) for t in total], breakdown=breakdown)

    @staticmethod
    def metrics(result: RewardResult) -> dict[str, float]:
        """TRL-named statistics: `rewards/<name>/mean|std` over non-None values per function,
        and `reward`/`reward_std` over the totals of samples that at least one function scored."""
        metrics: dict[str, float] = {}
        for name, values in result.breakdown.items():
            mean, std = _mean_std([v for v in values if v is not None])
            metrics[f"rewards/{name}/mean"] = mean
            metrics[f"rewards/{name}/std"] = std
        scored = result.scored
        mean, std = _mean_std([t for t, ok in zip(result.total, scored, strict=True) if ok])
        metrics["reward"] = mean
        metrics["reward_std"] = std
        return metrics
