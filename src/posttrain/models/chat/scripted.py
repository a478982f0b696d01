"""`ScriptedChat`: deterministic, rule-driven answers for offline defaults and tests.

A script is an ordered list of (regex, response) rules matched against the last user
message, plus a default. It needs no weights and no network, so recipes can run end to end
with a stand-in judge or teacher, and every output says which script produced it.

Named scripts live in a registry so a spec such as `scripted:arithmetic` can name them;
adding one is a single `register_script(name, factory)` call.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from posttrain.models.chat.base import ChatResult, Choice, Conversation, GenerationParams
from posttrain.models.chat.images import content_text

Responder = str | Callable[[re.Match[str], Conversation], str]
Rule = tuple[str | re.Pattern[str], Responder]
Default = str | Callable[[Conversation], str]
PREFIX = "scripted:"


def last_user_message(conversation: Conversation) -> str:
    """The text of the last user turn ("" if there is none): a content of parts gives its
    text parts joined by newlines, so rules match whether or not images came with it."""
    for message in reversed(conversation):
        if message.get("role") == "user":
            return content_text(message.get("content", ""))
    return ""


class ScriptedChat:
    """Answers by the first rule whose regex matches (`re.search`) the last user message.

    A string response is a `Match.expand` template (`\\1`, `\\g<name>`); a callable gets the
    match and the conversation. Stop strings truncate the answer as a real model's would;
    `max_tokens` is ignored (there is no tokenizer). Token ids and log-probs are None.
    """

    def __init__(
        self, name: str, rules: Sequence[Rule] = (), default: Default = "I don't know"
    ) -> None:
        self.name = name if name.startswith(PREFIX) else PREFIX + name
        self.rules = [(re.compile(pattern), response) for pattern, response in rules]
        self.default = default

    def respond(self, conversation: Conversation) -> str:
        """The scripted answer text for one conversation."""
        text = last_user_message(conversation)
        for pattern, response in self.rules:
            match = pattern.search(text)
            if match is None:
                continue
            if isinstance(response, str):
                return match.expand(response)
            return response(match, conversation)
        return self.default if isinstance(self.default, str) else self.default(conversation)

    def chat(
        self, conversations: Sequence[Conversation], params: GenerationParams | None = None
    ) -> list[ChatResult]:
        params = params or GenerationParams()
        results = []
        for conversation in conversations:
            text = _truncate_at_stop(self.respond(conversation), params.stop)
            choices = [Choice(text=text, finish_reason="stop") for _ in range(params.n)]
            results.append(ChatResult(model=self.name, choices=choices))
        return results


def _truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


ScriptFactory = Callable[..., ScriptedChat]
_SCRIPTS: dict[str, ScriptFactory] = {}


def register_script(name: str, factory: ScriptFactory, *, replace: bool = False) -> None:
    """Make `scripted:<name>` available; `factory(**kwargs)` builds a fresh ScriptedChat."""
    name = name.removeprefix(PREFIX)
    if not name:
        raise ValueError("a script needs a non-empty name")
    if name in _SCRIPTS and not replace:
        raise ValueError(f"script {name!r} is already registered (pass replace=True)")
    _SCRIPTS[name] = factory


def script_names() -> list[str]:
    """Registered script names, sorted."""
    return sorted(_SCRIPTS)


def make_script(name: str, **kwargs: Any) -> ScriptedChat:
    """Build the registered script `name` (with or without the `scripted:` prefix)."""
    key = name.removeprefix(PREFIX)
    if key not in _SCRIPTS:
        raise ValueError(f"unknown script {name!r}; registered: {', '.join(script_names())}")
    return _SCRIPTS[key](**kwargs)


def echo_script() -> ScriptedChat:
    """Repeats the last user message verbatim."""
    return ScriptedChat("echo", [(r"(?s)\A.*\Z", r"\g<0>")], default="")


# Two integer operands only: "What is 1 + 2 + 3?" or "What is 1.5 + 2?" is not answered.
_ARITHMETIC = re.compile(
    r"what\s+is\s+(-?\d+)\s*([-+*x×])\s*(-?\d+)(?![\d.])(?!\s*[-+*x×/]\s*-?\d)",
    re.IGNORECASE,
)
_OPERATORS: dict[str, Callable[[int, int], int]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "x": lambda a, b: a * b,
    "×": lambda a, b: a * b,
}


def _arithmetic_answer(match: re.Match[str], conversation: Conversation) -> str:
    a, op, b = int(match.group(1)), match.group(2).lower(), int(match.group(3))
    return str(_OPERATORS[op](a, b))


def arithmetic_script() -> ScriptedChat:
    """Answers "What is A + B?" (also -, *, x) exactly, as the bare number; else "I don't know"."""
    return ScriptedChat("arithmetic", [(_ARITHMETIC, _arithmetic_answer)], "I don't know")


register_script("echo", echo_script)
register_script("arithmetic", arithmetic_script)
