"""`scripted:gold-overlap-judge`: a deterministic stand-in for an LLM step judge.

Where a capable vision LLM would judge the steps, the offline default needs something that
runs here; this script answers `judge.judge_prompt`'s messages by text overlap with the
reference reasoning in the prompt, without looking at the image or the scene graph: a model
step that matches a reference step (case, punctuation and a reflection opening aside) is
correct, any other step is hallucinated, its category guessed from the sentence's words.
It is the kind of shortcut a weak judge takes, so its agreement with the rule verifier (which
checks every claim against the scene) is a measurement, not a foregone 1.0: a true step the
reference does not spell out, or a reasoning step that follows an earlier error correctly,
is where they part. Every output names it as scripted.
"""

from __future__ import annotations

import json
import re

from posttrain.data.scenes.steps import strip_reflection
from posttrain.models.chat.base import Conversation
from posttrain.models.chat.images import content_text
from posttrain.models.chat.scripted import ScriptedChat, register_script

NAME = "gold-overlap-judge"
LABEL = f"scripted:{NAME} (deterministic text-overlap stand-in for an LLM judge)"

# (pattern, category, sub-category), first match wins; the words of the scene sentences.
_GUESSES = (
    (r"\d+\s*[-+*x×]\s*\d+\s*=", "reasoning", "arithmetic"),
    (r"\b(greater|less|more|fewer|higher|lower)\b", "reasoning", "comparison"),
    (r"\banswer\b", "reasoning", "conclusion"),
    (r"\b(bar|cell|row|column|value|label)\b", "perception", "text_value"),
    (r"\b(left|right|above|below|next to)\b", "perception", "spatial"),
    (r"\bthere (is|are)\b", "perception", "count"),
    (r"\b(is|are) (a|an)\b", "knowledge", "fact"),
)


def _normal(text: str) -> str:
    _, rest = strip_reflection(text)
    return " ".join(re.sub(r"[^a-z0-9+\-*=<> ]", " ", rest.lower()).split())


def _section(text: str, start: str, end: str) -> str:
    match = re.search(re.escape(start) + r"(.*?)" + re.escape(end), text, re.DOTALL)
    return match.group(1) if match else ""


def _guess(step: str) -> tuple[str, str]:
    for pattern, category, subcategory in _GUESSES:
        if re.search(pattern, step, re.IGNORECASE):
            return category, subcategory
    return "perception", "object"


def judge_reply(conversation: Conversation) -> str:
    """The JSON labels for one judge message (the last user turn's text)."""
    text = content_text(conversation[-1]["content"]) if conversation else ""
    gold = {
        _normal(line[2:])
        for line in _section(text, "Reference reasoning:\n", "\n\n").splitlines()
        if line.startswith("- ")
    }
    steps = re.findall(
        r"^Step (\d+): (.*)$", _section(text, "The model's steps", "Reply with"), re.M
    )
    labels = []
    for number, step in steps:
        if _normal(step) in gold:
            labels.append({"step": int(number), "label": "correct"})
            continue
        category, subcategory = _guess(step)
        labels.append(
            {
                "step": int(number),
                "label": "hallucinated",
                "category": category,
                "subcategory": subcategory,
            }
        )
    return json.dumps(labels)


def gold_overlap_judge() -> ScriptedChat:
    return ScriptedChat(NAME, default=judge_reply)


register_script(NAME, gold_overlap_judge)
