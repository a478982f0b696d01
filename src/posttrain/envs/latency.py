"""Slow, uneven environments on demand: a wrapper that sleeps a heavy-tailed latency per step.

Real environments call tools, sandboxes and judges whose response times are mostly short with
a long tail of slow calls, and some calls time out. Asynchronous RL exists to keep the
accelerator busy through that, so it has to be tested against it. `LatencyEnv` wraps any
environment and, before each `step` (and optionally `reset`), sleeps a latency drawn from a
lognormal or Pareto distribution with a given median. A draw above `timeout_s` sleeps the
timeout and raises `EnvTimeout`, which rollout records as a failed trajectory, just as a
timed-out sandbox call would be.

Config use: `env: latency` with `env_args: {inner: arithmetic_tool, median_s: 0.05,
timeout_s: 2.0}`.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

from posttrain.envs.base import Env
from posttrain.envs.registry import env_factory, register_env

DISTRIBUTIONS = ("lognormal", "pareto")


class EnvTimeout(TimeoutError):
    """An environment call whose latency exceeded its timeout."""


def _check_args(
    distribution: str, median_s: float, sigma: float, alpha: float, timeout_s: float | None
) -> None:
    if distribution not in DISTRIBUTIONS:
        raise ValueError(
            f"distribution must be one of {', '.join(DISTRIBUTIONS)}, got {distribution!r}"
        )
    if not median_s >= 0:  # also rejects NaN
        raise ValueError(f"median_s must be >= 0, got {median_s}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if timeout_s is not None and not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0 or None, got {timeout_s}")


def sample_latency(
    rng: random.Random,
    distribution: str = "lognormal",
    median_s: float = 0.05,
    sigma: float = 1.0,
    alpha: float = 1.5,
) -> float:
    """One latency in seconds whose distribution has median `median_s`.

    lognormal: exp(N(ln median_s, sigma^2)); a larger `sigma` gives a longer tail.
    pareto: scale * Pareto(alpha) with scale = median_s / 2**(1/alpha), since a Pareto with
    scale x_m has median x_m * 2**(1/alpha); a smaller `alpha` gives a longer tail (for
    alpha <= 1 the mean is infinite).
    """
    _check_args(distribution, median_s, sigma, alpha, None)
    if median_s == 0:
        return 0.0
    if distribution == "lognormal":
        return rng.lognormvariate(math.log(median_s), sigma)
    return median_s / 2 ** (1 / alpha) * rng.paretovariate(alpha)


class LatencyEnv:
    """`inner`, with a sampled sleep before each step (and each reset when `on_reset`).

    Each wrapper draws from its own `random.Random` (seeded with `seed`, or from OS entropy
    when None), so wrappers running in different threads share no state, and a seeded
    wrapper reproduces its latencies. A timed-out step does not reach `inner`: like a lost
    tool call, its result never arrives.
    """

    def __init__(
        self,
        inner: Env,
        *,
        distribution: str = "lognormal",
        median_s: float = 0.05,
        sigma: float = 1.0,
        alpha: float = 1.5,
        timeout_s: float | None = None,
        on_reset: bool = False,
        seed: int | None = None,
    ) -> None:
        _check_args(distribution, median_s, sigma, alpha, timeout_s)
        self.inner = inner
        self.distribution = distribution
        self.median_s = median_s
        self.sigma = sigma
        self.alpha = alpha
        self.timeout_s = timeout_s
        self.on_reset = on_reset
        self.rng = random.Random(seed)
        self.waited_s = 0.0  # total seconds slept by this wrapper
        self.last_latency_s = 0.0

    def _wait(self, call: str) -> float:
        """Sleep one sampled latency (time.sleep releases the GIL, so episodes in other
        threads wait concurrently); raise EnvTimeout after `timeout_s` if it is longer."""
        latency = sample_latency(self.rng, self.distribution, self.median_s, self.sigma, self.alpha)
        if self.timeout_s is not None and latency > self.timeout_s:
            time.sleep(self.timeout_s)
            self.waited_s += self.timeout_s
            self.last_latency_s = self.timeout_s
            raise EnvTimeout(
                f"environment {call} would take {latency:.3f}s, "
                f"over the timeout of {self.timeout_s:.3f}s"
            )
        time.sleep(latency)
        self.waited_s += latency
        self.last_latency_s = latency
        return latency

    def reset(self, task: dict[str, Any]) -> str:
        if self.on_reset:
            self._wait("reset")
        return self.inner.reset(task)

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        latency = self._wait("step")
        observation, reward, done, info = self.inner.step(action)
        return observation, reward, done, {**info, "latency_s": latency}


@register_env("latency")
def make_latency_env(
    inner: str,
    inner_args: dict[str, Any] | None = None,
    *,
    distribution: str = "lognormal",
    median_s: float = 0.05,
    sigma: float = 1.0,
    alpha: float = 1.5,
    timeout_s: float | None = None,
    on_reset: bool = False,
    seed: int | None = None,
) -> LatencyEnv:
    """A LatencyEnv around the environment spec `inner` built with `inner_args`.

    Every environment this builds gets the same `seed`, so with a fixed seed all episodes
    see the same latency sequence; leave it None for independent draws per episode.
    """
    if not isinstance(inner, str):
        raise ValueError(f"inner must be an environment spec (a string), got {inner!r}")
    if inner_args is not None and not isinstance(inner_args, dict):
        raise ValueError(f"inner_args must be a mapping or None, got {inner_args!r}")
    _check_args(distribution, median_s, sigma, alpha, timeout_s)  # before building inner
    return LatencyEnv(
        env_factory(inner, **(inner_args or {}))(),
        distribution=distribution,
        median_s=median_s,
        sigma=sigma,
        alpha=alpha,
        timeout_s=timeout_s,
        on_reset=on_reset,
        seed=seed,
    )
