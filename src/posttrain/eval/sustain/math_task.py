"""Arithmetic word problems generated from a seed, with a checkable integer answer.

A problem is a start quantity and 2 to 5 operations, each one templated sentence, so both the
gold answer and the scripted solver (`scripted.py`) read the same structure. Numbers stay
below a few thousand and divisions are exact, so the answer is always a whole number.
"""

from __future__ import annotations

import random
import re
from typing import Any

_NAMES = [
    "Ava",
    "Ben",
    "Chen",
    "Dara",
    "Eli",
    "Fatima",
    "Goran",
    "Hana",
    "Ivo",
    "Jun",
    "Kofi",
    "Lena",
    "Milo",
    "Nia",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tess",
]
_THINGS = [
    "apples",
    "stamps",
    "marbles",
    "books",
    "coins",
    "stickers",
    "shells",
    "pencils",
    "cards",
    "beads",
]

# Each operation: (kind, sentence template). The solver matches the same patterns (OPERATIONS).
OPERATIONS: dict[str, tuple[str, str]] = {
    "add": ("{name} buys {a} more {things}.", r"buys (\d+) more"),
    "sub": ("{name} gives away {a} {things}.", r"gives away (\d+)"),
    "addmul": (
        "{name} receives {a} boxes with {b} {things} in each box.",
        r"receives (\d+) boxes with (\d+)",
    ),
    "mul": ("{name} ends up with {a} times as many {things} as before.", r"(\d+) times as many"),
    "div": (
        "{name} splits the {things} into {a} equal piles and keeps one pile.",
        r"into (\d+) equal piles",
    ),
}


def apply(kind: str, value: int, args: list[int]) -> int:
    """One operation on the running total."""
    if kind == "add":
        return value + args[0]
    if kind == "sub":
        return value - args[0]
    if kind == "addmul":
        return value + args[0] * args[1]
    if kind == "mul":
        return value * args[0]
    if kind == "div":
        return value // args[0]
    raise ValueError(f"unknown operation {kind!r}")


def _operation(rng: random.Random, value: int) -> tuple[str, list[int]]:
    choices = ["add", "addmul"]
    if value > 3:
        choices.append("sub")
    if value < 300:
        choices.append("mul")
    divisors = [d for d in (2, 3, 4, 5) if value % d == 0 and value >= 2 * d]
    if divisors:
        choices.append("div")
    kind = rng.choice(choices)
    if kind == "add":
        return kind, [rng.randint(2, 60)]
    if kind == "sub":
        return kind, [rng.randint(1, max(1, value // 2))]
    if kind == "addmul":
        return kind, [rng.randint(2, 9), rng.randint(2, 12)]
    if kind == "mul":
        return kind, [rng.randint(2, 4)]
    return kind, [rng.choice(divisors)]


def make_problem(rng: random.Random, index: int, steps: int) -> dict[str, Any]:
    """One item: prompt text, operations, gold answer and difficulty (number of steps)."""
    name, things = rng.choice(_NAMES), rng.choice(_THINGS)
    value = rng.randint(5, 80)
    lines = [f"{name} has {value} {things}."]
    ops = []
    for _ in range(steps):
        kind, args = _operation(rng, value)
        template = OPERATIONS[kind][0]
        lines.append(
            template.format(name=name, things=things, a=args[0], b=args[1] if len(args) > 1 else "")
        )
        ops.append({"kind": kind, "args": args})
        value = apply(kind, value, args)
    lines.append(f"How many {things} does {name} have now?")
    problem = " ".join(lines)
    return {
        "key": f"math/{index:04d}",
        "domain": "math",
        "problem": problem,
        "prompt": MATH_INSTRUCTION + "\n\n" + problem,
        "gold": str(value),
        "difficulty": steps,
        "operations": ops,
    }


MATH_INSTRUCTION = "Solve this word problem. Explain briefly, then give the final number."


def make_items(n: int, seed: int) -> list[dict[str, Any]]:
    """`n` problems with 2 to 5 steps, the same for the same seed."""
    rng = random.Random(f"sustain-math-{seed}")
    return [make_problem(rng, i, rng.randint(2, 5)) for i in range(n)]


_BOXED = re.compile(r"\\boxed\{\s*([^{}]*?)\s*\}")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def final_number(answer: str) -> str | None:
    """The last `\\boxed{}` content if any, else the last number in the text."""
    boxed = _BOXED.findall(answer)
    text = boxed[-1] if boxed else answer
    numbers = _NUMBER.findall(text)
    return numbers[-1] if numbers else None


def grade(item: dict[str, Any], answer: str) -> dict[str, Any]:
    """Correct when the final number equals the gold integer."""
    found = final_number(answer)
    correct = found is not None and float(found) == float(item["gold"])
    return {"correct": correct, "extracted": found}
