"""Self-evident constraints: IFEval-style checks instantiated FROM a model's own solved output.

The checkers are the IFEval instruction checkers of `posttrain.rewards.instructions` (word,
sentence and paragraph counts, keywords, forbidden words, no commas, start/end phrase,
lowercase) plus the ones SustainScore needs that IFEval lacks: a forbidden character, an
answer format (`\\boxed{}` or an 'Answer:' line), and for code a function name, no imports and
a line bound.

`extract_constraints(output, item, rng)` proposes one constraint per type the output already
satisfies (bounds rounded up, words taken from the output). A constraint must not give the
answer away, so phrases and keywords that contain the gold answer are never proposed.
`verify_constraints` re-checks every proposal against its source output and drops (and
counts) any that fails, so only self-evident constraints are ever inserted.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from posttrain.rewards.instructions import (
    INSTRUCTIONS,
    InstructionChecker,
    split_paragraphs,
    split_sentences,
    split_words,
)

Spec = dict[str, Any]  # {"id": CHECKER_ID, **kwargs}, the form `check_instruction` takes


class ForbiddenCharacter(InstructionChecker):
    id = "punctuation:forbidden_character"

    def description(self, character: str) -> str:
        return f"Do not use the character {character!r} anywhere in your answer."

    def check(self, response: str, character: str) -> bool:
        return character not in response


_FORMATS = {
    "boxed": (r"\\boxed\{[^{}]+\}", "Put your final answer in \\boxed{}."),
    "answer_line": (
        r"(?m)^Answer: \S",
        "Give the final answer on a line starting with 'Answer: '.",
    ),
}


class AnswerFormat(InstructionChecker):
    id = "detectable_format:answer_format"

    def description(self, format: str) -> str:
        return _FORMATS[format][1]

    def check(self, response: str, format: str) -> bool:
        return re.search(_FORMATS[format][0], response) is not None


class FunctionName(InstructionChecker):
    id = "code:function_name"

    def description(self, name: str) -> str:
        return f"Name the function `{name}`."

    def check(self, response: str, name: str) -> bool:
        return re.search(rf"(?m)^\s*def\s+{re.escape(name)}\s*\(", response) is not None


_IMPORT = re.compile(r"(?m)^\s*(?:import\s+\w|from\s+[\w.]+\s+import\b)")


class NoImports(InstructionChecker):
    id = "code:no_imports"

    def description(self) -> str:
        return "Do not import any modules."

    def check(self, response: str) -> bool:
        return _IMPORT.search(response) is None


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


class NumberLines(InstructionChecker):
    id = "length_constraints:number_lines"

    def description(self, num_lines: int) -> str:
        return f"Write at most {num_lines} non-empty lines."

    def check(self, response: str, num_lines: int) -> bool:
        return len(_lines(response)) <= int(num_lines)


CHECKERS: dict[str, InstructionChecker] = {
    **INSTRUCTIONS,
    **{
        c.id: c
        for c in (ForbiddenCharacter(), AnswerFormat(), FunctionName(), NoImports(), NumberLines())
    },
}
"""All checkers by id: the IFEval ones of `rewards.instructions` and the SustainScore additions."""


def _checker(spec: Mapping[str, Any]) -> tuple[InstructionChecker, dict[str, Any]]:
    if not isinstance(spec, Mapping) or spec.get("id") not in CHECKERS:
        known = ", ".join(sorted(CHECKERS))
        raise ValueError(f"unknown constraint {spec!r}: 'id' must be one of {known}")
    return CHECKERS[spec["id"]], {k: v for k, v in spec.items() if k != "id"}


def check(response: str, spec: Mapping[str, Any]) -> bool:
    """Whether `response` satisfies one constraint."""
    checker, kwargs = _checker(spec)
    return checker.check(response, **kwargs)


def describe(spec: Mapping[str, Any]) -> str:
    """The constraint worded as an instruction."""
    checker, kwargs = _checker(spec)
    return checker.description(**kwargs)


CONSTRAINT_HEADER = "Also follow these instructions:"


def insert_constraints(prompt: str, specs: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """The prompt with the constraints appended, and the inserted text (for attention spans)."""
    block = CONSTRAINT_HEADER + "\n" + "\n".join(f"- {describe(s)}" for s in specs)
    return f"{prompt}\n\n{block}", block


# --- extraction from a solved output ---------------------------------------------------------


def _round_up(value: int, step: int = 5) -> int:
    return max(step, -(-value // step) * step)


def _leaks(text: str, item: Mapping[str, Any]) -> bool:
    """Whether `text` would reveal the gold answer (or, for code, the function's name)."""
    golds = [str(item.get("gold", "")), *item.get("aliases", [])]
    lowered = text.lower()
    return any(g and g.lower() in lowered for g in golds)


def _word_count(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    n = len(split_words(output))
    if n == 0:
        return None
    return {
        "id": "length_constraints:number_words",
        "relation": "at most",
        "num_words": _round_up(n),
    }


def _sentence_count(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    if item["domain"] == "code":
        return None
    n = len(split_sentences(output))
    return (
        {"id": "length_constraints:number_sentences", "relation": "at most", "num_sentences": n}
        if n
        else None
    )


def _paragraph_count(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    if item["domain"] == "code":
        return None
    n = len(split_paragraphs(output))
    return {"id": "length_constraints:number_paragraphs", "num_paragraphs": n} if n else None


def _line_count(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    if item["domain"] != "code":
        return None
    return {"id": "length_constraints:number_lines", "num_lines": _round_up(len(_lines(output)))}


def _keyword(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    words = sorted({w.lower() for w in split_words(output) if w.isalpha() and len(w) >= 5})
    words = [w for w in words if not _leaks(w, item) and w not in str(item.get("gold", "")).lower()]
    if not words:
        return None
    return {"id": "keywords:existence", "keywords": [rng.choice(words)]}


def _forbidden_word(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    used = {w.lower() for w in split_words(output)}
    prompt_words = {w.lower() for w in split_words(item["prompt"]) if w.isalpha() and len(w) >= 5}
    absent = sorted(prompt_words - used)
    return (
        {"id": "keywords:forbidden_words", "forbidden_words": [rng.choice(absent)]}
        if absent
        else None
    )


def _no_comma(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    return (
        {"id": "punctuation:no_comma"}
        if INSTRUCTIONS["punctuation:no_comma"].check(output)
        else None
    )


def _forbidden_character(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    absent = [c for c in ";!?#%&@" if c not in output]
    return {"id": ForbiddenCharacter.id, "character": rng.choice(absent)} if absent else None


def _edge_line(output: str, last: bool) -> list[str]:
    """Tokens of the first or last non-empty line (a phrase never spans a line break)."""
    lines = _lines(output)
    return (lines[-1] if last else lines[0]).split() if lines else []


def _end_phrase(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    phrase = " ".join(_edge_line(output, last=True)[-3:])
    if item["domain"] == "code" or not phrase or _leaks(phrase, item) or re.search(r"\d", phrase):
        return None
    return {"id": "startend:end_checker", "end_phrase": phrase}


def _start_phrase(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    tokens = [] if item["domain"] == "code" else _edge_line(output, last=False)[:2]
    while tokens and (_leaks(" ".join(tokens), item) or re.search(r"\d", " ".join(tokens))):
        tokens = tokens[:-1]
    return {"id": "startend:start_checker", "start_phrase": " ".join(tokens)} if tokens else None


def _lowercase(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    spec = {"id": "change_case:english_lowercase"}
    return spec if check(output, spec) else None


def _answer_format(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    for name in ("boxed", "answer_line"):
        spec = {"id": AnswerFormat.id, "format": name}
        if check(output, spec):
            return spec
    return None


def _function_name(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    if item["domain"] != "code":
        return None
    return {"id": FunctionName.id, "name": item["entry_point"]}


def _no_imports(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    return {"id": NoImports.id} if item["domain"] == "code" else None


EXTRACTORS: list[Callable[[str, Mapping, random.Random], Spec | None]] = [
    _word_count,
    _sentence_count,
    _paragraph_count,
    _line_count,
    _keyword,
    _forbidden_word,
    _no_comma,
    _forbidden_character,
    _end_phrase,
    _start_phrase,
    _lowercase,
    _answer_format,
    _function_name,
    _no_imports,
]
"""One proposal per constraint type; each may decline (None) when it does not apply."""


def extract_constraints(output: str, item: Mapping[str, Any], rng: random.Random) -> list[Spec]:
    """Candidate constraints for a solved `item` built from its `output` (not yet verified)."""
    return [spec for extract in EXTRACTORS if (spec := extract(output, item, rng)) is not None]


def verify_constraints(output: str, specs: Sequence[Spec]) -> tuple[list[Spec], list[Spec]]:
    """(kept, dropped): kept are the specs `output` satisfies."""
    kept, dropped = [], []
    for spec in specs:
        (kept if check(output, spec) else dropped).append(spec)
    return kept, dropped
