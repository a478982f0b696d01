"""Self-evident constraints: IFEval-style checks instantiated FROM a model's own solved output.

Constraints with an IFEval id (word and sentence counts, keywords, forbidden words, no commas,
end phrase, lowercase) carry IFEval's official kwargs and are checked by the official
implementation (`posttrain.rewards.instructions.check_instruction`); only their wording, the
text inserted into the prompt, is written here. The others are SustainScore's own: a start
phrase, paragraphs separated by blank lines (IFEval's paragraphs are split by `***` lines
instead), a forbidden character, an answer format (`\\boxed{}` or an 'Answer:' line), and for
code a function name, no imports and a line bound.

`extract_constraints(output, item, rng)` proposes one constraint per type the output already
satisfies (bounds rounded up, words taken from the output). A constraint must not give the
answer away, so phrases and keywords that contain the gold answer are never proposed.
`verify_constraints` re-checks every proposal against its source output and drops (and
counts) any that fails, so only self-evident constraints are ever inserted.
"""

from __future__ import annotations

import random
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from posttrain.rewards.ifeval import count_sentences, count_words
from posttrain.rewards.instructions import check_instruction

Spec = dict[str, Any]  # {"id": CHECKER_ID, **kwargs}, the form `check_instruction` takes


class InstructionChecker(ABC):
    """A verifiable constraint: `description(**kwargs)` is the instruction as a user would
    give it, `check(response, **kwargs)` whether a response follows it."""

    id: str = ""

    @abstractmethod
    def description(self, **kwargs: Any) -> str:
        """The instruction, worded as a user would give it."""

    @abstractmethod
    def check(self, response: str, **kwargs: Any) -> bool:
        """Whether `response` follows the instruction."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.id!r})"


class IFEvalInstruction(InstructionChecker):
    """An IFEval instruction: checked by the official code, worded by `wording(**kwargs)`."""

    def __init__(self, instruction_id: str, wording: Callable[..., str]) -> None:
        self.id = instruction_id
        self._wording = wording

    def description(self, **kwargs: Any) -> str:
        return self._wording(**kwargs)

    def check(self, response: str, **kwargs: Any) -> bool:
        return check_instruction(response, {"id": self.id, **kwargs})


def _count(relation: str, bound: int, unit: str) -> str:
    # IFEval's relations are "less than" and "at least"; "less than N" reads "at most N - 1".
    if relation == "less than":
        return f"Answer with at most {int(bound) - 1} {unit}."
    return f"Answer with {relation} {bound} {unit}."


def _quoted(words: list[str]) -> str:
    return ", ".join(repr(w) for w in words)


_IFEVAL_WORDING: dict[str, Callable[..., str]] = {
    "length_constraints:number_words": lambda relation, num_words: _count(
        relation, num_words, "words"
    ),
    "length_constraints:number_sentences": lambda relation, num_sentences: _count(
        relation, num_sentences, "sentences"
    ),
    "keywords:existence": lambda keywords: (
        f"Include the keywords {_quoted(keywords)} in your answer."
    ),
    "keywords:forbidden_words": lambda forbidden_words: (
        f"Do not use the words {_quoted(forbidden_words)}."
    ),
    "punctuation:no_comma": lambda: "Do not use any commas in your answer.",
    "startend:end_checker": lambda end_phrase: (
        f"End your answer with the exact phrase {end_phrase!r}."
    ),
    "change_case:english_lowercase": lambda: (
        "Write your entire answer in lowercase letters; no capital letters at all."
    ),
}


class StartsWith(InstructionChecker):
    """Not in IFEval (its `startend:` has only the end phrase and quotation)."""

    id = "startend:start_checker"

    def description(self, start_phrase: str) -> str:
        return f"Start your answer with the exact phrase {start_phrase!r}."

    def check(self, response: str, start_phrase: str) -> bool:
        return response.strip().lower().startswith(start_phrase.strip().lower())


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs: split at blank lines and at `***` lines."""
    pieces = re.split(r"\n\s*\n|^\s*\*\*\*\s*$", text.strip(), flags=re.MULTILINE)
    return [p for p in pieces if p and p.strip()]


class BlankLineParagraphs(InstructionChecker):
    """Exactly N paragraphs separated by blank lines (or `***` lines). IFEval's
    `number_paragraphs` counts only `***`-separated ones, which solved outputs almost never
    have, so this is SustainScore's own id."""

    id = "length_constraints:number_blank_line_paragraphs"

    def description(self, num_paragraphs: int) -> str:
        return f"Write exactly {num_paragraphs} paragraphs, separated by blank lines."

    def check(self, response: str, num_paragraphs: int) -> bool:
        return len(split_paragraphs(response)) == int(num_paragraphs)


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


_OWN: tuple[InstructionChecker, ...] = (
    StartsWith(),
    BlankLineParagraphs(),
    ForbiddenCharacter(),
    AnswerFormat(),
    FunctionName(),
    NoImports(),
    NumberLines(),
)
CHECKERS: dict[str, InstructionChecker] = {
    **{i: IFEvalInstruction(i, wording) for i, wording in _IFEVAL_WORDING.items()},
    **{c.id: c for c in _OWN},
}
"""All checkers by id: IFEval's (checked by the official code) and SustainScore's own."""


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
    n = count_words(output)
    if n == 0:
        return None
    # At most round_up(n) words, in IFEval's relations.
    return {
        "id": "length_constraints:number_words",
        "relation": "less than",
        "num_words": _round_up(n) + 1,
    }


def _sentence_count(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    if item["domain"] == "code":
        return None
    n = count_sentences(output)
    return (
        {
            "id": "length_constraints:number_sentences",
            "relation": "less than",
            "num_sentences": n + 1,
        }
        if n
        else None
    )


def _paragraph_count(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    if item["domain"] == "code":
        return None
    n = len(split_paragraphs(output))
    return {"id": BlankLineParagraphs.id, "num_paragraphs": n} if n else None


def _line_count(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    if item["domain"] != "code":
        return None
    return {"id": "length_constraints:number_lines", "num_lines": _round_up(len(_lines(output)))}


def _words(text: str) -> list[str]:
    """Runs of letters and digits (apostrophe suffixes kept): where keywords are drawn from."""
    return re.findall(r"[A-Za-z0-9]+(?:['’][A-Za-z]+)*", text)


def _keyword(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    words = sorted({w.lower() for w in _words(output) if w.isalpha() and len(w) >= 5})
    words = [w for w in words if not _leaks(w, item) and w not in str(item.get("gold", "")).lower()]
    if not words:
        return None
    return {"id": "keywords:existence", "keywords": [rng.choice(words)]}


def _forbidden_word(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    used = {w.lower() for w in _words(output)}
    prompt_words = {w.lower() for w in _words(item["prompt"]) if w.isalpha() and len(w) >= 5}
    absent = sorted(prompt_words - used)
    return (
        {"id": "keywords:forbidden_words", "forbidden_words": [rng.choice(absent)]}
        if absent
        else None
    )


def _no_comma(output: str, item: Mapping, rng: random.Random) -> Spec | None:
    spec = {"id": "punctuation:no_comma"}
    return spec if check(output, spec) else None


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
