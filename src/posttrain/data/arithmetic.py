"""A small addition task: the embedded default that tiny policies learn and RL improves.

Problems are split by operand pair, so held-out questions are never seen in training.
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

    def __post_init__(self) -> None:
        pairs = (self.max_operand + 1) ** 2
        if self.n_train + self.n_test > pairs:
            raise ValueError(
                f"n_train + n_test = {self.n_train + self.n_test} exceeds the {pairs} "
                f"distinct problems with max_operand={self.max_operand}"
            )


def question(a: int, b: int) -> str:
    return f"What is {a} + {b}?"


def make_item(a: int, b: int) -> dict:
    """One task row: chat prompt, answer, and the prompt-completion pair SFT trains on."""
    return {
        "prompt": [{"role": "user", "content": question(a, b)}],
        "completion": [{"role": "assistant", "content": str(a + b)}],
        "answer": str(a + b),
    }


def make_splits(task: ArithmeticTask) -> tuple[list[dict], list[dict]]:
    """Disjoint train and test rows, deterministic in `task.seed`."""
    rng = random.Random(task.seed)
    pairs = [(a, b) for a in range(task.max_operand + 1) for b in range(task.max_operand + 1)]
    rng.shuffle(pairs)
    test = pairs[: task.n_test]
    train = pairs[task.n_test : task.n_test + task.n_train]
    return [make_item(*p) for p in train], [make_item(*p) for p in test]


def tokenizer_corpus(task: ArithmeticTask) -> list[str]:
    """Texts a tokenizer for this task should be trained on."""
    train, _ = make_splits(task)
    return [f"{r['prompt'][0]['content']} {r['answer']}" for r in train]
