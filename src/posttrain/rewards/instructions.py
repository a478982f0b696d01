"""Verifiable instructions and rule verifiers: deciding by code whether a response complies.

- IFEval-style instruction checkers (Zhou et al. 2023, arXiv:2311.07911): word, sentence and
  paragraph counts, bullets, JSON, keywords, forbidden words, no commas, start/end phrase,
  lowercase. Each is an `InstructionChecker` with an IFEval id in `INSTRUCTIONS`; a spec
  `{"id": ID, **kwargs}` is checked by `check_instruction` and several are combined by
  `instruction_score` (also registered as the `instruction_following` reward).
- Rule verifiers for rubric items (`verify`, validated by `check_verifier`): a regex, keywords,
  or an instruction checker, so an item a rule can decide is never sent to an LLM judge.

The interface others use is kept small (`InstructionChecker`, `INSTRUCTIONS`,
`check_instruction`, `instruction_score`, the `split_*` text helpers) so that the checkers can
be swapped for lm-evaluation-harness's official IFEval implementation without touching them.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from posttrain.rewards.builtin import Completion, completion_text
from posttrain.rewards.registry import register_reward

__all__ = [
    "INSTRUCTIONS",
    "InstructionChecker",
    "check_instruction",
    "check_verifier",
    "instruction_following_reward",
    "instruction_ids",
    "instruction_score",
    "split_paragraphs",
    "split_sentences",
    "split_words",
    "verify",
]

# --- splitting text -----------------------------------------------------------------------------


def split_words(text: str) -> list[str]:
    """Word tokens: runs of letters and digits, with apostrophe suffixes kept (don't)."""
    return re.findall(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)*", text)


def split_sentences(text: str) -> list[str]:
    """Sentences: split after . ! ? and at blank lines; pieces without a word dropped."""
    pieces = re.split(r"(?<=[.!?])\s+|\n\s*\n", text.strip())
    return [p for p in pieces if re.search(r"\w", p)]


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs: split at blank lines and at `***` lines (IFEval's markers)."""
    pieces = re.split(r"\n\s*\n|^\s*\*\*\*\s*$", text.strip(), flags=re.MULTILINE)
    return [p for p in pieces if p and p.strip()]


def _has_phrase(text: str, phrase: str) -> bool:
    """Case-insensitive whole-word match of a word or phrase (inner whitespace flexible)."""
    words = phrase.split()
    if not words:
        return False
    pattern = r"\s+".join(re.escape(w) for w in words)
    return re.search(rf"(?<!\w){pattern}(?!\w)", text, re.IGNORECASE) is not None


# --- instruction checkers -----------------------------------------------------------------------

_BULLET = re.compile(r"^\s*(?:[-*•+]|\d+[.)])\s+\S", re.MULTILINE)
_RELATIONS = ("at most", "at least", "less than", "more than", "exactly")


def _compare(value: int, relation: str, bound: int) -> bool:
    if relation == "at most":
        return value <= bound
    if relation == "at least":
        return value >= bound
    if relation == "less than":
        return value < bound
    if relation == "more than":
        return value > bound
    if relation == "exactly":
        return value == bound
    raise ValueError(f"unknown relation {relation!r}; expected one of {', '.join(_RELATIONS)}")


def _as_strings(value: Any, name: str) -> list[str]:
    """A keyword argument given as one string or a list of them (a parquet cell may hold a
    numpy array)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a list, got {type(value).__name__}")
    values = list(value)
    if not values or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{name} must be a string or a non-empty list of strings")
    return values


class InstructionChecker(ABC):
    """A verifiable instruction (IFEval-style): `description(**kwargs)` is the instruction as a
    user would give it, `check(response, **kwargs)` whether a response follows it."""

    id: str = ""

    @abstractmethod
    def description(self, **kwargs: Any) -> str:
        """The instruction, worded as a user would give it."""

    @abstractmethod
    def check(self, response: str, **kwargs: Any) -> bool:
        """Whether `response` follows the instruction."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"


def _is_json(text: str) -> bool:
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*\n?(.*?)\n?```", body, re.DOTALL | re.IGNORECASE)
    if fenced:
        body = fenced[1].strip()
    try:
        json.loads(body)
    except json.JSONDecodeError:
        return False
    return True


def _quoted(words: list[str]) -> str:
    return ", ".join(repr(w) for w in words)


class NumberWords(InstructionChecker):
    id = "length_constraints:number_words"

    def description(self, relation: str, num_words: int) -> str:
        return f"Answer with {relation} {num_words} words."

    def check(self, response: str, relation: str, num_words: int) -> bool:
        return _compare(len(split_words(response)), relation, int(num_words))


class NumberSentences(InstructionChecker):
    id = "length_constraints:number_sentences"

    def description(self, relation: str, num_sentences: int) -> str:
        return f"Answer with {relation} {num_sentences} sentences."

    def check(self, response: str, relation: str, num_sentences: int) -> bool:
        return _compare(len(split_sentences(response)), relation, int(num_sentences))


class NumberParagraphs(InstructionChecker):
    id = "length_constraints:number_paragraphs"

    def description(self, num_paragraphs: int) -> str:
        return f"Write exactly {num_paragraphs} paragraphs, separated by blank lines."

    def check(self, response: str, num_paragraphs: int) -> bool:
        return len(split_paragraphs(response)) == int(num_paragraphs)


class NumberBullets(InstructionChecker):
    id = "detectable_format:number_bullet_lists"

    def description(self, num_bullets: int) -> str:
        return f"Answer with exactly {num_bullets} bullet points, each a line starting with -."

    def check(self, response: str, num_bullets: int) -> bool:
        return len(_BULLET.findall(response)) == int(num_bullets)


class JsonFormat(InstructionChecker):
    id = "detectable_format:json_format"

    def description(self) -> str:
        return "Wrap your entire answer in valid JSON."

    def check(self, response: str) -> bool:
        return _is_json(response)


class KeywordsExist(InstructionChecker):
    id = "keywords:existence"

    def description(self, keywords: Any) -> str:
        return f"Include the keywords {_quoted(_as_strings(keywords, 'keywords'))} in your answer."

    def check(self, response: str, keywords: Any) -> bool:
        return all(_has_phrase(response, k) for k in _as_strings(keywords, "keywords"))


class ForbiddenWords(InstructionChecker):
    id = "keywords:forbidden_words"

    def description(self, forbidden_words: Any) -> str:
        return f"Do not use the words {_quoted(_as_strings(forbidden_words, 'forbidden_words'))}."

    def check(self, response: str, forbidden_words: Any) -> bool:
        words = _as_strings(forbidden_words, "forbidden_words")
        return not any(_has_phrase(response, k) for k in words)


class NoComma(InstructionChecker):
    id = "punctuation:no_comma"

    def description(self) -> str:
        return "Do not use any commas in your answer."

    def check(self, response: str) -> bool:
        return "," not in response and "\uff0c" not in response


class EndsWith(InstructionChecker):
    id = "startend:end_checker"

    def description(self, end_phrase: str) -> str:
        return f"End your answer with the exact phrase {end_phrase!r}."

    def check(self, response: str, end_phrase: str) -> bool:
        return response.strip().lower().endswith(end_phrase.strip().lower())


class StartsWith(InstructionChecker):
    id = "startend:start_checker"

    def description(self, start_phrase: str) -> str:
        return f"Start your answer with the exact phrase {start_phrase!r}."

    def check(self, response: str, start_phrase: str) -> bool:
        return response.strip().lower().startswith(start_phrase.strip().lower())


class AllLowercase(InstructionChecker):
    id = "change_case:english_lowercase"

    def description(self) -> str:
        return "Write your entire answer in lowercase letters; no capital letters at all."

    def check(self, response: str) -> bool:
        return response == response.lower() and re.search(r"[a-z]", response) is not None


_CHECKERS: list[InstructionChecker] = [
    NumberWords(),
    NumberSentences(),
    NumberParagraphs(),
    NumberBullets(),
    JsonFormat(),
    KeywordsExist(),
    ForbiddenWords(),
    NoComma(),
    EndsWith(),
    StartsWith(),
    AllLowercase(),
]
INSTRUCTIONS: dict[str, InstructionChecker] = {c.id: c for c in _CHECKERS}
"""The instruction checkers by id (IFEval's naming where IFEval has the instruction)."""


def instruction_ids() -> list[str]:
    return sorted(INSTRUCTIONS)


def _instruction(spec: Mapping[str, Any]) -> tuple[InstructionChecker, dict[str, Any]]:
    """The checker and kwargs of `{"id": ..., **kwargs}` or `{"id": ..., "kwargs": {...}}`."""
    if not isinstance(spec, Mapping) or "id" not in spec:
        raise ValueError(f"an instruction must be a mapping with an 'id', got {spec!r}")
    checker = INSTRUCTIONS.get(spec["id"])
    if checker is None:
        raise ValueError(
            f"unknown instruction id {spec['id']!r}; known: {', '.join(instruction_ids())}"
        )
    if isinstance(spec.get("kwargs"), Mapping):
        kwargs = dict(spec["kwargs"])
    else:
        kwargs = {k: v for k, v in spec.items() if k not in ("id", "type")}
    return checker, kwargs


def check_instruction(response: str, spec: Mapping[str, Any]) -> bool:
    """Whether `response` follows one instruction; bad arguments are a ValueError naming it."""
    checker, kwargs = _instruction(spec)
    try:
        return checker.check(response, **kwargs)
    except TypeError as exc:
        raise ValueError(f"instruction {checker.id!r}: bad arguments {kwargs}: {exc}") from None


def instruction_score(
    response: str,
    instructions: Sequence[Mapping[str, Any]],
    combine: Literal["min", "sum", "average"] | str = "min",
) -> float:
    """IFEval-style score over several instructions: "sum" counts those followed, "min" is 1
    only when all are (IFEval's strict prompt-level accuracy), "average" is the fraction.
    No instructions: vacuously followed (min/average 1.0, sum 0.0)."""
    if combine not in ("min", "sum", "average"):
        raise ValueError(f"unknown combine {combine!r}; expected 'min', 'sum' or 'average'")
    passed = [check_instruction(response, spec) for spec in instructions]
    if combine == "sum":
        return float(sum(passed))
    if not passed:
        return 1.0
    if combine == "min":
        return float(all(passed))
    return sum(passed) / len(passed)


# --- rule verifiers for rubric items ------------------------------------------------------------

_VERIFIER_TYPES = ("regex", "keywords", "instruction")


def check_verifier(verifier: Mapping[str, Any]) -> None:
    """Raise a ValueError saying what is wrong with a rule verifier (see `verify`)."""
    kind = verifier.get("type")
    if kind == "regex":
        pattern = verifier.get("pattern")
        if not isinstance(pattern, str):
            raise ValueError("a regex verifier needs a string 'pattern'")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"bad regex {pattern!r}: {exc}") from None
        if verifier.get("present_if", "match") not in ("match", "no_match"):
            raise ValueError("'present_if' must be 'match' or 'no_match'")
    elif kind == "keywords":
        if not verifier.get("all") and not verifier.get("any"):
            raise ValueError("a keywords verifier needs a non-empty 'all' or 'any' list")
        for key in ("all", "any"):
            if verifier.get(key):
                _as_strings(verifier[key], key)
    elif kind == "instruction":
        _instruction(verifier)
    else:
        raise ValueError(f"unknown verifier type {kind!r}; expected one of {_VERIFIER_TYPES}")


def verify(verifier: Mapping[str, Any], response: str) -> bool:
    """Decide a rubric item by code (True = PRESENT):

    - `{"type": "regex", "pattern": P, "present_if": "match" | "no_match", "ignore_case": bool}`;
    - `{"type": "keywords", "all": [...], "any": [...]}`: case-insensitive whole-word matches,
      every word of `all` and at least one of `any` (either may be left out);
    - `{"type": "instruction", "id": ID, **kwargs}`: an instruction checker (`INSTRUCTIONS`).
    """
    check_verifier(verifier)
    kind = verifier["type"]
    if kind == "regex":
        flags = re.IGNORECASE if verifier.get("ignore_case") else 0
        found = re.search(verifier["pattern"], response, flags) is not None
        return found if verifier.get("present_if", "match") == "match" else not found
    if kind == "keywords":
        every = _as_strings(verifier["all"], "all") if verifier.get("all") else []
        some = _as_strings(verifier["any"], "any") if verifier.get("any") else []
        return all(_has_phrase(response, k) for k in every) and (
            not some or any(_has_phrase(response, k) for k in some)
        )
    return check_instruction(response, verifier)


# --- TRL reward ---------------------------------------------------------------------------------


@register_reward("instruction_following")
def instruction_following_reward(
    prompts: list[Any],
    completions: list[Completion],
    completion_ids: list[Any] | None = None,
    **columns: Any,
) -> list[float | None]:
    """Verifiable instructions checked by code: each row's `instructions` (a list of
    `{"id", **kwargs}`), combined by its `instruction_combine` ("min" unless given: all must
    hold, as IFEval's strict accuracy); None for a row without instructions."""
    n = len(completions)
    if "instructions" not in columns:
        raise ValueError(
            "reward 'instruction_following' needs an 'instructions' column (a list of "
            f"{{'id': ..., **kwargs}} per row); got columns {sorted(columns)}"
        )
    instructions = list(columns["instructions"])
    combines = list(columns.get("instruction_combine") or ["min"] * n)
    if len(instructions) != n or len(combines) != n:
        raise ValueError(f"reward 'instruction_following': columns of another length than {n}")
    return [
        None
        if not row
        else instruction_score(completion_text(completion), row, combine=mode or "min")
        for completion, row, mode in zip(completions, instructions, combines, strict=True)
    ]
