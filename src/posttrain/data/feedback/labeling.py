"""Labelling each turn's user feedback on WildReward's 5-level scale through any ChatModel.

The prompt gives the scale and the turn and asks for `[[k]]`; the last `[[k]]` in the answer
counts, and unparseable answers are retried, then dropped as "unparsed". The offline default
is `scripted:feedback-rules`: a transparent rule labeler that reads the user feedback out of
the prompt, matches phrase lists, and says which rule fired before its `[[k]]`, so anyone can
see why a turn got its label (and how far phrase rules get: the summary measures it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from posttrain.models.chat.base import ChatModel, Conversation, GenerationParams
from posttrain.models.chat.replies import ask_parsed
from posttrain.models.chat.scripted import (
    ScriptedChat,
    last_user_message,
    register_script,
    script_names,
)

SCALE = {
    1: "clear rejection: the user dismisses the reply as useless, wrong or unwanted",
    2: "correction: the user points out an error or states the right answer",
    3: "neutral: no signal about the reply (a new unrelated request, an empty remark)",
    4: "positive engagement: the user builds on the reply with a related follow-up",
    5: "clear satisfaction: the user thanks or confirms the reply is what they wanted",
}
"""WildReward's feedback levels."""

FEEDBACK_OPEN, FEEDBACK_CLOSE = "<user_feedback>", "</user_feedback>"
HISTORY_MESSAGES = 4
"""Earlier messages shown to the labeler (the last few), each cut to 500 characters."""

_LABEL = re.compile(r"\[\[\s*([1-5])(?:\.0+)?\s*\]\]")


def _clip(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"


def labeling_prompt(item: dict[str, Any]) -> str:
    """The labelling request for one turn: scale, context, reply and the user's next message."""
    scale = "\n".join(f"{k} = {text}" for k, text in SCALE.items())
    history = item.get("history") or []
    shown = "\n".join(f"{m['role']}: {_clip(m['content'])}" for m in history[-HISTORY_MESSAGES:])
    query, reply = item["messages"][0]["content"], item["messages"][1]["content"]
    return (
        "Rate how the user reacted to the assistant's reply, judging only the user's next "
        f"message.\n\nScale:\n{scale}\n\n"
        f"<history>\n{shown or '(none)'}\n</history>\n"
        f"<user_request>\n{_clip(query, 2000)}\n</user_request>\n"
        f"<assistant_reply>\n{_clip(reply, 2000)}\n</assistant_reply>\n"
        f"{FEEDBACK_OPEN}\n{item['user_feedback']}\n{FEEDBACK_CLOSE}\n\n"
        "Explain briefly, then give the level as [[k]] with k from 1 to 5."
    )


def parse_label(text: str) -> int | None:
    """The last `[[k]]` (k in 1..5, spaces and `.0` allowed) in `text`, else None."""
    matches = _LABEL.findall(text or "")
    return int(matches[-1]) if matches else None


def label_chunk(
    items: Sequence[dict[str, Any]],
    labeler: ChatModel,
    params: GenerationParams,
    retries: int,
) -> list[dict[str, Any]]:
    """One record per item: `{"id", "raw_label", "attempts", "output"}`, with
    `"raw_label": None, "dropped": "unparsed"` when `retries` retries did not parse.

    The chunk goes out as one batched chat call; only unparsed prompts are sent again.
    """
    answers = ask_parsed(
        labeler, [labeling_prompt(item) for item in items], params, retries, parse_label
    )
    records = []
    for item, answer in zip(items, answers, strict=True):
        record = {
            "id": item["id"],
            "raw_label": answer.value,
            "attempts": answer.attempts,
            "output": answer.text,
        }
        if answer.value is None:
            record["dropped"] = "unparsed"
        records.append(record)
    return records


# ---------------------------------------------------------------------------------------
# The rule labeler (scripted:feedback-rules)
# ---------------------------------------------------------------------------------------

FEEDBACK_RULES: tuple[tuple[str, int, str], ...] = (
    (
        "rejection",
        1,
        r"\b(useless|garbage|rubbish|nonsense|terrible|awful|makes no sense|not what i asked|"
        r"not helping|doesn'?t help|does not help|forget it|never ?mind|waste of time|"
        r"bad answer|why not|why can'?t you|just answer|stop refusing|ridiculous|wtf)\b",
    ),
    (
        "correction",
        2,
        r"(\b(wrong|incorrect|mistake|not right|not correct|not quite|are you sure|nope|"
        r"double.check|should be|not sorted|isn'?t right|that'?s not)\b|(?:^\W*|, )no\b(?![ -]?"
        r"(?:worries|problem)))",
    ),
    (
        "satisfaction",
        5,
        r"\b(thanks?|thank you|thx|ty|perfect|exactly|spot on|brilliant|awesome|excellent|"
        r"appreciated?|love it|wonderful|that works|that'?s (?:it|right|correct)|"
        r"super helpful|got it|cheers|what i (?:needed|was looking for))\b",
    ),
    (
        "engagement",
        4,
        r"\b(what about|how about|can you also|and also|next one|one more|now do|same for|"
        r"great|nice|cool|interesting|makes sense|that helps|good|alright)\b",
    ),
)
"""(rule, level, regex) tried in order on the lower-cased feedback; none -> neutral (3)."""

_COMPILED = [(name, level, re.compile(rx)) for name, level, rx in FEEDBACK_RULES]


def feedback_from_prompt(prompt: str) -> str | None:
    """The user feedback inside a labelling prompt (the last tagged block), if any."""
    start = prompt.rfind(FEEDBACK_OPEN)
    if start < 0:
        return None
    end = prompt.find(FEEDBACK_CLOSE, start)
    if end < 0:
        return None
    return prompt[start + len(FEEDBACK_OPEN) : end].strip()


def rule_label(feedback: str) -> tuple[str, int, str]:
    """(rule that fired, level, matched text) for a user's feedback message."""
    text = feedback.lower().replace("\u2019", "'")
    for name, level, pattern in _COMPILED:
        match = pattern.search(text)
        if match:
            return name, level, match.group(0)
    return "neutral", 3, ""


def _respond(conversation: Conversation) -> str:
    feedback = feedback_from_prompt(last_user_message(conversation))
    if feedback is None:
        return "No <user_feedback> block in the prompt; cannot label."
    name, level, matched = rule_label(feedback)
    if name == "neutral":
        return "Rule 'neutral': no phrase list matched. [[3]]"
    return f"Rule '{name}' fired on {matched!r}. [[{level}]]"


def feedback_rules_script() -> ScriptedChat:
    """The transparent rule labeler behind `scripted:feedback-rules`."""
    return ScriptedChat("feedback-rules", [], default=_respond)


def register_feedback_scripts() -> None:
    """Make `scripted:feedback-rules` and `scripted:refusal-rules` loadable (idempotent)."""
    from posttrain.data.feedback.refusals import refusal_rules_script

    names = set(script_names())
    if "feedback-rules" not in names:
        register_script("feedback-rules", feedback_rules_script)
    if "refusal-rules" not in names:
        register_script("refusal-rules", refusal_rules_script)
