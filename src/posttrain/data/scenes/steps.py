"""Claims and their sentences: `render_claim` writes a step, `parse_step` reads one back.

A claim is a small dict, e.g. {"type": "count", "colour": "red", "shape": "circle",
"value": 3} <-> "There are 3 red circles." Parsing tolerates case, punctuation, a "Step 3:"
prefix, a leading reflection phrase ("Wait, let me re-check:") and number words; a sentence
that is none of ours parses to None (a verifier calls it unverifiable).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from posttrain.data.scenes.facts import PROPERTY_PHRASES

Claim = dict[str, Any]

REFLECTION_PHRASES = (
    "wait, let me re-check",
    "wait, let me recheck",
    "wait, let me double-check",
    "let me re-check",
    "let me double-check",
    "on second thought",
    "wait",
    "hmm",
    "actually",
)
"""Openings of a self-reflection step, longest first within each family."""

RELATIONS = {"left_of": "left of", "right_of": "right of", "above": "above", "below": "below"}
INVERSE = {"left_of": "right_of", "right_of": "left_of", "above": "below", "below": "above"}
COMPARISONS = {">": "greater than", "<": "less than", "=": "equal to"}
_COMPARISON_WORDS = {
    "greater than": ">", "more than": ">", "larger than": ">", "bigger than": ">",
    "higher than": ">", "less than": "<", "fewer than": "<", "smaller than": "<",
    "lower than": "<", "equal to": "=", "the same as": "=",
}  # fmt: skip
_NUMBER_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
]
NUM = r"(-?\d+|" + "|".join(_NUMBER_WORDS) + r")"


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def render_claim(claim: Claim) -> str:
    """The sentence of a claim (the inverse of `parse_step`)."""
    kind = claim["type"]
    if kind == "count":
        n, noun = claim["value"], f"{claim['colour']} {claim['shape']}"
        return f"There is 1 {noun}." if n == 1 else f"There are {n} {noun}s."
    if kind == "attribute":
        colour, shape = claim["colour"], claim["shape"]
        return f"Object {claim['label']} is {_article(colour)} {colour} {shape}."
    if kind == "name":
        return f"Object {claim['label']} is {_article(claim['name'])} {claim['name']}."
    if kind == "position":
        return f"Object {claim['label']} is in row {claim['row']}, column {claim['col']}."
    if kind == "relation":
        rel = RELATIONS[claim["relation"]]
        return f"Object {claim['subject']} is {rel} object {claim['object']}."
    if kind == "value" and claim["source"] == "bar":
        return f"The bar for {claim['key']} is {claim['value']}."
    if kind == "value":
        row, column = claim["key"].split("/", 1)
        return f"The cell for {row} under {column} is {claim['value']}."
    if kind == "fact":
        phrase = PROPERTY_PHRASES[claim["property"]][0 if claim["value"] else 1]
        thing = claim["thing"]
        return f"{_article(thing).capitalize()} {thing} {phrase}."
    if kind == "arithmetic":
        return f"{claim['left']} {claim['op']} {claim['right']} = {claim['value']}."
    if kind == "comparison":
        return f"{claim['left']} is {COMPARISONS[claim['relation']]} {claim['right']}."
    if kind == "conclusion":
        return f"So the answer is {claim['answer']}."
    raise ValueError(f"unknown claim type {kind!r}")


def format_chain(step_texts: Sequence[str], answer: str) -> str:
    """The gold chain format: "Step 1: ..." lines, then "Answer: ..."."""
    lines = [f"Step {i}: {text}" for i, text in enumerate(step_texts, 1)]
    return "\n".join([*lines, f"Answer: {answer}"])


def strip_reflection(text: str) -> tuple[bool, str]:
    """(whether the step opens with a reflection phrase, the step without it or a Step prefix)."""
    text = re.sub(r"^\s*step\s*\d+\s*[:.)]\s*", "", text.strip(), flags=re.IGNORECASE)
    lowered = text.lower()
    for phrase in REFLECTION_PHRASES:
        if lowered.startswith(phrase) and not lowered[len(phrase) : len(phrase) + 1].isalpha():
            return True, text[len(phrase) :].lstrip(" ,:;.!-—").strip()
    return False, text


def _int(word: str) -> int:
    word = word.lower()
    return _NUMBER_WORDS.index(word) if word in _NUMBER_WORDS else int(word)


def _singular(word: str, n: int) -> str:
    return word[:-1] if n != 1 and word.lower().endswith("s") else word


_RULES: list[tuple[str, Callable[[re.Match[str]], Claim]]] = [
    (
        rf"there (?:are|is) {NUM} (\w+) (\w+)",
        lambda m: {
            "type": "count",
            "colour": m[2].lower(),
            "shape": _singular(m[3].lower(), _int(m[1])),
            "value": _int(m[1]),
        },
    ),
    (
        r"object (\w+) is (?:in|at) row (\d+),? (?:and )?col(?:umn)? (\d+)",
        lambda m: {"type": "position", "label": m[1].upper(), "row": int(m[2]), "col": int(m[3])},
    ),
    (
        r"object (\w+) is (?:to the )?(left of|right of|above|below) object (\w+)",
        lambda m: {
            "type": "relation",
            "subject": m[1].upper(),
            "relation": m[2].lower().replace(" ", "_"),
            "object": m[3].upper(),
        },
    ),
    (
        r"object (\w+) is an? (\w+) (\w+)",
        lambda m: {
            "type": "attribute",
            "label": m[1].upper(),
            "colour": m[2].lower(),
            "shape": m[3].lower(),
        },
    ),
    (
        r"object (\w+) is an? (\w+)",
        lambda m: {"type": "name", "label": m[1].upper(), "name": m[2].lower()},
    ),
    (
        rf"the bar for (.+?) (?:is|shows) {NUM}",
        lambda m: {"type": "value", "source": "bar", "key": m[1], "value": _int(m[2])},
    ),
    (
        rf"the cell for (.+?) under (.+?) (?:is|shows) {NUM}",
        lambda m: {"type": "value", "source": "cell", "key": f"{m[1]}/{m[2]}", "value": _int(m[3])},
    ),
    (
        r"(?:an? |the )?([a-z]+) ("
        + "|".join(p for ps in PROPERTY_PHRASES.values() for p in ps)
        + ")",
        lambda m: _fact(m[1], m[2]),
    ),
    (
        rf"{NUM} ?([-+*x×]) ?{NUM} ?= ?{NUM}",
        lambda m: {
            "type": "arithmetic",
            "left": _int(m[1]),
            "op": {"x": "*", "×": "*"}.get(m[2].lower(), m[2]),
            "right": _int(m[3]),
            "value": _int(m[4]),
        },
    ),
    (
        rf"{NUM} is ({'|'.join(_COMPARISON_WORDS)}) {NUM}",
        lambda m: {
            "type": "comparison",
            "left": _int(m[1]),
            "relation": _COMPARISON_WORDS[m[2].lower()],
            "right": _int(m[3]),
        },
    ),
    (
        rf"{NUM} ?([<>=]) ?{NUM}",
        lambda m: {"type": "comparison", "left": _int(m[1]), "relation": m[2], "right": _int(m[3])},
    ),
    (
        r"(?:so|therefore|thus|hence)?,? ?the (?:final )?answer is:? (.+)",
        lambda m: {"type": "conclusion", "answer": m[1].strip()},
    ),
]
_COMPILED = [(re.compile(rf"^{p}$", re.IGNORECASE), build) for p, build in _RULES]


def _fact(thing: str, phrase: str) -> Claim:
    for prop, (yes, no) in PROPERTY_PHRASES.items():
        if phrase.lower() in (yes, no):
            return {
                "type": "fact",
                "thing": thing.lower(),
                "property": prop,
                "value": phrase.lower() == yes,
            }
    raise AssertionError(phrase)  # the regex admits only these phrases


def parse_step(text: str) -> Claim | None:
    """The claim a step sentence states, or None when it is not one of our sentences."""
    _, body = strip_reflection(text)
    body = re.sub(r"\s+", " ", body).strip().rstrip(".!;").strip()
    body = body.replace("’", "'")
    for pattern, build in _COMPILED:
        match = pattern.match(body)
        if match:
            return build(match)
    return None
