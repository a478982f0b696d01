"""Reading structured answers out of chat models' replies, re-asking the ones that do not read.

Every LLM-as-judge here (the rubric judge, CHERRL's bias judges, RPC-Bench's judge, the agent
detector, WildReward's feedback labeller and refusal adjudicator) asks for a structured answer
and has to cope with what real models send back: JSON in a code fence or amid prose, single
quotes, trailing commas, raw newlines inside strings, or nothing readable at all. So:

- `json_candidates(text)` finds every JSON-like value in a reply, for the caller to interpret;
- `ask_until_parsed` sends a batch of conversations in one `chat` call and re-asks only those
  whose reply the caller's `accept` rejects, each retry at `retry_params` (temperature >= 0.7
  and its own seed, so a sampling model can answer differently and a response cache does not
  replay the failed answer); `JudgeStats` counts what it cost;
- `ask_parsed` is the same loop for a list of single-message prompts and a `parse` function,
  returning one `Answer` (value, last text, attempts) per prompt.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Generic, Literal, TypeVar

from posttrain.models.chat.base import ChatModel, Conversation, GenerationParams

__all__ = [
    "RETRY_TEMPERATURE",
    "Answer",
    "JudgeStats",
    "ask_parsed",
    "ask_until_parsed",
    "json_candidates",
    "retry_params",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
K = TypeVar("K")

# --- finding JSON in a reply --------------------------------------------------------------------

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)


def _loads(text: str) -> Any:
    """JSON (raw newlines inside strings allowed: judges write multi-line rationales), else a
    Python literal (single quotes, True/False), else JSON after swapping quotes and dropping
    trailing commas; None when nothing reads."""
    try:
        return json.loads(text, strict=False)
    except (json.JSONDecodeError, RecursionError):
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    fixed = re.sub(r",\s*([}\]])", r"\1", text.replace("'", '"'))
    try:
        return json.loads(fixed, strict=False)
    except (json.JSONDecodeError, RecursionError):
        return None


def json_candidates(text: str, limit: int = 64) -> list[Any]:
    """Parsed JSON-like values in a reply: fenced code blocks first, then every balanced
    `{...}` / `[...]` span, outermost first (strings are skipped when matching brackets).
    At most the first `limit` opening brackets are tried, which bounds the work on long
    replies."""
    found: list[Any] = []
    for block in _FENCE.findall(text):
        value = _loads(block.strip())
        if value is not None:
            found.append(value)
    starts = [i for i, ch in enumerate(text) if ch in "{["][:limit]
    covered = -1
    for start in starts:
        if start < covered:
            continue
        end = _balanced_end(text, start)
        if end is None:
            continue
        value = _loads(text[start:end])
        if isinstance(value, dict | list):
            found.append(value)
            covered = end
    return found


def _balanced_end(text: str, start: int) -> int | None:
    """The index just past the bracket closing the one at `start`, or None if it never closes
    (or a bracket of the other kind closes first)."""
    closing = {"{": "}", "[": "]"}
    stack: list[str] = []
    quote: str | None = None
    i = start
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "\"'" and stack and _opens_string(text, i):
            quote = ch
        elif ch in closing:
            stack.append(closing[ch])
        elif ch in "}]":
            if not stack or stack.pop() != ch:
                return None
            if not stack:
                return i + 1
        i += 1
    return None


def _opens_string(text: str, i: int) -> bool:
    """A quote opens a string when it follows `{`, `,`, `:` or `[` (whitespace aside); an
    apostrophe inside a word ("doesn't") does not."""
    j = i - 1
    while j >= 0 and text[j].isspace():
        j -= 1
    return j < 0 or text[j] in "{[,:"


# --- re-asking ----------------------------------------------------------------------------------


@dataclass
class JudgeStats:
    """Running counts of a judge (`RubricJudge`, `BiasJudge`, `RPCJudge`). `ask_until_parsed`
    keeps `calls`, `batches`, `retries` and `errors`; the judge keeps the rest."""

    responses: int = 0
    """Responses judged."""
    items: int = 0
    """Rubric items decided, by the LLM or by code."""
    verified: int = 0
    """Items decided by a verifier (never sent to the LLM)."""
    calls: int = 0
    """Conversations sent to the model, retries included."""
    batches: int = 0
    """`chat` calls made (each sends many conversations)."""
    retries: int = 0
    """Conversations sent again because the reply could not be read in full."""
    unparsed: int = 0
    """Items (or bias scores) still unknown after the retries, counted NOT_PRESENT (0)."""
    errors: int = 0
    """`chat` calls that raised."""

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


RETRY_TEMPERATURE = 0.7
"""The lowest temperature a re-ask is sent at: a greedy model would repeat its failure."""


def retry_params(params: GenerationParams, attempt: int) -> GenerationParams:
    """Sampling settings for re-ask number `attempt` (1, 2, ...): temperature at least
    `RETRY_TEMPERATURE` and seed `attempt`, so each retry samples differently, reproducibly,
    and a response cache keyed on the request does not hand back the previous failure."""
    if attempt < 1:
        raise ValueError(f"a retry's attempt number is >= 1, got {attempt}")
    return replace(params, temperature=max(params.temperature, RETRY_TEMPERATURE), seed=attempt)


def ask_until_parsed(
    chat: ChatModel,
    conversations: Mapping[K, Conversation],
    accept: Callable[[K, str], bool],
    params: GenerationParams,
    max_retries: int,
    stats: JudgeStats | None = None,
    who: Any = None,
    *,
    on_error: Literal["retry", "raise"] = "retry",
) -> list[K]:
    """Send every conversation in one batch; re-ask, at `retry_params`, those whose reply
    `accept(key, reply)` rejects, up to `max_retries` times. Returns the keys never accepted.

    `accept` sees every reply (the empty string for a result without choices) and may keep
    what it could read. A `chat` call that raises costs that attempt, counted in
    `stats.errors`, when `on_error="retry"` (a judge outage should cost accuracy, not the
    run); `on_error="raise"` lets it propagate (a resumable pipeline stops instead of
    recording answers as unreadable). A backend returning another number of results than
    conversations is a bug in it and always raises.
    """
    if max_retries < 0:
        raise ValueError(f"max_retries must be >= 0, got {max_retries}")
    if on_error not in ("retry", "raise"):
        raise ValueError(f"on_error must be 'retry' or 'raise', got {on_error!r}")
    stats = stats if stats is not None else JudgeStats()
    pending = list(conversations)
    for attempt in range(1 + max_retries):
        if not pending:
            break
        stats.calls += len(pending)
        stats.batches += 1
        if attempt:
            stats.retries += len(pending)
        asked = params if attempt == 0 else retry_params(params, attempt)
        try:
            results = chat.chat([conversations[k] for k in pending], asked)
        except Exception as exc:
            if on_error == "raise":
                raise
            stats.errors += 1
            logger.warning("judge %r failed (%s); retrying", chat if who is None else who, exc)
            continue
        if len(results) != len(pending):
            name = getattr(chat, "name", type(chat).__name__)
            raise RuntimeError(
                f"{name!r} returned {len(results)} results for {len(pending)} conversations"
            )
        pending = [
            key
            for key, result in zip(pending, results, strict=True)
            if not accept(key, result.text if result.choices else "")
        ]
    return pending


@dataclass
class Answer(Generic[T]):
    """One prompt's outcome: the parsed value (None if never parsed), last text, attempts."""

    value: T | None
    text: str
    attempts: int


def ask_parsed(
    model: ChatModel,
    prompts: Sequence[str],
    params: GenerationParams,
    retries: int,
    parse: Callable[[str], T | None],
) -> list[Answer[T]]:
    """One `Answer` per prompt (sent as a single user message), in prompt order: prompts
    whose reply `parse` returns None for are re-asked as in `ask_until_parsed`, up to
    `retries` times; errors from the model propagate."""
    answers: list[Answer[T]] = [Answer(None, "", 0) for _ in prompts]

    def accept(index: int, text: str) -> bool:
        answer = answers[index]
        answer.value, answer.text = parse(text), text
        answer.attempts += 1
        return answer.value is not None

    conversations = {i: [{"role": "user", "content": p}] for i, p in enumerate(prompts)}
    ask_until_parsed(model, conversations, accept, params, retries, on_error="raise")
    return answers
