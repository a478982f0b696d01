"""Splitting a model's chain of thought into steps and a final answer.

Step-level judging needs the same steps for every judge, and models write anything: the
gold `Step 1: ... / Answer: X` format, numbered or bulleted lists, "First, ... Then, ...
Finally, ..." prose, or one paragraph. `segment_chain` tries, in order, explicit `Step N:`
markers, numbered lines, bullets, ordinal words, and otherwise sentences (a decimal such as
3.5 or an abbreviation such as "e.g." does not end a sentence). A step that opens with a
self-reflection phrase ("Wait, let me re-check: ...") always starts a step of its own, since
MM-THEBench's first finding is about what follows such phrases (`is_reflection`).

The final answer comes from an `Answer: X` line, else "the answer is X" (or `\\boxed{X}`),
else a short last line; `format_ok` is False when none is found (MM-THEBench's third
finding counts these format-invalid outputs by task).

`segment_with_judge` is the third option: a ChatModel returns the steps as a JSON list
(re-asked when unreadable); where it never gives a usable list the rule segmentation is
used and `markers` records the fallback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from posttrain.models.chat.base import ChatModel, GenerationParams
from posttrain.models.chat.replies import JudgeStats, ask_until_parsed, json_candidates

__all__ = [
    "Chain",
    "is_reflection",
    "segment_chain",
    "segment_many_with_judge",
    "segment_with_judge",
    "split_sentences",
]

MARKERS = ("step", "numbered", "bullets", "ordinal", "sentences", "judge", "empty")
"""How a chain's steps were found; a judge that failed gives `judge-fallback:<rule>`."""


@dataclass
class Chain:
    """A segmented chain of thought: its steps, the final answer (None when none could be
    found), whether the output had a findable answer, how the steps were found (`MARKERS`)
    and where the answer came from (answer-label, answer-phrase, boxed, last-line, none)."""

    steps: list[str]
    answer: str | None
    format_ok: bool
    markers: str
    answer_source: str = "none"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Chain:
        return cls(
            steps=list(record["steps"]),
            answer=record.get("answer"),
            format_ok=bool(record["format_ok"]),
            markers=record.get("markers", "sentences"),
            answer_source=record.get("answer_source", "none"),
            notes=list(record.get("notes", [])),
        )


# --- reflection ---------------------------------------------------------------------------------

_REFLECTION = re.compile(
    r"""^(?:
        wait | hold\ on | hmm+ | oops | on\ second\ thought | actually
        | (?:but|no|oh)\s*,?\s*wait
        | let\ me\ (?:re-?check | double[-\ ]?check | re-?examine | re-?consider | re-?count
                   | re-?verify | verify | check\ again | look\ again | re-?read | reconsider)
        | let'?s\ (?:re-?check | double[-\ ]?check | verify | look\ again | re-?count)
        | re-?checking | double[-\ ]?checking | looking\ again
        | upon\ (?:closer\ )?(?:inspection | reflection | review | re-?examination)
        | i\ made\ a\ mistake | correction\s*:
    )\b""",
    re.IGNORECASE | re.VERBOSE,
)
_STEP_PREFIX = re.compile(r"^\s*(?:[-*•]\s+|\d+[.)]\s+|\**step\s*\d+\**\s*[:.)]\**\s*)", re.I)


def is_reflection(step: str) -> bool:
    """Whether a step opens with a self-reflection phrase ("Wait", "let me re-check", "on
    second thought", "hmm, actually", "let me double-check", ...), case-insensitively, after
    any list or `Step N:` marker and markdown emphasis."""
    text = _STEP_PREFIX.sub("", step, count=1).lstrip("*_\"' ")
    return bool(_REFLECTION.match(text))


# --- sentences ----------------------------------------------------------------------------------

