"""The latency wrapper sleeps heavy-tailed, reproducible delays and times out like a sandbox;
the arithmetic tool environment rewards direct answers and answers `check N` calls."""

from __future__ import annotations

import random
import statistics
import time

import pytest

from posttrain.envs import env_factory
from posttrain.envs.arithmetic_tool import ArithmeticToolEnv
from posttrain.envs.latency import EnvTimeout, LatencyEnv, sample_latency

TASK = {"prompt": [{"role": "user", "content": "What is 37 + 45?"}], "answer": "82"}


def _draws(distribution, n=20000, seed=0, **kwargs):
    rng = random.Random(seed)
    return sorted(sample_latency(rng, distribution, **kwargs) for _ in range(n))


def _p99_over_median(draws):
    return draws[int(0.99 * len(draws))] / statistics.median(draws)


@pytest.mark.parametrize("distribution", ["lognormal", "pareto"])
@pytest.mark.parametrize("median_s", [0.05, 2.0])
def test_sample_latency_median(distribution, median_s):
    draws = _draws(distribution, median_s=median_s, sigma=1.0, alpha=1.5)
    assert min(draws) > 0
    assert statistics.median(draws) == pytest.approx(median_s, rel=0.05)


def test_tail_weight_follows_shape():
    # lognormal p99/median = exp(2.33 sigma): ~1.8 at sigma=0.25, ~100 at sigma=2.
    light, heavy = _draws("lognormal", sigma=0.25), _draws("lognormal", sigma=2.0)
    assert _p99_over_median(light) < 2.5 and _p99_over_median(heavy) > 50
    # pareto p99/median = 50**(1/alpha): ~3.7 at alpha=3, 50 at alpha=1.
    light, heavy = _draws("pareto", alpha=3.0), _draws("pareto", alpha=1.0)
    assert _p99_over_median(light) < 5 and _p99_over_median(heavy) > 30
    # Pareto never goes below its scale, median / 2**(1/alpha).
    assert light[0] >= 0.05 / 2 ** (1 / 3.0)


def test_zero_median_means_no_latency():
    assert sample_latency(random.Random(0), "pareto", 0.0, 1.0, 1.5) == 0.0


def test_latency_env_sleeps_and_reports(monkeypatch):
    slept = []
    monkeypatch.setattr("posttrain.envs.latency.time.sleep", slept.append)
    env = LatencyEnv(ArithmeticToolEnv(), median_s=0.001, on_reset=True, seed=3)
    assert env.reset(TASK) == "What is 37 + 45?"
    observation, reward, done, info = env.step("82")
    assert (observation, reward, done) == ("", 1.0, True)
    assert info["correct"] is True and info["latency_s"] == slept[1] > 0
    assert len(slept) == 2 and env.waited_s == pytest.approx(sum(slept))


def test_latency_env_really_sleeps():
    env = LatencyEnv(ArithmeticToolEnv(), median_s=0.001, seed=0)
    env.reset(TASK)
    start = time.perf_counter()
    _, _, _, info = env.step("check 50")
    assert time.perf_counter() - start >= info["latency_s"] > 0
    assert env.waited_s == info["latency_s"]


def test_latency_env_times_out():
    env = LatencyEnv(ArithmeticToolEnv(), median_s=1.0, sigma=0.1, timeout_s=0.01, seed=0)
    env.reset(TASK)
    with pytest.raises(EnvTimeout, match=r"over the timeout of 0\.010s") as caught:
        env.step("82")
    assert isinstance(caught.value, TimeoutError)
    assert env.waited_s == 0.01
    assert env.inner.attempts == 0  # the timed-out call never reached the environment


def test_seeded_wrappers_reproduce_latencies(monkeypatch):
    monkeypatch.setattr("posttrain.envs.latency.time.sleep", lambda s: None)

    def latencies(seed):
        env = LatencyEnv(ArithmeticToolEnv(max_tool_calls=5), distribution="pareto", seed=seed)
        env.reset(TASK)
        return [env.step("check 1")[3]["latency_s"] for _ in range(5)]

    assert latencies(7) == latencies(7)
    assert latencies(7) != latencies(8)
    assert len(set(latencies(7))) == 5


