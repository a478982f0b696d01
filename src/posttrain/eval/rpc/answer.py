"""Answering RPC-Bench questions: prompts, the answer rules, and the offline answerer.

The rules are RPC-Bench's: an open answer may not exceed 3,000 characters, and a
`Claim_Verification` answer is exactly ``True`` or ``False``. A reply that names neither is
kept as ``raw_answer`` with ``claim_invalid`` set, and its ``answer`` is left empty, so it
can never be mistaken for a verdict.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from posttrain.eval.rpc.data import CLAIM
from posttrain.eval.rpc.text import sentences, words
from posttrain.models.chat.base import Conversation
from posttrain.models.chat.scripted import ScriptedChat, register_script

MAX_ANSWER_CHARS = 3000
EXTRACTIVE = "scripted:rpc-extractive"

OPEN_PROMPT = (
    "You are answering a question about a computer-science research paper. Use only what "
    "the paper below says: no outside knowledge and no guesses. Be precise and brief; the "
    f"whole answer must stay under {MAX_ANSWER_CHARS} characters.\n\n"
    "Question:\n{question}\n\nPaper:\n{context}"
)
CLAIM_PROMPT = (
    "Decide whether the statement below is supported by the research paper that follows, "
    "using only the paper's own text. Reply with one word, True or False, and nothing else."
    "\n\nStatement:\n{question}\n\nPaper:\n{context}"
)


def conversation(item: dict[str, Any]) -> Conversation:
    """The single user turn that asks ``item``'s question over its context."""
    template = CLAIM_PROMPT if item["category"] == CLAIM else OPEN_PROMPT
    return [
        {
            "role": "user",
            "content": template.format(question=item["question"], context=item["context"]),
        }
    ]


_VERDICT = re.compile(r"\b(true|false)\b", re.IGNORECASE)


def normalise_claim(text: str) -> str | None:
    """``True``/``False`` when the reply names exactly one of them (any case, any punctuation
    around it, e.g. ``**True.**``), else None."""
    found = {m.lower() for m in _VERDICT.findall(text)}
    if len(found) != 1:
        return None
    return "True" if found == {"true"} else "False"


def finish_answer(
    item: dict[str, Any], raw: str, claim_rule: Callable[[str], str | None] = normalise_claim
) -> dict[str, Any]:
    """Apply the answer rules; the record fields an answer contributes to answers.jsonl.
    ``claim_rule`` reads a verdict (the official protocol's is exact-match)."""
    if item["category"] == CLAIM:
        verdict = claim_rule(raw)
        record: dict[str, Any] = {"answer": verdict or "", "claim_invalid": verdict is None}
        if verdict != raw:
            record["raw_answer"] = raw
        return record
    answer = raw.strip()[:MAX_ANSWER_CHARS]
    record = {"answer": answer}
    if answer != raw:
        record["raw_answer"] = raw
    return record


# --- the offline answerer -------------------------------------------------------------

_OPEN = re.compile(r"(?s)Question:\n(?P<question>.*?)\n\nPaper:\n(?P<context>.*)\Z")
_CLAIM = re.compile(r"(?s)Statement:\n(?P<question>.*?)\n\nPaper:\n(?P<context>.*)\Z")
_LABEL = re.compile(r"^(?:Title|Abstract):\s*")  # the labels `abstract_context` adds
CLAIM_SUPPORT = 0.6
"""Share of a claim's content words found in the context above which the script says True."""


def extract_answer(question: str, context: str, top: int = 2) -> str:
    """The ``top`` context sentences sharing most content words with the question, in
    document order (the first sentence when none shares a word)."""
    asked = set(words(question))
    found = [_LABEL.sub("", s) for s in sentences(context)]
    if not found:
        return ""
    overlap = [len(asked & set(words(s))) for s in found]
    ranked = sorted(range(len(found)), key=lambda i: (-overlap[i], i))
    chosen = sorted(i for i in ranked[:top] if overlap[i] > 0) or [0]
    return " ".join(found[i] for i in chosen)


def claim_verdict(statement: str, context: str) -> str:
    """True when most of the statement's content words occur in the context."""
    claimed = set(words(statement))
    if not claimed:
        return "False"
    support = len(claimed & set(words(context))) / len(claimed)
    return "True" if support >= CLAIM_SUPPORT else "False"


def _open(match: re.Match[str], conversation: Conversation) -> str:
    return extract_answer(match["question"], match["context"])


def _claim(match: re.Match[str], conversation: Conversation) -> str:
    return claim_verdict(match["question"], match["context"])


def extractive_script() -> ScriptedChat:
    """Deterministic answerer for offline runs: sentence extraction by word overlap."""
    rules: Sequence = [(_CLAIM, _claim), (_OPEN, _open)]
    return ScriptedChat(EXTRACTIVE, rules, default="")


register_script(EXTRACTIVE, extractive_script)
