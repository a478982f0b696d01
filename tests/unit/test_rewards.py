"""Reward functions: built-ins, the name registry, weighted RewardSets, and the verl adapter."""

from __future__ import annotations

import asyncio
import functools
import math
import pickle
import time

import pytest

from posttrain.rewards import (
    RewardSet,
    completion_text,
    exact_match,
    get_reward,
    numeric_match,
    numeric_match_reward,
    register_reward,
    reward_names,
    think_format,
    to_verl_compute_score,
)
from posttrain.rewards import registry as registry_module


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rewards registered by a test vanish after it. The built-ins are loaded first (on the
    first lookup), so that they land in the real table, not in a test's copy."""
    reward_names()
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))


def score(fn, completions, **columns):
    return fn(prompts=[""] * len(completions), completions=completions, **columns)


def chat(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


# --- built-ins ---------------------------------------------------------------------------------


def test_exact_match_normalises_case_whitespace_and_final_period() -> None:
    completions = ["  The   Answer.  ", "the answer", "the answer!", "answer", "The\nanswer ."]
    assert score(exact_match, completions, answer=["the answer"] * 5) == [1.0, 1.0, 0.0, 0.0, 1.0]


def test_exact_match_accepts_aliases_and_non_string_answers() -> None:
    answers = [["NYC", "New York City"], ["NYC", "New York City"], ("a", "b"), 5]
    expected = [1.0, 0.0, 1.0, 1.0]
    assert score(exact_match, ["new york city", "LA", "B", "5"], answer=answers) == expected


def test_exact_match_judges_only_the_text_after_the_last_think_block() -> None:
    completions = ["<think>maybe 4</think> 5", "<think>5</think>4", "<think>a</think>x</think>5"]
    assert score(exact_match, completions, answer=["5"] * 3) == [1.0, 0.0, 1.0]


def test_conversational_completions_use_the_last_assistant_message() -> None:
    completions = [
        chat("5"),
        [
            {"role": "assistant", "content": "4"},
            {"role": "tool", "content": "5"},
            {"role": "assistant", "content": [{"type": "text", "text": "5."}]},
        ],
        [{"role": "assistant", "content": None, "tool_calls": []}],
        [{"role": "tool", "content": "5"}],
    ]
    assert completion_text(completions[1]) == "5."
    assert score(exact_match, completions, answer=["5"] * 4) == [1.0, 1.0, 0.0, 0.0]


def test_a_row_without_an_answer_is_not_scored() -> None:
    assert score(exact_match, ["5", "5"], answer=["5", None]) == [1.0, None]
    assert score(numeric_match, ["5", "5"], answer=[None, "5"]) == [None, 1.0]


@pytest.mark.parametrize(
    ("completion", "answer", "expected"),
    [
        ("The answer is 42.", "42", 1.0),
        ("x = -7", -7, 1.0),
        ("3 - 2 = 1", "1", 1.0),  # a binary minus is not a sign
        ("It costs 1,234.50 dollars", "1234.5", 1.0),
        ("1,234", "1,234", 1.0),
        ("0.1 + 0.2 = 0.30000000000000004", "0.3", 1.0),
        ("first 5, then 6", "5", 0.0),  # the last number counts
        ("<think>it is 5</think> six", "5", 0.0),  # only the visible answer counts
        ("no digits here", "0", 0.0),
        ("2.5", ["2", "2.5"], 1.0),
    ],
)
def test_numeric_match(completion: str, answer: object, expected: float) -> None:
    assert score(numeric_match, [completion], answer=[answer]) == [expected]


def test_numeric_match_tolerance_is_configurable_and_keeps_the_name() -> None:
    loose = numeric_match_reward(tol=0.01)
    assert score(loose, ["3.14159"], answer=["3.14"]) == [1.0]
    assert score(numeric_match, ["3.14159"], answer=["3.14"]) == [0.0]
    assert loose.__name__ == "numeric_match"
    with pytest.raises(ValueError, match="non-negative"):
        numeric_match_reward(tol=-1)
    # Configured rewards must survive pickling to dataloader or Ray worker processes.
    copy = pickle.loads(pickle.dumps(loose))
    assert copy.tol == 0.01 and score(copy, ["3.14159"], answer=["3.14"]) == [1.0]


def test_numeric_match_rejects_a_non_numeric_answer() -> None:
    with pytest.raises(ValueError, match="'numeric_match'.*'five' is not a number"):
        score(numeric_match, ["5"], answer=["five"])


@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<think>add 2 and 3</think>5", 1.0),
        ("\n<think>\n</think>\n\n5", 1.0),  # an empty thought is still the format
        ("<think>add</think>   ", 0.0),  # no answer
        ("5 <think>add</think>5", 0.0),  # not at the start
        ("<think>a</think><think>b</think>5", 0.0),  # two blocks
        ("<think>a</think>5</think>", 0.0),
        ("<think>unterminated 5", 0.0),
        ("5", 0.0),
    ],
)
def test_think_format(completion: str, expected: float) -> None:
    assert score(think_format, [completion]) == [expected]
    assert score(think_format, [chat(completion)]) == [expected]