def test_registry_builds_latency_around_arithmetic_tool(monkeypatch):
    monkeypatch.setattr("posttrain.envs.latency.time.sleep", lambda s: None)
    make = env_factory(
        "latency",
        inner="arithmetic_tool",
        inner_args={"attempts": 3, "max_tool_calls": 1},
        median_s=0.05,
        timeout_s=2.0,
        seed=1,
    )
    first, second = make(), make()
    assert first is not second and first.inner is not second.inner
    assert isinstance(first, LatencyEnv) and isinstance(first.inner, ArithmeticToolEnv)
    assert (first.median_s, first.timeout_s) == (0.05, 2.0)
    assert (first.inner.max_attempts, first.inner.max_tool_calls) == (3, 1)
    first.reset(TASK)
    observation, reward, done, info = first.step("check 90")
    assert observation == "tool: 90 is too high" and not done and "latency_s" in info


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"median_s": -0.1}, "median_s"),
        ({"sigma": 0.0}, "sigma"),
        ({"alpha": -1.0}, "alpha"),
        ({"timeout_s": 0.0}, "timeout_s"),
        ({"distribution": "gamma"}, "lognormal, pareto"),
    ],
)
def test_bad_latency_args_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LatencyEnv(ArithmeticToolEnv(), **kwargs)
    with pytest.raises(ValueError, match=name):
        env_factory("latency", inner="arithmetic_tool", **kwargs)()


def test_registry_rejects_unknown_inner():
    with pytest.raises(ValueError, match="no_such_env"):
        env_factory("latency", inner="no_such_env")()


def _env(**kwargs):
    env = ArithmeticToolEnv(**kwargs)
    assert env.reset(TASK) == "What is 37 + 45?"
    return env


def test_direct_correct_answer():
    env = _env()
    assert env.step(" 82\n") == ("", 1.0, True, {"correct": True, "attempts": 1, "tool_calls": 0})
    with pytest.raises(RuntimeError, match="reset"):
        env.step("82")


def test_wrong_answer_gets_feedback_and_a_second_attempt():
    env = _env()
    observation, reward, done, info = env.step("80")
    assert (observation, reward, done) == ("tool: 80 is too low; answer again", 0.0, False)
    assert info == {"correct": False, "attempts": 1, "tool_calls": 0}
    assert env.step("82") == ("", 1.0, True, {"correct": True, "attempts": 2, "tool_calls": 0})


def test_check_calls_the_tool_without_ending():
    env = _env(max_tool_calls=3)
    assert env.step("check 90")[:3] == ("tool: 90 is too high", 0.0, False)
    assert env.step("CHECK: 10")[:3] == ("tool: 10 is too low", 0.0, False)
    observation, _, done, info = env.step("Check 82")
    assert observation == "tool: 82 is correct" and not done
    assert info == {"correct": False, "attempts": 0, "tool_calls": 3}
    assert env.step("82") == ("", 1.0, True, {"correct": True, "attempts": 1, "tool_calls": 3})


def test_tool_budget_and_penalty():
    env = _env(max_tool_calls=1, tool_call_penalty=0.1)
    assert env.step("check 82")[:3] == ("tool: 82 is correct", -0.1, False)
    # Out of tool calls: a check is a wrong attempt.
    observation, reward, done, info = env.step("check 82")
    assert (observation, reward, done) == ("tool: no tool calls left; answer again", 0.0, False)
    assert info == {"correct": False, "attempts": 1, "tool_calls": 1}
    assert env.step("check 82") == (
        "",
        0.0,
        True,
        {"correct": False, "attempts": 2, "tool_calls": 1},
    )


def test_attempts_exhausted_ends_with_zero():
    env = _env(attempts=3)
    assert env.step("90")[0] == "tool: 90 is too high; answer again"
    assert env.step("eighty-two")[0] == "tool: 'eighty-two' is wrong; answer again"
    assert env.step("81") == ("", 0.0, True, {"correct": False, "attempts": 3, "tool_calls": 0})


def test_non_integer_answers_compare_as_strings():
    env = ArithmeticToolEnv()
    env.reset({"prompt": "Capital of France?", "answer": " Paris "})
    assert env.step("check 3")[0] == "tool: '3' is wrong"
    assert env.step("paris")[:3] == ("tool: 'paris' is wrong; answer again", 0.0, False)
    assert env.step("Paris ")[1:3] == (1.0, True)


def test_bad_tool_env_args():
    with pytest.raises(ValueError, match="attempts"):
        ArithmeticToolEnv(attempts=0)
    with pytest.raises(ValueError, match="max_tool_calls"):
        ArithmeticToolEnv(max_tool_calls=-1)
