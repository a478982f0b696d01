"""Small math problems with exactly known difficulty and quality, for tiny policies.

SAERL (issue 24) predicts difficulty and quality of RL prompts from the policy's own
features; to measure how well it does, the truth must be known per item. This generator
writes rows in the shape of `posttrain.data.arithmetic.make_item` (a chat `prompt`, a
`completion`, the `answer` that `exact_match` / `numeric_match` score) plus:

- `topic`: addition, subtraction, multiplication (by one digit), two_step (two operations),
  word_problem (an addition or subtraction told as a short story);
- `problem`: the arithmetic as a canonical expression (`"12+9-5"`), the identity of a
  problem: train and held-out share none, whatever the wording;
- the parts of the difficulty, `digits` (operand digits in all), `operations` (1 or 2),
  `carries` (carries and borrows of the written column method, every step counted),
  `wording` (1 for a word problem), and their sum `difficulty` (`difficulty_score`);
- `quality_ok`, `defect` (None, or one of `DEFECT_KINDS`) and `duplicate_of` (the id a
  duplicate copies). Defects are injected into the training split only, at an exact rate,
  with the kinds as even as the count allows; held-out rows are always clean.

Our own generator rather than a packaged one: the measurements need the carries and the
injected defects recorded per item, which published arithmetic sets do not carry. Digits
are tokenised one per token (`posttrain.models.tokenizer`), so column arithmetic is what a
micro model can learn; the difficulty parts follow that column method.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TOPICS: tuple[str, ...] = ("addition", "subtraction", "multiplication", "two_step", "word_problem")
DEFECT_KINDS: tuple[str, ...] = ("wrong_label", "malformed_prompt", "duplicate")
Rows = list[dict[str, Any]]

# Word problems: one addition and one subtraction story, with names and things drawn at random.
_NAMES = ("Ana", "Ben", "Kai", "Mia", "Omar", "Lea", "Sam", "Zoe", "Ivan", "Nora")
_THINGS = ("apples", "stamps", "marbles", "shells", "books", "coins", "cards", "pencils")
_STORIES = {
    "+": "{name} has {a} {things}. {name} gets {b} more. How many {things} does {name} have now?",
    "-": "{name} has {a} {things} and gives {b} away. How many {things} are left?",
}


@dataclass(frozen=True)
class MathProblemConfig:
    """What `make_math_splits` generates; the same config always gives the same rows."""

    topics: tuple[str, ...] = TOPICS
    max_digits: int = 3
    """Operands have 1..max_digits digits (the multiplier of `multiplication` always one)."""
    n_train: int = 2000
    n_test: int = 200
    defect_rate: float = 0.1
    """Share of training rows made low-quality (exactly round(rate * n_train) rows)."""
    defect_kinds: tuple[str, ...] = DEFECT_KINDS
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [t for t in self.topics if t not in TOPICS]
        if not self.topics or unknown:
            raise ValueError(f"topics must be a non-empty subset of {TOPICS}, got {self.topics}")
        if not 1 <= self.max_digits <= 6:
            raise ValueError(f"max_digits must be in 1..6, got {self.max_digits}")
        if self.n_train < 1 or self.n_test < 0:
            raise ValueError(
                f"need n_train >= 1 and n_test >= 0, got {self.n_train} and {self.n_test}"
            )
        if not 0.0 <= self.defect_rate < 1.0:
            raise ValueError(f"defect_rate must be in [0, 1), got {self.defect_rate}")
        bad_kinds = [k for k in self.defect_kinds if k not in DEFECT_KINDS]
        if bad_kinds or (self.defect_rate > 0 and not self.defect_kinds):
            raise ValueError(
                f"defect_kinds must be a non-empty subset of {DEFECT_KINDS}, "
                f"got {self.defect_kinds}"
            )

    @property
    def n_defects(self) -> int:
        return round(self.defect_rate * self.n_train)


# --- difficulty: the written column method, digit by digit ---------------------------------


def _digits(n: int) -> list[int]:
    """Decimal digits of a non-negative integer, least significant first."""
    return [int(c) for c in reversed(str(n))]


def add_carries(a: int, b: int) -> int:
    """Columns of a + b whose sum reaches 10 (the last column's carry-out included)."""
    da, db = _digits(a), _digits(b)
    carry = count = 0
    for i in range(max(len(da), len(db))):
        total = (da[i] if i < len(da) else 0) + (db[i] if i < len(db) else 0) + carry
        carry = total // 10
        count += carry
    return count


def sub_borrows(a: int, b: int) -> int:
    """Columns of a - b (a >= b) that borrow from the next column."""
    if a < b:
        raise ValueError(f"sub_borrows needs a >= b, got {a} - {b}")
    da, db = _digits(a), _digits(b)
    borrow = count = 0
    for i in range(len(da)):
        column = da[i] - (db[i] if i < len(db) else 0) - borrow
        borrow = 1 if column < 0 else 0
        count += borrow
    return count


def mul_carries(a: int, digit: int) -> int:
    """Columns of a * digit (one digit) that carry a non-zero amount to the next column."""
    if not 0 <= digit <= 9:
        raise ValueError(f"mul_carries multiplies by one digit, got {digit}")
    carry = count = 0
    for d in _digits(a):
        carry = (d * digit + carry) // 10
        count += carry > 0
    return count


def difficulty_score(digits: int, operations: int, carries: int, wording: int) -> int:
    """The one scalar: operand digits + carries/borrows + 2 per extra operation + wording.

    Each part adds a step a column-by-column solver must take: a digit to place, a carry or
    borrow to hold, an intermediate result to keep, a story to turn into arithmetic.
    """
    return digits + carries + 2 * (operations - 1) + wording


# --- one problem --------------------------------------------------------------------------


def _step(left: int, op: str, right: int) -> tuple[int, int]:
    """(value, carries) of one operation."""
    if op == "+":
        return left + right, add_carries(left, right)
    if op == "-":
        return left - right, sub_borrows(left, right)
    if op == "*":
        return left * right, mul_carries(left, right)
    raise ValueError(f"unknown operator {op!r}")


def _evaluate(operands: Sequence[int], operators: Sequence[str]) -> tuple[int, int]:
    """(value, carries) of `a op b [op c]`: `*` binds first, otherwise left to right."""
    if len(operators) == 2 and operators[1] == "*":
        raise ValueError("a second operator of * is not generated (the multiplier comes first)")
    value, carries = _step(operands[0], operators[0], operands[1])
    for op, operand in zip(operators[1:], operands[2:], strict=True):
        value, more = _step(value, op, operand)
        carries += more
    return value, carries


def canonical_problem(operands: Sequence[int], operators: Sequence[str]) -> str:
    """The problem's identity: its expression, with the operands of a lone + or * sorted
    (b + a asks what a + b asks)."""
    operands = list(operands)
    if len(operators) == 1 and operators[0] in "+*":
        operands = sorted(operands)
    parts = [str(operands[0])]
    for op, operand in zip(operators, operands[1:], strict=True):
        parts += [op, str(operand)]
    return "".join(parts)


def make_problem(
    topic: str,
    operands: Sequence[int],
    operators: Sequence[str],
    *,
    name: str = _NAMES[0],
    things: str = _THINGS[0],
) -> dict[str, Any]:
    """One clean row for `topic` from explicit operands and operators (`name` and `things`
    only word a word problem). The answer and difficulty parts are computed here."""
    if topic not in TOPICS:
        raise ValueError(f"unknown topic {topic!r}; known: {TOPICS}")
    if len(operands) != len(operators) + 1 or any(n < 0 for n in operands):
        raise ValueError(f"need non-negative operands, one more than operators: {operands}")
    value, carries = _evaluate(operands, operators)
    if value < 0:
        raise ValueError(f"negative answer for {operands} {operators}")
    if topic == "word_problem":
        if len(operators) != 1 or operators[0] not in _STORIES:
            raise ValueError(f"a word problem is one + or -, got {operators}")
        a, b = operands
        text = _STORIES[operators[0]].format(name=name, things=things, a=a, b=b)
    else:
        pairs = zip(operators, operands[1:], strict=True)
        expression = " ".join([str(operands[0])] + [f"{op} {n}" for op, n in pairs])
        text = f"What is {expression}?"
    digits = sum(len(str(n)) for n in operands)
    wording = int(topic == "word_problem")
    answer = str(value)
    return {
        "prompt": [{"role": "user", "content": text}],
        "completion": [{"role": "assistant", "content": answer}],
        "answer": answer,
        "topic": topic,
        "problem": canonical_problem(operands, operators),
        "difficulty": difficulty_score(digits, len(operators), carries, wording),
        "digits": digits,
        "operations": len(operators),
        "carries": carries,
        "wording": wording,
        "quality_ok": True,
        "defect": None,
        "duplicate_of": None,
    }


def _number(rng: random.Random, max_digits: int, low_digits: int = 1) -> int:
    """A number whose digit count is uniform in low_digits..max_digits (so short and long
    operands are equally common, and difficulty spreads evenly)."""
    k = rng.randint(low_digits, max_digits)
    return rng.randint(0 if k == 1 else 10 ** (k - 1), 10**k - 1)


def _ordered(rng: random.Random, max_digits: int) -> tuple[int, int]:
    """Two numbers, the larger first (subtraction never goes below zero)."""
    a, b = _number(rng, max_digits), _number(rng, max_digits)
    return (a, b) if a >= b else (b, a)


def _sample(topic: str, rng: random.Random, max_digits: int) -> dict[str, Any]:
    if topic == "addition":
        return make_problem(topic, [_number(rng, max_digits), _number(rng, max_digits)], "+")
    if topic == "subtraction":
        return make_problem(topic, _ordered(rng, max_digits), "-")
    if topic == "multiplication":
        return make_problem(topic, [_number(rng, max_digits), rng.randint(2, 9)], "*")
    if topic == "two_step":
        form = rng.choice(("+-", "-+", "*+"))
        if form == "+-":
            a, b = _number(rng, max_digits), _number(rng, max_digits)
            c = rng.randint(0, min(a + b, 10**max_digits - 1))
            operands = [a, b, c]
        elif form == "-+":
            operands = [*_ordered(rng, max_digits), _number(rng, max_digits)]
        else:
            operands = [_number(rng, max_digits), rng.randint(2, 9), _number(rng, max_digits)]
        return make_problem(topic, operands, list(form))
    op = rng.choice(("+", "-"))
    if op == "-":
        operands = list(_ordered(rng, max_digits))
    else:
        operands = [_number(rng, max_digits), _number(rng, max_digits)]
    return make_problem(topic, operands, [op], name=rng.choice(_NAMES), things=rng.choice(_THINGS))


# --- splits and defects -------------------------------------------------------------------


def _distinct_problems(config: MathProblemConfig, rng: random.Random) -> list[dict[str, Any]]:
    """n_train + n_test rows with distinct `problem`s, topics in turn (balanced)."""
    wanted = config.n_train + config.n_test
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    attempts = 0
    while len(rows) < wanted:
        topic = config.topics[len(rows) % len(config.topics)]
        row = _sample(topic, rng, config.max_digits)
        attempts += 1
        if row["problem"] not in seen:
            seen.add(row["problem"])
            rows.append(row)
        elif attempts > 50 * wanted:
            raise ValueError(
                f"could not draw {wanted} distinct problems with max_digits={config.max_digits} "
                f"and topics {config.topics}; raise max_digits or ask for fewer rows"
            )
    rng.shuffle(rows)
    return rows


def _wrong_answer(answer: str, rng: random.Random) -> str:
    """A near miss: the right answer moved by 1..9, never below zero."""
    value = int(answer)
    offsets = [d for d in range(-9, 10) if d and value + d >= 0]
    return str(value + rng.choice(offsets))


def _malformed(text: str) -> str:
    """The prompt cut just before its last number: the question can no longer be answered."""
    end = len(text)
    while end > 0 and not text[end - 1].isdigit():
        end -= 1
    start = end
    while start > 0 and text[start - 1].isdigit():
        start -= 1
    return text[:start].rstrip()


def _inject_defects(
    train: list[dict[str, Any]], config: MathProblemConfig, rng: random.Random
) -> None:
    """Make exactly `config.n_defects` rows low-quality, kinds as even as the count allows."""
    count = config.n_defects
    if count == 0:
        return
    if "duplicate" in config.defect_kinds and count >= len(train):
        raise ValueError("defect_rate leaves no clean row for duplicates to copy")
    kinds = [config.defect_kinds[i % len(config.defect_kinds)] for i in range(count)]
    rng.shuffle(kinds)
    chosen = rng.sample(range(len(train)), count)
    clean = sorted(set(range(len(train))) - set(chosen))
    for index, kind in zip(chosen, kinds, strict=True):
        row = train[index]
        if kind == "wrong_label":
            wrong = _wrong_answer(row["answer"], rng)
            row["answer"] = wrong
            row["completion"] = [{"role": "assistant", "content": wrong}]
        elif kind == "malformed_prompt":
            row["prompt"] = [{"role": "user", "content": _malformed(row["prompt"][0]["content"])}]
        else:  # duplicate: the row becomes a copy of a clean row (its own problem is dropped)
            source = train[rng.choice(clean)]
            keep = {"id": row["id"]}
            row.clear()
            row.update({**source, **keep, "duplicate_of": source["id"]})
            row["prompt"] = [dict(m) for m in source["prompt"]]
            row["completion"] = [dict(m) for m in source["completion"]]
        row["quality_ok"] = False
        row["defect"] = kind


def make_math_splits(config: MathProblemConfig) -> tuple[Rows, Rows]:
    """(train, held_out) rows, deterministic in `config`; no `problem` is in both, and only
    train carries injected defects. Row ids are `train-00000`, `test-00000`, ..."""
    rng = random.Random(config.seed)
    rows = _distinct_problems(config, rng)
    held_out, train = rows[: config.n_test], rows[config.n_test :]
    for prefix, split in (("test", held_out), ("train", train)):
        for i, row in enumerate(split):
            row["id"] = f"{prefix}-{i:05d}"
    _inject_defects(train, config, random.Random(config.seed * 7919 + 1))
    return train, held_out


def tokenizer_corpus(config: MathProblemConfig) -> list[str]:
    """Texts a tokenizer for these problems should be trained on: the training questions and
    answers, and each word the stories can use (so no held-out story word is unseen)."""
    train, _ = make_math_splits(config)
    texts = [f"{r['prompt'][0]['content']} {r['answer']}" for r in train]
    texts.append(" ".join(_NAMES + _THINGS))
    return texts