@pytest.mark.parametrize("reward", [exact_match, numeric_match])
def test_missing_or_misaligned_answer_column_is_a_clear_error(reward) -> None:
    name = reward.__name__
    with pytest.raises(ValueError, match=f"reward '{name}' needs a 'answer' dataset column"):
        score(reward, ["5"], trainer_state=None)
    with pytest.raises(ValueError, match="column 'answer' has 1 values for 2 completions"):
        score(reward, ["5", "6"], answer=["5"])


def test_builtins_ignore_trainer_extras_and_accept_completion_ids() -> None:
    out = exact_match(
        prompts=["q"],
        completions=["5"],
        completion_ids=[[1, 2]],
        answer=["5"],
        trainer_state=object(),
        log_metric=print,
    )
    assert out == [1.0]


# --- registry ----------------------------------------------------------------------------------


def test_builtins_are_registered_by_name() -> None:
    assert {"exact_match", "numeric_match", "think_format"} <= set(reward_names())
    assert get_reward("exact_match") is exact_match
    assert get_reward("numeric_match") is numeric_match


def test_register_and_look_up_by_name() -> None:
    @register_reward("length_bonus")
    def length_bonus(prompts, completions, completion_ids=None, **columns):
        return [len(c) / 10 for c in completions]

    assert get_reward("length_bonus") is length_bonus
    assert "length_bonus" in reward_names()
    with pytest.raises(ValueError, match="'length_bonus' is already registered"):
        register_reward("length_bonus")(length_bonus)
    with pytest.raises(ValueError, match="invalid reward name"):
        register_reward("pkg.reward")


