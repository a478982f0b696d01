"""The RPC-Bench judge: three separate calls per answer, each rating one dimension 0.00–5.00.

Why three calls: RPC-Bench asks for correctness, completeness and conciseness in separate
conversations so that one rating cannot anchor another. Replies are JSON, but real judges
wrap it in code fences, write LaTeX with bare backslashes (invalid JSON escapes) or break the
JSON altogether, so `parse_rating` escapes stray backslashes, then tries, in order: the
JSON values the shared reply reader finds (`json_candidates`: fenced blocks, then JSON
inside prose), a regex for ``"Key": {... "rating": "x"}``, and a plain
``Key: x`` pattern. A reply still unreadable is asked again (with some temperature) up to
``max_retries`` times; a dimension never read counts 0.00, as RPC-Bench's scorer counts a
missing rating, and is listed in the record's ``failed``.

Offline, ``scripted:rpc-lexical-judge`` answers these same prompts from token overlap
(precision -> correctness, recall -> completeness, a length ratio -> conciseness), so the
proxy goes through the same parsing and scoring code as an LLM. It is labelled
"lexical proxy judge (not an LLM)" in every output.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from posttrain.eval.rpc.text import words
from posttrain.models.chat.base import ChatModel, Conversation, GenerationParams
from posttrain.models.chat.replies import JudgeStats, ask_until_parsed, json_candidates
from posttrain.models.chat.scripted import (
    PREFIX,
    ScriptedChat,
    last_user_message,
    register_script,
)

DIMENSIONS = ("Correctness", "Completeness", "Conciseness")
LEXICAL = "scripted:rpc-lexical-judge"
LEXICAL_LABEL = "lexical proxy judge (not an LLM)"

_DEFINITIONS = {
    "Correctness": (
        "Correctness works like precision: how much of what the predicted answer states is "
        "accurate with respect to the reference answer, without distortion or invented facts.",
        "0.00-1.00 mostly wrong or distorted; 1.01-2.00 several errors; 2.01-3.00 partly "
        "accurate with some misstatements; 3.01-4.00 accurate with rare errors; 4.01-5.00 "
        "everything stated is accurate.",
    ),
    "Completeness": (
        "Completeness works like recall: how much of the reference answer's key content the "
        "predicted answer covers, and whether it leaves out essential points.",
        "0.00-1.00 misses most key points; 1.01-2.00 misses several important points; "
        "2.01-3.00 covers a moderate part; 3.01-4.00 covers most with minor omissions; "
        "4.01-5.00 covers every major point.",
    ),
    "Conciseness": (
        "Conciseness: whether the predicted answer is brief and to the point, without "
        "repetition, padding or irrelevant material.",
        "0.00-1.00 verbose or unfocused; 1.01-2.00 noticeable redundancy; 2.01-3.00 clear but "
        "could be shorter; 3.01-4.00 concise with little excess; 4.01-5.00 direct, nothing "
        "superfluous.",
    ),
}

SYSTEM_PROMPT = (
    "You grade answers to questions about a research paper. You see the paper's title and "
    "abstract, the question, a reference answer written from the paper, and a predicted "
    "answer. Judge only from this material, never from outside knowledge.\n\n"
    "Rate one dimension.\n{definition}\n\nScale (two decimals, e.g. 3.47): {scale}\n\n"
    'Reply with JSON only: {{"{dimension}": {{"rating": "x.xx", "rationale": "one or two '
    'sentences"}}}}'
)
USER_PROMPT = (
    "<title>{title}</title>\n\n<abstract>{abstract}</abstract>\n\n"
    "<question>{question}</question>\n\n<reference_answer>{reference}</reference_answer>\n\n"
    "<predicted_answer>{predicted}</predicted_answer>"
)


def judge_conversation(item: dict[str, Any], predicted: str, dimension: str) -> Conversation:
    """The conversation that asks for one dimension's rating of ``predicted``."""
    definition, scale = _DEFINITIONS[dimension]
    system = SYSTEM_PROMPT.format(definition=definition, scale=scale, dimension=dimension)
    user = USER_PROMPT.format(
        title=item["title"],
        abstract=item["abstract"],
        question=item["question"],
        reference=item["reference_answer"],
        predicted=predicted,
    )
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def judge_label(name: str) -> str:
    """How outputs name a judge: the proxy and other scripts are marked as not LLMs."""
    if name == LEXICAL:
        return LEXICAL_LABEL
    if name.startswith(PREFIX):
        return f"{name} (scripted, not an LLM)"
    return name


