"""A small addition task: the embedded default that tiny policies learn and RL improves.

Problems are split by operand pair, so held-out questions are never seen in training. A
validation split, disjoint from both (and holding no test question with its operands
swapped), lets training watch accuracy without looking at the test split.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class ArithmeticTask:
    """Addition of two integers drawn from [0, max_operand]."""

    max_operand: int = 99
    n_train: int = 8000
    n_test: int = 200
    seed: int = 0
    n_validation: int = 200
    """Rows of the validation split (`validation_split`); 0 for none."""

    def __post_init__(self) -> None:
        pairs = (self.max_operand + 1) ** 2
        if self.n_train + self.n_test > pairs:
            raise ValueError(
                f"n_train + n_test = {self.n_train + self.n_test} exceeds the {pairs} "
                f"distinct problems with max_operand={self.max_operand}"
            )
        if self.n_validation < 0:
            raise ValueError(f"n_validation must be >= 0, got {self.n_validation}")


def question(a: int, b: int) -> str:
    return f"What is {a} + {b}?"


def make_item(a: int, b: int) -> dict:
    """One task row: chat prompt, answer, and the prompt-completion pair SFT trains on."""
    return {
        "prompt": [{"role": "user", "content": question(a, b)}],
        "completion": [{"role": "assistant", "content": str(a + b)}],
        "answer": str(a + b),
    }


def _shuffled_pairs(task: ArithmeticTask) -> list[tuple[int, int]]:
    rng = random.Random(task.seed)
    pairs = [(a, b) for a in range(task.max_operand + 1) for b in range(task.max_operand + 1)]
    rng.shuffle(pairs)
    return pairs


def make_splits(task: ArithmeticTask) -> tuple[list[dict], list[dict]]:
    """Disjoint train and test rows, deterministic in `task.seed`."""
    pairs = _shuffled_pairs(task)
    test = pairs[: task.n_test]
    train = pairs[task.n_test : task.n_test + task.n_train]
    return [make_item(*p) for p in train], [make_item(*p) for p in test]


def validation_split(task: ArithmeticTask) -> list[dict]:
    """`task.n_validation` rows from the pairs neither split uses, skipping swaps of test
    pairs too (b + a has the answer of a + b), so the split shares nothing with the test."""
    pairs = _shuffled_pairs(task)
    test = set(pairs[: task.n_test])
    unused = pairs[task.n_test + task.n_train :]
    chosen = [(a, b) for a, b in unused if (b, a) not in test][: task.n_validation]
    if len(chosen) < task.n_validation:
        raise ValueError(
            f"n_validation = {task.n_validation} but only {len(chosen)} problems are left "
            f"after n_train and n_test with max_operand={task.max_operand}"
        )
    return [make_item(*p) for p in chosen]


def tokenizer_corpus(task: ArithmeticTask) -> list[str]:
    """Texts a tokenizer for this task should be trained on."""
    train, _ = make_splits(task)
    return [f"{r['prompt'][0]['content']} {r['answer']}" for r in train]