def test_dotted_import_paths(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_rewards.py").write_text(
        "def always_one(prompts, completions, completion_ids=None, **columns):\n"
        "    return [1.0] * len(completions)\n"
        "class Judge:\n"
        "    def score(self, prompts, completions, completion_ids=None, **columns):\n"
        "        return [0.5] * len(completions)\n"
        "JUDGE = Judge()\n"
        "NOT_CALLABLE = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert get_reward("my_rewards:always_one")(prompts=["q"], completions=["a"]) == [1.0]
    assert get_reward("my_rewards.always_one").__name__ == "always_one"
    assert get_reward("my_rewards:JUDGE.score")(prompts=["q"], completions=["a"]) == [0.5]
    assert get_reward("posttrain.rewards.builtin:think_format") is think_format
    with pytest.raises(ValueError, match="no 'missing'"):
        get_reward("my_rewards:missing")
    with pytest.raises(ValueError, match="non-callable int"):
        get_reward("my_rewards:NOT_CALLABLE")


def test_unknown_names_and_failing_imports() -> None:
    with pytest.raises(ValueError, match="unknown reward 'nope'.*exact_match.*numeric_match"):
        get_reward("nope")
    with pytest.raises(ValueError, match="cannot import module 'no_such_pkg.mod'"):
        get_reward("no_such_pkg.mod:fn")
    with pytest.raises(ValueError, match="malformed"):
        get_reward(":fn")


# --- RewardSet ---------------------------------------------------------------------------------


def constant(value, name):
    def fn(prompts, completions, completion_ids=None, **columns):
        return [value] * len(completions)

    fn.__name__ = name
    return fn


def test_weighted_total_and_breakdown() -> None:
    rewards = RewardSet(["exact_match", think_format], weights=[2.0, 0.5])
    result = rewards(
        prompts=["q"] * 3,
        completions=["<think>x</think>5", "5", chat("<think>y</think>4")],
        answer=["5", "5", "5"],
    )
    assert result.breakdown == {"exact_match": [1.0, 1.0, 0.0], "think_format": [1.0, 0.0, 1.0]}
    assert result.total == [2.5, 2.0, 0.5]
    assert rewards.names == ["exact_match", "think_format"]


def test_weights_default_to_one_and_must_match_in_number() -> None:
    assert RewardSet([think_format, exact_match]).weights == [1.0, 1.0]
    with pytest.raises(ValueError, match="2 weights for 1 reward functions"):
        RewardSet([think_format], weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="at least one"):
        RewardSet([])


def test_none_is_skipped_per_sample_and_an_all_none_sample_totals_zero() -> None:
    def sometimes(prompts, completions, completion_ids=None, **columns):
        return [None, 2.0, None]

    def rarely(prompts, completions, completion_ids=None, **columns):
        return [1.0, float("nan"), None]  # NaN counts as None, as in TRL

    result = RewardSet([sometimes, rarely], weights=[1.0, 3.0])(["q"] * 3, ["a", "b", "c"])
    assert result.breakdown == {"sometimes": [None, 2.0, None], "rarely": [1.0, None, None]}
    assert result.total == [3.0, 2.0, 0.0]
    assert result.scored == [True, True, False]


def test_duplicate_names_are_disambiguated() -> None:
    rewards = RewardSet(
        [exact_match, "exact_match", functools.partial(exact_match), numeric_match_reward(0.5)]
    )
    assert rewards.names == ["exact_match", "exact_match_2", "exact_match_3", "numeric_match"]


def test_async_and_sync_rewards_mix_and_async_ones_run_concurrently() -> None:
    async def slow_judge(prompts, completions, completion_ids=None, **columns):
        await asyncio.sleep(0.2)
        return [0.5 if c == "5" else 0.0 for c in completions]

    async def slow_judge_too(prompts, completions, completion_ids=None, **columns):
        await asyncio.sleep(0.2)
        return [1.0] * len(completions)

    rewards = RewardSet([slow_judge, "exact_match", slow_judge_too], weights=[2.0, 1.0, 1.0])
    start = time.perf_counter()
    result = rewards(["q", "q"], ["5", "6"], answer=["5", "5"])
    elapsed = time.perf_counter() - start
    assert result.breakdown == {
        "slow_judge": [0.5, 0.0],
        "exact_match": [1.0, 0.0],
        "slow_judge_too": [1.0, 1.0],
    }
    assert result.total == [3.0, 1.0]
    assert elapsed < 0.35  # gathered, not 0.2 + 0.2


def test_async_rewards_also_work_inside_a_running_event_loop() -> None:
    async def judge(prompts, completions, completion_ids=None, **columns):
        await asyncio.sleep(0)
        return [1.0] * len(completions)

    async def caller():
        return RewardSet([judge])(["q"], ["a"])

    assert asyncio.run(caller()).total == [1.0]


def test_wrong_length_or_type_names_the_function() -> None:
    def too_short(prompts, completions, completion_ids=None, **columns):
        return [1.0]

    with pytest.raises(ValueError, match="'too_short' returned 1 rewards for 2 completions"):
        RewardSet([constant(1.0, "fine"), too_short])(["q", "q"], ["a", "b"])
    with pytest.raises(ValueError, match="'bad' returned a non-numeric reward 'high'"):
        RewardSet([constant("high", "bad")])(["q"], ["a"])

    def scalar(prompts, completions, completion_ids=None, **columns):
        return 1.0

    with pytest.raises(ValueError, match="'scalar' returned float, not a list"):
        RewardSet([scalar])(["q"], ["a"])


def test_metrics_use_trl_names_and_skip_none() -> None:
    def partial_reward(prompts, completions, completion_ids=None, **columns):
        return [1.0, None, 0.0, None]

    rewards = RewardSet([partial_reward, constant(2.0, "flat")], weights=[1.0, 0.5])
    metrics = rewards.metrics(rewards(["q"] * 4, ["a"] * 4))
    assert metrics["rewards/partial_reward/mean"] == 0.5
    assert metrics["rewards/partial_reward/std"] == pytest.approx(math.sqrt(0.5))
    assert metrics["rewards/flat/mean"] == 2.0  # breakdown and its stats are unweighted
    assert metrics["rewards/flat/std"] == 0.0
    assert metrics["reward"] == pytest.approx((2.0 + 1.0 + 1.0 + 1.0) / 4)
    assert set(metrics) == {
        "rewards/partial_reward/mean",
        "rewards/partial_reward/std",
        "rewards/flat/mean",
        "rewards/flat/std",
        "reward",
        "reward_std",
    }


def test_metrics_exclude_unscored_samples_and_are_nan_when_undefined() -> None:
    def lonely(prompts, completions, completion_ids=None, **columns):
        return [3.0, None]

    result = RewardSet([lonely])(["q", "q"], ["a", "b"])
    metrics = RewardSet.metrics(result)
    assert result.total == [3.0, 0.0]
    assert metrics["reward"] == 3.0  # the unscored sample's 0.0 is not averaged in
    assert math.isnan(metrics["reward_std"]) and math.isnan(metrics["rewards/lonely/std"])


# --- verl adapter ------------------------------------------------------------------------------


def test_verl_compute_score_round_trip() -> None:
    compute_score = to_verl_compute_score(get_reward("numeric_match"))
    assert compute_score.__name__ == "numeric_match"
    # verl calls with keyword arguments; GSM8K-style extra_info keeps the worked solution under
    # "answer", which must not override ground_truth.
    extra = {"split": "train", "index": 0, "answer": "2 + 3 = 5 #### 5", "prompt": "2 + 3?"}
    assert (
        compute_score(
            data_source="gsm8k", solution_str="It is 5.", ground_truth="5", extra_info=extra
        )
        == 1.0
    )
    assert compute_score("gsm8k", "It is 6.", "5") == 0.0
    assert isinstance(compute_score("gsm8k", "5", "5", None), float)


def test_verl_adapter_passes_columns_and_maps_none_to_zero() -> None:
    seen = {}

    def spy(prompts, completions, completion_ids=None, **columns):
        seen.update(prompts=prompts, completions=completions, ids=completion_ids, **columns)
        return [None]

    compute_score = to_verl_compute_score(spy)
    assert compute_score("src", "resp", "gt", {"prompt": "p", "level": 3}, scale=2) == 0.0
    assert seen == {
        "prompts": ["p"],
        "completions": ["resp"],
        "ids": [None],
        "answer": ["gt"],
        "data_source": ["src"],
        "level": [3],
        "scale": 2,  # verl's reward_kwargs are forwarded unchanged
    }
    with pytest.raises(ValueError, match="clash"):
        compute_score("src", "resp", "gt", {"completions": []})


def test_verl_adapter_keeps_async_rewards_async() -> None:
    async def judge(prompts, completions, completion_ids=None, **columns):
        await asyncio.sleep(0)
        return [0.25] * len(completions) * (2 if columns.get("double") else 1)

    compute_score = to_verl_compute_score(judge)
    assert asyncio.iscoroutinefunction(compute_score)
    assert asyncio.run(compute_score("src", "resp", "gt")) == 0.25
    with pytest.raises(ValueError, match="'judge' returned 2 rewards for 1 response"):
        asyncio.run(compute_score("src", "resp", "gt", double=True))