# --- parsing ---------------------------------------------------------------------------


# A backslash that does not start a valid JSON escape (LaTeX such as \alpha, \mathcal, \%).
_BAD_ESCAPE = re.compile(r'\\(\\|["/bfnrt]|u[0-9a-fA-F]{4})|\\')


def escape_backslashes(text: str) -> str:
    """Double every backslash that JSON would reject, keeping valid escapes as they are."""
    return _BAD_ESCAPE.sub(lambda m: m.group(0) if m.group(1) else "\\\\", text)


def _in_range(value: Any) -> float | None:
    try:
        rating = float(value)
    except (TypeError, ValueError):
        return None
    return rating if 0.0 <= rating <= 5.0 else None


def _rating_in(value: Any, key: str) -> float | None:
    """``value[key]["rating"]`` (keys in any case) of a parsed reply, in range, or None."""
    if not isinstance(value, dict):
        return None
    block = next((v for k, v in value.items() if str(k).lower() == key.lower()), None)
    if isinstance(block, dict):
        block = next((v for k, v in block.items() if str(k).lower() == "rating"), None)
    return _in_range(block)


def parse_rating(text: Any, key: str) -> float | None:
    """Rating 0.00–5.00 of dimension ``key`` in a judge reply, or None if it has none.

    Out-of-range numbers count as unreadable (a retry is better than a clipped guess).
    """
    if not isinstance(text, str) or not text.strip():
        return None
    body = escape_backslashes(text)
    for value in json_candidates(body):  # fenced blocks first, then JSON inside prose
        rating = _rating_in(value, key)
        if rating is not None:
            return rating
    name = re.escape(key)
    structured = rf'"{name}"\s*:\s*\{{[^}}]*?"rating"\s*:\s*"?([-+]?\d+(?:\.\d+)?)'
    plain = rf"\b{name}\b\W{{0,6}}(?:rating\W{{0,6}})?([-+]?\d+(?:\.\d+)?)"
    for pattern in (structured, plain):
        match = re.search(pattern, body, re.DOTALL | re.IGNORECASE)
        if match:
            return _in_range(match.group(1))
    return None


# --- the judge -------------------------------------------------------------------------