_ABBREVIATIONS = frozenset(
    [
        "e.g",
        "i.e",
        "etc",
        "vs",
        "cf",
        "approx",
        "fig",
        "figs",
        "no",
        "nos",
        "mr",
        "mrs",
        "ms",
        "dr",
        "st",
        "al",
        "resp",
        "ca",
        "eq",
    ]
)
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences of one paragraph. A full stop ends a sentence only before whitespace and a
    word that does not start in lower case, and not after an abbreviation ("e.g.", "vs.")
    or a single letter ("A." of a choice list is kept with its text)."""
    sentences, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        following = text[end : end + 1]
        before = text[start : match.start()].split()
        last_word = before[-1].lower().rstrip(".") if before else ""
        if following.islower() or last_word in _ABBREVIATIONS:
            continue
        if match.group().startswith(".") and len(last_word) == 1 and last_word.isalpha():
            continue
        sentences.append(text[start:end].strip())
        start = end
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


# --- the answer ---------------------------------------------------------------------------------

_ANSWER_LINE = re.compile(
    r"^[\s>#*_-]*(?:the\s+)?(?:final\s+)?answer\s*\**\s*[:：]\s*(?P<answer>.+?)\s*$", re.I | re.M
)
_ANSWER_INLINE = re.compile(
    r"(?<=[.!?:])[ \t]+\**(?:the\s+)?(?:final\s+)?answer\s*\**\s*[:：]\s*(?P<answer>[^\n]+?)\s*$",
    re.I | re.M,
)
_ANSWER_IS = (
    r"(?:the\s+)?(?:final\s+|correct\s+)?answer\s+(?:is|=|would\s+be|should\s+be)\s*:?\s*"
    r"(?P<answer>[^\n]*?)(?=\.?\s*$|\.\s+[A-Z]|\n)"
)
_ANSWER_PHRASE_INLINE = re.compile(r"\b" + _ANSWER_IS, re.I)
_BOXED = re.compile(r"\\boxed\{(?P<answer>[^{}]*)\}")
_LAST_LINE_WORDS = 6


def _clean_answer(text: str) -> str:
    answer = text.strip()
    boxed = _BOXED.search(answer)
    if boxed:
        answer = boxed.group("answer")
    previous = None
    while previous != answer:  # emphasis, quotes and a full stop, in any nesting
        previous = answer
        answer = re.sub(r"[.;,!]+$", "", answer.strip().strip("*_`$\"'“”")).strip()
    return answer


def _find_answer(text: str) -> tuple[str | None, str, str]:
    """(answer, source, the text left for the steps)."""
    for pattern in (_ANSWER_LINE, _ANSWER_INLINE):
        labelled = list(pattern.finditer(text))
        if labelled:
            last = labelled[-1]
            answer = _clean_answer(last.group("answer"))
            if answer:
                return answer, "answer-label", text[: last.start()] + text[last.end() :]
    boxed = list(_BOXED.finditer(text))
    if boxed:
        return _clean_answer(boxed[-1].group("answer")), "boxed", text
    phrases = list(_ANSWER_PHRASE_INLINE.finditer(text))
    if phrases:
        answer = _clean_answer(phrases[-1].group("answer"))
        if answer:
            return answer, "answer-phrase", text
    body = [line for line in text.splitlines() if line.strip()]
    if len(body) >= 2:
        last_line = body[-1].strip()
        if not _STEP_PREFIX.match(last_line) and _looks_like_answer(last_line):
            kept = text.rstrip()
            return _clean_answer(last_line), "last-line", kept[: kept.rfind(last_line)]
    return None, "none", text


def _looks_like_answer(line: str) -> bool:
    """A bare last line such as "5", "B." or "the red circle", not a sentence of the chain:
    up to two words, or up to six without a sentence's final punctuation."""
    words = len(line.split())
    return words <= 2 or (words <= _LAST_LINE_WORDS and line[-1] not in ".!?")


# --- steps --------------------------------------------------------------------------------------

_STEP_MARK = re.compile(
    r"(?:^|(?<=\n))[ \t>]*\**step\s*(\d+)\**\s*[:.)]\**|(?<=\s)\**step\s*(\d+)\**\s*:\**", re.I
)
_NUMBERED = re.compile(r"^[ \t]*\**\d+[.)]\**[ \t]+", re.M)
_BULLET = re.compile(r"^[ \t]*[-*•][ \t]+", re.M)
_ORDINAL = re.compile(
    r"^(?:first(?:ly)?|second(?:ly)?|third(?:ly)?|then|next|after\s+that|afterwards|"
    r"finally|lastly|last)\b\s*,?",
    re.I,
)


