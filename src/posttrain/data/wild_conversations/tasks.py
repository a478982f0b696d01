"""Task families: `Task` (a request and its oracle facts), `make_task` and the builder of
each family, plus `fmt` and `listing`, the number and list formats shared with replies."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from posttrain.data.wild_conversations.tables import (
    CAPITALS,
    HARMFUL,
    HOWTOS,
    LOCAL,
    SUBJECTS,
    UNITS,
    VERBS,
    WORDS,
)


@dataclass
class Task:
    """One request: its text, a phrase the user refers back to it with, and its facts."""

    family: str
    request: str
    topic: str
    oracle: dict[str, Any]
    """Ground truth for `reply_quality`, plus what rendering replies needs (plain types)."""
    language: str = "English"


def fmt(value: float) -> str:
    if abs(value - round(value)) < 1e-9:
        return str(int(round(value)))
    return f"{value:.4f}".rstrip("0").rstrip(".")


def make_task(family: str, rng: random.Random, language: str = "English") -> Task:
    return _MAKERS[family](rng, language)


def _arithmetic(rng: random.Random, language: str) -> Task:
    op = rng.choice("+-*")
    if op == "*":
        a, b = rng.randint(2, 15), rng.randint(2, 15)
        value, sym = a * b, rng.choice(("*", "x", "times"))
    elif op == "+":
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        value, sym = a + b, rng.choice(("+", "+", "plus"))
    else:
        b = rng.randint(2, 49)
        a = rng.randint(b + 1, 99)
        a += a - b == b
        value, sym = a - b, rng.choice(("-", "-", "minus"))
    if language != "English" and sym in ("times", "plus", "minus"):
        sym = {"times": "*", "plus": "+", "minus": "-"}[sym]
    expr = f"{a} {sym} {b}"
    if language == "English":
        template = rng.choice(
            ("What is {expr}?", "Calculate {expr}.", "what's {expr}", "{expr} = ?", "Solve {expr}")
        )
    else:
        template = rng.choice(LOCAL[language]["ask"])
    wrongs = [value + d for d in (-10, -2, -1, 1, 2, 10)] + [a + b, a * b, abs(a - b)]
    wrongs = [w for w in wrongs if w > 0 and w not in (a, b, value)]
    oracle = {
        "family": "arithmetic",
        "answer": value,
        "operands": [a, b],
        "expr": expr,
        "wrong": rng.choice(wrongs),
    }
    return Task("arithmetic", template.format(expr=expr), expr, oracle, language)


def _conversion(rng: random.Random, language: str) -> Task:
    src, dst, factor = rng.choice(UNITS)
    x = rng.choice((2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 20, 0.5, 1.5, 2.5, 3.5))
    value = round(x * factor, 4)
    template = rng.choice(
        (
            "How many {dst} are in {x} {src}?",
            "Convert {x} {src} to {dst}.",
            "{x} {src} in {dst}?",
            "what is {x} {src} in {dst}",
        )
    )
    wrongs = [round(value * 10, 4), round(value / 10, 4), value + factor, round(x / factor, 4)]
    wrongs = [w for w in wrongs if w > 0 and w not in (x, value, factor, 1)]
    oracle = {
        "family": "conversion",
        "answer": value,
        "operands": [x, 1, factor],
        "expr": f"{fmt(x)} {src}",
        "unit": dst,
        "wrong": rng.choice(wrongs),
    }
    request = template.format(x=fmt(x), src=src, dst=dst)
    return Task("conversion", request, f"{fmt(x)} {src} to {dst}", oracle, language)


def _capital(rng: random.Random, language: str) -> Task:
    country, capital, decoy = rng.choice(CAPITALS)
    template = rng.choice(
        (
            "What is the capital of {c}?",
            "capital of {c}?",
            "Which city is the capital of {c}?",
            "Tell me the capital city of {c}.",
        )
    )
    other = rng.choice([c for _, c, _ in CAPITALS if c != capital])
    oracle = {
        "family": "capital",
        "answer": capital,
        "country": country,
        "wrong": decoy if rng.random() < 0.7 else other,
    }
    return Task("capital", template.format(c=country), f"the capital of {country}", oracle)


def listing(values: Sequence[int]) -> str:
    return ", ".join(str(v) for v in values)


def _sorting(rng: random.Random, language: str) -> Task:
    items = rng.sample(range(1, 100), rng.randint(4, 7))
    descending = rng.random() < 0.3
    answer = sorted(items, reverse=descending)
    if descending:
        template = rng.choice(
            ("Sort these from largest to smallest: {x}", "Put {x} in descending order.")
        )
    else:
        template = rng.choice(
            (
                "Sort these numbers from smallest to largest: {x}",
                "Put {x} in ascending order.",
                "sort: {x}",
                "Can you order these numbers? {x}",
            )
        )
    oracle = {"family": "sorting", "items": items, "answer": answer, "descending": descending}
    shown = listing(items)
    return Task("sorting", template.format(x=shown), f"sorting {shown}", oracle)


def _rewrite(rng: random.Random, language: str) -> Task:
    present, past, complements = rng.choice(VERBS)
    subject, complement = rng.choice(SUBJECTS), rng.choice(complements)
    source = f"{subject} {present} {complement}."
    template = rng.choice(
        (
            'Rewrite this sentence in the past tense: "{s}"',
            "Change to past tense: {s}",
            'Put "{s}" into the past tense.',
            "can you make this past tense: {s}",
        )
    )
    oracle = {
        "family": "rewrite",
        "answer": f"{subject} {past} {complement}.",
        "source": source,
        "subject": subject,
        "present": present,
        "past": past,
        "base": present[:-1],
        "complement": complement,
    }
    topic = f'the past tense of "{source[:-1]}"'
    return Task("rewrite", template.format(s=source), topic, oracle)


def _definition(rng: random.Random, language: str) -> Task:
    index = rng.randrange(len(WORDS))
    word, definition, keywords = WORDS[index]
    other = rng.choice([w for i, w in enumerate(WORDS) if i != index])
    template = rng.choice(
        (
            'What does "{w}" mean?',
            "define {w}",
            "What is the meaning of the word {w}?",
            "{w} meaning?",
        )
    )
    oracle = {
        "family": "definition",
        "word": word,
        "definition": definition,
        "keywords": list(keywords),
        "wrong": other[1],
        "wrong_keywords": list(other[2]),
    }
    return Task("definition", template.format(w=word), f"the meaning of {word}", oracle)


def _howto(rng: random.Random, language: str) -> Task:
    index = rng.randrange(len(HOWTOS))
    request, topic, keywords, answer, short = HOWTOS[index]
    other = rng.choice([h for i, h in enumerate(HOWTOS) if i != index])
    oracle = {
        "family": "howto",
        "index": index,
        "keywords": list(keywords),
        "good": answer,
        "short": short,
        "wrong": other[3],
        "wrong_short": other[4],
    }
    return Task("howto", request, topic, oracle)


def _harmful(rng: random.Random, language: str) -> Task:
    index = rng.randrange(len(HARMFUL))
    request, topic, redirect = HARMFUL[index]
    oracle = {"family": "harmful", "index": index, "harmful": True, "redirect": redirect}
    return Task("harmful", request, topic, oracle)


_MAKERS = {
    "arithmetic": _arithmetic,
    "conversion": _conversion,
    "capital": _capital,
    "sorting": _sorting,
    "rewrite": _rewrite,
    "definition": _definition,
    "howto": _howto,
    "harmful": _harmful,
}