class RPCJudge:
    """Rates answers on the three dimensions through any ChatModel, with retries.

    ``judge_batch`` sends all ``3 × len(batch)`` conversations as one ``chat`` call; replies
    that cannot be read are sent again (only those). ``stats`` counts calls, retries and
    dimensions never read (``unparsed``).
    """

    def __init__(
        self,
        chat: ChatModel,
        max_retries: int = 2,
        params: GenerationParams | None = None,
        *,
        conversation: Callable[[dict[str, Any], str, str], Conversation] | None = None,
        read_rating: Callable[[Any, str], float | None] | None = None,
        order: Sequence[str] = DIMENSIONS,
        judge_empty: bool = False,
        merge: Callable[[list[str]], dict[str, float | None]] | None = None,
        protocol: str = "posttrain",
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries}")
        self.chat = chat
        self.max_retries = max_retries
        self.params = params or GenerationParams(temperature=0.0, max_tokens=512)
        self.stats = JudgeStats()
        # The protocol's prompts, reply reader and call order (`protocol.Protocol.judge`).
        self.conversation = conversation or judge_conversation
        self.read_rating = read_rating or parse_rating
        self.order = tuple(order)
        self.judge_empty = judge_empty
        # Ratings from all of an item's replies together (eval.py merges them), or None to
        # take each dimension from its own reply.
        self.merge = merge
        self.protocol = protocol

    @property
    def name(self) -> str:
        return str(getattr(self.chat, "name", type(self.chat).__name__))

    def judge_batch(self, batch: Sequence[tuple[dict[str, Any], str]]) -> list[dict[str, Any]]:
        """One record per ``(item, predicted answer)``: raw replies (``score``, in the
        protocol's call order, as RPC-Bench stores them), ``ratings``, ``retries``, ``failed``."""
        conversations: dict[tuple[int, str], Conversation] = {}
        for index, (item, predicted) in enumerate(batch):
            if self._asks(predicted):  # posttrain scores an empty answer 0 without asking
                for dim in self.order:
                    conversations[(index, dim)] = self.conversation(item, predicted, dim)
        replies: dict[tuple[int, str], str] = {}
        ratings: dict[tuple[int, str], float] = {}
        attempts: Counter[int] = Counter()

        def accept(key: tuple[int, str], reply: str) -> bool:
            attempts[key[0]] += 1
            replies[key] = reply
            rating = self.read_rating(reply, key[1])
            if rating is not None:
                ratings[key] = rating
            return rating is not None

        never = ask_until_parsed(
            self.chat, conversations, accept, self.params, self.max_retries, self.stats, self.name
        )
        self.stats.unparsed += len(never)
        self.stats.responses += len(batch)
        records = []
        for index, (item, predicted) in enumerate(batch):
            asked = self._asks(predicted)
            if asked and self.merge is not None:
                merged = self.merge([replies.get((index, d), "") for d in self.order])
                for dim, value in merged.items():
                    ratings.pop((index, dim), None)
                    if value is not None:
                        ratings[(index, dim)] = value
            records.append(
                {
                    "id": item["id"],
                    "part_idx": item["part_idx"],
                    "category": item["category"],
                    "predicted_answer": predicted,
                    "score": [replies.get((index, d), "") for d in self.order],
                    "ratings": {d: ratings.get((index, d)) for d in DIMENSIONS},
                    "retries": max(0, attempts[index] - len(self.order)) if asked else 0,
                    "failed": [d for d in DIMENSIONS if asked and (index, d) not in ratings],
                    "judge": self.name,
                    "judge_label": judge_label(self.name),
                    "protocol": self.protocol,
                }
            )
        return records

    def _asks(self, predicted: str) -> bool:
        return self.judge_empty or predicted.strip() != ""


# --- the offline lexical proxy ---------------------------------------------------------

# posttrain's prompts tag <reference_answer>, RPC-Bench's own <reference-answer>.
_TAG = r"(?s)<{0}>(.*)</{0}>"
# The dimension a judge prompt asks for: the key of its JSON reply format (both protocols).
_ASKED = re.compile(r'"(' + "|".join(DIMENSIONS) + r')"\s*:\s*\{')


def _tagged(text: str, tag: str) -> str:
    match = re.search(_TAG.format(tag), text)
    return match.group(1) if match else ""


def lexical_ratings(reference: str, predicted: str) -> dict[str, float]:
    """Token precision, recall and a length ratio (reference / predicted, capped at 1), each
    times 5 and rounded to two decimals, as a judge would write them."""
    ref, pred = Counter(words(reference)), Counter(words(predicted))
    common = sum((ref & pred).values())
    n_ref, n_pred = sum(ref.values()), sum(pred.values())
    precision = common / n_pred if n_pred else 0.0
    recall = common / n_ref if n_ref else 0.0
    brevity = min(1.0, n_ref / n_pred) if n_pred else 0.0
    return {
        "Correctness": round(5 * precision, 2),
        "Completeness": round(5 * recall, 2),
        "Conciseness": round(5 * brevity, 2),
    }


_MEASURE = {"Correctness": "token precision", "Completeness": "token recall"}


def _lexical_reply(conversation: Conversation) -> str:
    system = next((m["content"] for m in conversation if m.get("role") == "system"), "")
    user = last_user_message(conversation)
    asked = _ASKED.search(system)
    if asked is None:
        return "I can only rate RPC-Bench judge prompts."
    dimension = asked.group(1)
    reference = _tagged(user, "reference[_-]answer")
    rating = lexical_ratings(reference, _tagged(user, "predicted[_-]answer"))
    measure = _MEASURE.get(dimension, "length ratio reference/predicted")
    reply = {
        dimension: {
            "rating": f"{rating[dimension]:.2f}",
            "rationale": f"{LEXICAL_LABEL}: {measure} x 5",
        }
    }
    return "```json\n" + json.dumps(reply) + "\n```"


def lexical_judge_script() -> ScriptedChat:
    """The offline judge: answers the real judge prompts from token overlap."""
    return ScriptedChat(LEXICAL, default=_lexical_reply)


register_script(LEXICAL, lexical_judge_script)
