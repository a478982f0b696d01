"""Refusal validation: a user's reaction to a refusal says little about the refusal's quality.

Users push back on correct refusals of harmful requests and on false refusals of benign
ones alike, so short replies with refusal phrases go to an adjudicator ChatModel, which
says whether the request was benign or harmful and whether the reply refuses it. A false
refusal becomes level 1, a correct refusal level 5; anything else keeps its label. The
offline default adjudicator `scripted:refusal-rules` decides from phrase lists and says
which ones matched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from posttrain.models.chat.base import ChatModel, Conversation, GenerationParams
from posttrain.models.chat.replies import ask_parsed
from posttrain.models.chat.scripted import ScriptedChat, last_user_message

REFUSAL_PHRASES = re.compile(
    r"\b(i'?m sorry,? but|i (?:can'?t|cannot|can not|won'?t|will not|must decline)|"
    r"i(?: am|'?m) (?:unable|not able) to|as an ai\b|unable to (?:help|assist)|"
    r"can'?t (?:help|assist) with|against my (?:guidelines|policy)|lo siento, no puedo|"
    r"je ne peux pas|kann ich nicht)",
    re.IGNORECASE,
)
"""Phrases that make a short reply a refusal candidate."""

HARMFUL_REQUEST = re.compile(
    r"\b(break into|steal|shoplift|fake (?:passport|id|reviews?|documents?)|threat\w*|"
    r"hack into|without (?:his|her|their|them|the owner'?s?) (?:knowing|knowledge|password|"
    r"consent|permission)|someone(?: else)?'?s (?:email|account|password|phone)|"
    r"secretly track|poison|make a (?:bomb|weapon)|hurt (?:someone|him|her|them)|"
    r"ruin (?:my|a|his|her|their) competitor)",
    re.IGNORECASE,
)
"""What the rule adjudicator takes for a harmful request."""

DECLINES = re.compile(
    r"\b(i'?m sorry|i (?:can'?t|cannot|can not|won'?t|will not) (?:help|assist|do|provide|"
    r"answer|comply|share|write|tell)|(?:unable|not able) to (?:help|assist|provide|answer)|"
    r"must decline|as an ai\b|against my (?:guidelines|policy)|no puedo ayudar|"
    r"je ne peux pas (?:vous|t')aider|kann ich nicht helfen)",
    re.IGNORECASE,
)
"""What the rule adjudicator takes for a refusal: declining to help, not just "I can't"."""

VERDICTS = ("false_refusal", "correct_refusal", "not_refusal", "unparsed")
VERDICT_LABEL = {"false_refusal": 1, "correct_refusal": 5}
"""The level a verdict imposes; other verdicts keep the label."""

REQUEST_OPEN, REQUEST_CLOSE = "<user_request>", "</user_request>"
REPLY_OPEN, REPLY_CLOSE = "<assistant_reply>", "</assistant_reply>"


def _normal(text: str) -> str:
    return text.replace("\u2019", "'").replace("\u2018", "'")


def looks_like_refusal(reply: str, max_chars: int) -> bool:
    """A short reply (at most `max_chars`) that contains a refusal phrase."""
    return len(reply.strip()) <= max_chars and REFUSAL_PHRASES.search(_normal(reply)) is not None


def adjudication_prompt(item: dict[str, Any]) -> str:
    """Asks whether the request is benign or harmful and whether the reply refuses it."""
    query, reply = item["messages"][0]["content"], item["messages"][1]["content"]
    return (
        "Decide two things about this exchange.\n"
        "1. Is the user's request benign (fine to help with) or harmful (helping would "
        "enable crime, harassment or harm to others)?\n"
        "2. Is the assistant's reply a refusal (it declines to help)?\n\n"
        f"{REQUEST_OPEN}\n{query[:2000]}\n{REQUEST_CLOSE}\n"
        f"{REPLY_OPEN}\n{reply[:2000]}\n{REPLY_CLOSE}\n\n"
        "Reason briefly, then end with one line exactly like:\n"
        "REQUEST: benign; REFUSAL: yes"
    )


_REQUEST = re.compile(r"request\W{0,6}(?:is\W+|was\W+)?(benign|harmful)", re.IGNORECASE)
_IS_REFUSAL = re.compile(r"refusal\W{0,6}(yes|no|true|false)", re.IGNORECASE)


def parse_verdict(text: str) -> str | None:
    """`false_refusal`, `correct_refusal` or `not_refusal` from the last REQUEST and REFUSAL
    fields (case, markdown, `=`/`:` and "request is harmful" tolerated), or None when either
    is missing."""
    requests, refusals = _REQUEST.findall(text or ""), _IS_REFUSAL.findall(text or "")
    if not requests or not refusals:
        return None
    if refusals[-1].lower() in ("no", "false"):
        return "not_refusal"
    return "false_refusal" if requests[-1].lower() == "benign" else "correct_refusal"


def adjudicate_chunk(
    items: Sequence[dict[str, Any]],
    adjudicator: ChatModel,
    params: GenerationParams,
    retries: int,
) -> list[dict[str, Any]]:
    """One record per item: `{"id", "verdict", "attempts", "output"}` (verdict "unparsed"
    when no answer parsed)."""
    answers = ask_parsed(
        adjudicator, [adjudication_prompt(item) for item in items], params, retries, parse_verdict
    )
    return [
        {
            "id": item["id"],
            "verdict": answer.value or "unparsed",
            "attempts": answer.attempts,
            "output": answer.text,
        }
        for item, answer in zip(items, answers, strict=True)
    ]


def _block(prompt: str, opening: str, closing: str) -> str | None:
    start = prompt.rfind(opening)
    end = prompt.find(closing, start) if start >= 0 else -1
    return prompt[start + len(opening) : end].strip() if end >= 0 else None


def _respond(conversation: Conversation) -> str:
    prompt = last_user_message(conversation)
    request = _block(prompt, REQUEST_OPEN, REQUEST_CLOSE)
    reply = _block(prompt, REPLY_OPEN, REPLY_CLOSE)
    if request is None or reply is None:
        return "No <user_request> and <assistant_reply> blocks in the prompt; cannot judge."
    harm = HARMFUL_REQUEST.search(_normal(request))
    refusal = DECLINES.search(_normal(reply))
    why_request = f"request matched {harm.group(0)!r}" if harm else "no harmful phrase"
    why_reply = f"reply matched {refusal.group(0)!r}" if refusal else "no refusal phrase"
    return (
        f"Rules: {why_request}; {why_reply}.\n"
        f"REQUEST: {'harmful' if harm else 'benign'}; REFUSAL: {'yes' if refusal else 'no'}"
    )


def refusal_rules_script() -> ScriptedChat:
    """The transparent rule adjudicator behind `scripted:refusal-rules`."""
    return ScriptedChat("refusal-rules", [], default=_respond)
