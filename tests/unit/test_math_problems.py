"""The math-problem generator: exact difficulty, injected defects, disjoint splits."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from posttrain.data.math_problems import (
    DEFECT_KINDS,
    TOPICS,
    MathProblemConfig,
    add_carries,
    make_math_splits,
    make_problem,
    sub_borrows,
    tokenizer_corpus,
)
from posttrain.rewards.builtin import exact_match, numeric_match

CONFIG = MathProblemConfig(n_train=600, n_test=120, defect_rate=0.1, seed=3)


@pytest.fixture(scope="module")
def splits():
    return make_math_splits(CONFIG)


def _value(problem: str) -> int:
    """The problem's value by Python's own arithmetic (operators + - * and digits only)."""
    assert re.fullmatch(r"[0-9+*-]+", problem)
    return eval(problem, {"__builtins__": {}})


def _digit_sum(n: int) -> int:
    return sum(map(int, str(n)))


# Items worked by hand: (topic, operands, operators) -> answer, digits, carries, difficulty.
HAND_CHECKED = [
    ("addition", [58, 67], "+", "125", 4, 2, 6),  # 8+7=15 carry, 5+6+1=12 carry
    ("addition", [999, 1], "+", "1000", 4, 3, 7),
    ("subtraction", [305, 127], "-", "178", 6, 2, 8),  # 5-7 borrow, 0-2-1 borrow, 3-1-1
    ("subtraction", [1000, 1], "-", "999", 5, 3, 8),
    ("multiplication", [47, 6], "*", "282", 3, 2, 5),  # 42 carry 4, 24+4=28 carry 2
    ("multiplication", [31, 3], "*", "93", 3, 0, 3),
    ("two_step", [12, 9, 5], "+-", "16", 4, 2, 8),  # 12+9 one carry, 21-5 one borrow, +2
    ("two_step", [6, 3, 85], "*+", "103", 4, 3, 9),  # 6*3=18 one, 18+85 two, +2
    ("word_problem", [68, 22], "+", "90", 4, 1, 6),  # 8+2 carry, +1 for wording
]


@pytest.mark.parametrize(
    ("topic", "operands", "ops", "answer", "digits", "carries", "difficulty"), HAND_CHECKED
)
def test_difficulty_of_hand_checked_items(
    topic, operands, ops, answer, digits, carries, difficulty
):
    row = make_problem(topic, operands, list(ops))
    assert (row["answer"], row["digits"], row["carries"]) == (answer, digits, carries)
    assert row["operations"] == len(ops)
    assert row["difficulty"] == difficulty
    assert row["completion"] == [{"role": "assistant", "content": answer}]
    assert _value(row["problem"]) == int(answer)


def test_carries_match_the_digit_sum_identity():
    # Kummer: carries of a + b = (s(a) + s(b) - s(a + b)) / 9, s the decimal digit sum;
    # borrows of a - b are the carries of b + (a - b).
    rng = random.Random(0)
    for _ in range(500):
        a, b = rng.randrange(10**5), rng.randrange(10**5)
        assert 9 * add_carries(a, b) == _digit_sum(a) + _digit_sum(b) - _digit_sum(a + b)
        big, small = max(a, b), min(a, b)
        diff = big - small
        assert 9 * sub_borrows(big, small) == _digit_sum(small) + _digit_sum(diff) - _digit_sum(big)


def test_clean_rows_are_right_and_their_parts_add_up(splits):
    train, held_out = splits
    for row in [r for r in train if r["quality_ok"]] + held_out:
        assert _value(row["problem"]) == int(row["answer"])
        numbers = [int(n) for n in re.findall(r"\d+", row["problem"])]
        assert row["digits"] == sum(len(str(n)) for n in numbers)
        assert row["operations"] == len(numbers) - 1
        assert row["wording"] == (row["topic"] == "word_problem")
        parts = row["digits"] + row["carries"] + 2 * (row["operations"] - 1) + row["wording"]
        assert row["difficulty"] == parts
        if row["operations"] == 1 and "*" not in row["problem"]:
            a, b = numbers
            a, b = (a, b) if "+" in row["problem"] else (b, a - b)
            assert 9 * row["carries"] == _digit_sum(a) + _digit_sum(b) - _digit_sum(a + b)
        # the question states the problem's numbers, in order up to a swap of + or *
        assert sorted(map(int, re.findall(r"\d+", row["prompt"][0]["content"]))) == sorted(numbers)
    assert {r["topic"] for r in held_out} == set(TOPICS)


def test_defects_have_the_asked_rate_and_kinds(splits):
    train, held_out = splits
    defective = [r for r in train if not r["quality_ok"]]
    assert len(defective) == round(0.1 * 600)
    assert Counter(r["defect"] for r in defective) == {kind: 20 for kind in DEFECT_KINDS}
    assert all(r["defect"] is None for r in train if r["quality_ok"])
    assert all(r["quality_ok"] and r["defect"] is None for r in held_out)
    by_id = {r["id"]: r for r in train}
    for row in defective:
        text = row["prompt"][0]["content"]
        if row["defect"] == "wrong_label":
            assert row["answer"] != str(_value(row["problem"]))
            assert abs(int(row["answer"]) - _value(row["problem"])) <= 9
            assert row["completion"][0]["content"] == row["answer"]
        elif row["defect"] == "malformed_prompt":
            stated = re.findall(r"\d+", text)
            assert len(stated) == row["operations"]  # one number short
            assert not text.endswith("?")
        else:
            source = by_id[row["duplicate_of"]]
            assert source["quality_ok"] and source["id"] != row["id"]
            assert (source["prompt"], source["answer"]) == (row["prompt"], row["answer"])


def test_rate_and_kinds_follow_the_config():
    config = MathProblemConfig(
        n_train=101, n_test=0, defect_rate=0.3, defect_kinds=("wrong_label",), seed=1
    )
    train, held_out = make_math_splits(config)
    assert held_out == []
    assert Counter(r["defect"] for r in train) == {None: 71, "wrong_label": 30}
    none = make_math_splits(MathProblemConfig(n_train=50, n_test=10, defect_rate=0.0))[0]
    assert all(r["quality_ok"] for r in none)


def test_splits_share_no_problem(splits):
    train, held_out = splits
    assert not {r["problem"] for r in train} & {r["problem"] for r in held_out}
    texts = {r["prompt"][0]["content"] for r in held_out}
    assert not texts & {r["prompt"][0]["content"] for r in train}
    assert len({r["problem"] for r in held_out}) == len(held_out)
    assert len({r["id"] for r in train + held_out}) == len(train) + len(held_out)


def test_determined_by_the_seed(splits):
    assert make_math_splits(CONFIG) == splits
    other = make_math_splits(MathProblemConfig(n_train=600, n_test=120, seed=4))
    assert [r["problem"] for r in other[0]] != [r["problem"] for r in splits[0]]


def test_rows_fit_the_arithmetic_rewards(splits):
    train, _ = splits
    rows = train[:40]
    completions = [r["completion"] for r in rows]
    answers = [r["answer"] for r in rows]
    prompts = [r["prompt"] for r in rows]
    assert exact_match(prompts, completions, answer=answers) == [1.0] * 40
    assert numeric_match(prompts, completions, answer=answers) == [1.0] * 40
    off = [[{"role": "assistant", "content": str(int(a) + 1)}] for a in answers]
    assert exact_match(prompts, off, answer=answers) == [0.0] * 40


def test_tokenizer_corpus_covers_the_training_rows():
    config = MathProblemConfig(n_train=40, n_test=10)
    corpus = tokenizer_corpus(config)
    train, _ = make_math_splits(config)
    assert corpus[:40] == [f"{r['prompt'][0]['content']} {r['answer']}" for r in train]
    assert "marbles" in corpus[-1]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"topics": ("division",)}, "topics must be"),
        ({"defect_rate": 1.0}, "defect_rate"),
        ({"defect_kinds": ("typo",)}, "defect_kinds"),
        ({"max_digits": 0}, "max_digits"),
        ({"topics": ("addition",), "max_digits": 1, "n_train": 60, "n_test": 0}, "distinct"),
    ],
)
def test_bad_settings_are_named(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        make_math_splits(MathProblemConfig(**kwargs))