def _clean_step(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text.strip("*_ ").strip() if text.startswith("*") else text


def _split_at(text: str, pattern: re.Pattern[str]) -> list[str]:
    """Pieces of `text` starting at each match of `pattern` (the marker dropped); text before
    the first marker is a piece of its own."""
    starts = [(m.start(), m.end()) for m in pattern.finditer(text)]
    pieces = [text[: starts[0][0]]] if starts else [text]
    for (_, end), (next_start, _) in zip(starts, [*starts[1:], (len(text), 0)], strict=True):
        pieces.append(text[end:next_start])
    return [p for p in (_clean_step(p) for p in pieces) if p]


def _split_reflections(steps: list[str]) -> list[str]:
    """A reflection sentence inside a step starts a new step (marked steps may hold several
    sentences). A sentence that only states the final answer ("So the answer is 5.") stays a
    step: it is where a conclusion that does not follow from the chain is written."""
    out: list[str] = []
    for step in steps:
        current: list[str] = []
        for sentence in split_sentences(step):
            if current and is_reflection(sentence):
                out.append(" ".join(current))
                current = []
            current.append(sentence)
        if current:
            out.append(" ".join(current))
    return out


def _ordinal_steps(sentences: list[str]) -> list[str] | None:
    """Sentences grouped into steps that start at ordinal words (First, Then, Finally) or a
    reflection; None when fewer than two sentences open with an ordinal word."""
    if sum(bool(_ORDINAL.match(s)) for s in sentences) < 2:
        return None
    steps: list[list[str]] = []
    for sentence in sentences:
        if not steps or _ORDINAL.match(sentence) or is_reflection(sentence):
            steps.append([sentence])
        else:
            steps[-1].append(sentence)
    return [" ".join(group) for group in steps]


def _steps_of(body: str) -> tuple[list[str], str]:
    marks = list(_STEP_MARK.finditer(body))
    if marks:
        return _split_at(body, _STEP_MARK), "step"
    if len(_NUMBERED.findall(body)) >= 2:
        return _split_at(body, _NUMBERED), "numbered"
    if len(_BULLET.findall(body)) >= 2:
        return _split_at(body, _BULLET), "bullets"
    sentences = [s for line in body.splitlines() for s in split_sentences(line.strip())]
    ordinal = _ordinal_steps(sentences)
    if ordinal is not None:
        return ordinal, "ordinal"
    return sentences, "sentences"


def segment_chain(text: str) -> Chain:
    """Steps and final answer of any model output (see the module docstring for the rules)."""
    if not text or not text.strip():
        return Chain([], None, False, "empty")
    answer, source, body = _find_answer(text.strip())
    steps, markers = _steps_of(body)
    steps = _split_reflections(steps)
    return Chain(steps, answer, answer is not None, markers, source)


# --- a judge's segmentation ---------------------------------------------------------------------

SEGMENT_PROMPT = """\
Split the following chain of thought into its reasoning steps. A step is one claim or one \
calculation; keep the model's own words, do not fix or add anything, and leave out the \
final answer line.

Reply with only a JSON list of strings, one string per step, for example:
["There are 3 red circles.", "There are 2 blue squares.", "3 + 2 = 5."]

Chain of thought:
<<<
{text}
>>>
"""


def _parse_steps(reply: str) -> list[str] | None:
    for value in json_candidates(reply):
        if isinstance(value, dict):
            value = value.get("steps")
        if isinstance(value, list) and value and all(isinstance(s, str) for s in value):
            steps = [_clean_step(s) for s in value]
            steps = [s for s in steps if s and not _ANSWER_LINE.fullmatch(s)]
            if steps:
                return steps
    return None


def segment_many_with_judge(
    model: ChatModel,
    texts: Sequence[str],
    *,
    retries: int = 2,
    params: GenerationParams | None = None,
    stats: JudgeStats | None = None,
) -> list[Chain]:
    """`segment_with_judge` for many texts in one batched `chat` call per attempt."""
    params = params or GenerationParams(max_tokens=1024)
    rules = [segment_chain(text) for text in texts]
    found: dict[int, list[str]] = {}

    def accept(index: int, reply: str) -> bool:
        steps = _parse_steps(reply)
        if steps is not None:
            found[index] = steps
        return steps is not None

    asked = {
        i: [{"role": "user", "content": SEGMENT_PROMPT.format(text=text)}]
        for i, text in enumerate(texts)
        if rules[i].markers != "empty"
    }
    ask_until_parsed(model, asked, accept, params, retries, stats, who=model.name)
    chains = []
    for i, rule in enumerate(rules):
        if i in found:
            chains.append(Chain(found[i], rule.answer, rule.format_ok, "judge", rule.answer_source))
        elif i in asked:
            note = f"{model.name} gave no readable step list after {retries + 1} attempts"
            chains.append(
                Chain(
                    rule.steps,
                    rule.answer,
                    rule.format_ok,
                    f"judge-fallback:{rule.markers}",
                    rule.answer_source,
                    [note],
                )
            )
        else:
            chains.append(rule)
    return chains


def segment_with_judge(
    model: ChatModel,
    text: str,
    *,
    retries: int = 2,
    params: GenerationParams | None = None,
    stats: JudgeStats | None = None,
) -> Chain:
    """Steps as a ChatModel splits them (a JSON list of strings, re-asked up to `retries`
    times); the answer and `format_ok` are the rule segmentation's. A judge that never
    answers readably gives the rule steps with `markers="judge-fallback:<rule>"`."""
    return segment_many_with_judge(model, [text], retries=retries, params=params, stats=stats)[0]
