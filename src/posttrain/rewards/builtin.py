"""Built-in rule-based rewards with TRL's reward-function signature.

Every reward here is `fn(prompts, completions, completion_ids=None, **columns)` returning
`list[float | None]`: dataset columns arrive as lists aligned with `completions`, and trainer
extras (TRL also passes `trainer_state`, `log_metric`, ...) are ignored. Completions may be
plain strings or, for conversational datasets, lists of message dicts. A row whose reference
answer is None is not scored (None), which is how TRL marks a reward as not applicable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from posttrain.rewards.registry import RewardFunc, register_reward

Completion = str | list[dict[str, Any]]

# A number, with thousands separators and decimals; a sign counts only when it cannot be a binary
# operator (so "3-2" reads as 3 and 2, while "x = -2" reads as -2).
_NUMBER = re.compile(
    r"(?:(?<![\w)\]])[-+])?"  # optional sign
    r"(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"  # 1,234 | 12 | 12.5 | .5
)
_THINK_FORMAT = re.compile(r"\s*<think>.*?</think>(?P<answer>.*)", re.DOTALL)


def completion_text(completion: Completion) -> str:
    """The text a reward should judge: the string itself, or the last assistant message's content.

    A conversational completion with no assistant message yields "" (it answers nothing).
    """
    if isinstance(completion, str):
        return completion
    for message in reversed(completion):
        if message.get("role") == "assistant":
            content = message.get("content")
            if content is None:
                return ""
            if isinstance(content, str):
                return content
            # Structured content: a list of parts such as {"type": "text", "text": "..."}.
            return "".join(part.get("text", "") for part in content if part.get("type") == "text")
    return ""


def visible_answer(text: str) -> str:
    """The part of a completion meant for the user: everything after the last `</think>`."""
    return text.rpartition("</think>")[2]


def normalise(text: str) -> str:
    """Case-, whitespace- and final-period-insensitive form used for exact matching."""
    text = " ".join(text.lower().split())
    return text.removesuffix(".").rstrip()


def _column(columns: dict[str, Any], name: str, reward: str, n: int) -> Sequence[Any]:
    if name not in columns:
        raise ValueError(
            f"reward {reward!r} needs a {name!r} dataset column, aligned with the completions; "
            f"got columns {sorted(columns)}"
        )
    values = columns[name]
    if len(values) != n:
        raise ValueError(
            f"reward {reward!r}: column {name!r} has {len(values)} values for {n} completions"
        )
    return values


def _aliases(answer: Any) -> list[Any]:
    return list(answer) if isinstance(answer, list | tuple) else [answer]


@register_reward("exact_match")
def exact_match(
    prompts: list[Any],
    completions: list[Completion],
    completion_ids: list[Any] | None = None,
    **columns: Any,
) -> list[float | None]:
    """1.0 when the visible answer equals `answer` (or one alias in a list) after `normalise`."""
    answers = _column(columns, "answer", "exact_match", len(completions))
    rewards: list[float | None] = []
    for completion, answer in zip(completions, answers, strict=True):
        if answer is None:
            rewards.append(None)
            continue
        given = normalise(visible_answer(completion_text(completion)))
        accepted = {normalise(str(alias)) for alias in _aliases(answer)}
        rewards.append(1.0 if given in accepted else 0.0)
    return rewards


def last_number(text: str) -> float | None:
    """The last number written in `text` (e.g. "-1,234.5" → -1234.5), or None if there is none."""
    matches = _NUMBER.findall(text)
    return float(matches[-1].replace(",", "")) if matches else None


def _as_number(value: Any, reward: str) -> float:
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip().replace(",", ""))
    except ValueError:
        raise ValueError(f"reward {reward!r}: answer {value!r} is not a number") from None


class _NumericMatch:
    """Callable (not a closure) so that configured instances stay picklable for worker processes."""

    def __init__(self, tol: float) -> None:
        self.tol = tol
        self.__name__ = "numeric_match"  # what TRL uses to name the logged metric

    def __repr__(self) -> str:
        return f"numeric_match(tol={self.tol})"

    def __call__(
        self,
        prompts: list[Any],
        completions: list[Completion],
        completion_ids: list[Any] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        answers = _column(columns, "answer", "numeric_match", len(completions))
        rewards: list[float | None] = []
        for completion, answer in zip(completions, answers, strict=True):
            if answer is None:
                rewards.append(None)
                continue
            given = last_number(visible_answer(completion_text(completion)))
            targets = [_as_number(alias, "numeric_match") for alias in _aliases(answer)]
            hit = given is not None and any(
                math.isclose(given, target, rel_tol=0.0, abs_tol=self.tol) for target in targets
            )
            rewards.append(1.0 if hit else 0.0)
        return rewards


def numeric_match_reward(tol: float = 1e-6) -> RewardFunc:
    """A `numeric_match` reward comparing numbers with absolute tolerance `tol`."""
    if tol < 0:
        raise ValueError(f"tolerance must be non-negative, got {tol}")
    return _NumericMatch(tol)


numeric_match: RewardFunc = register_reward("numeric_match")(numeric_match_reward())
"""1.0 when the last number in the visible answer equals `answer` within 1e-6, else 0.0."""


@register_reward("think_format")
def think_format(
    prompts: list[Any],
    completions: list[Completion],
    completion_ids: list[Any] | None = None,
    **columns: Any,
) -> list[float | None]:
    """1.0 for exactly one leading `<think>...</think>` block followed by a non-empty answer."""
    rewards: list[float | None] = []
    for completion in completions:
        text = completion_text(completion)
        match = _THINK_FORMAT.fullmatch(text)
        ok = (
            match is not None
            and text.count("<think>") == 1
            and text.count("</think>") == 1
            and bool(match["answer"].strip())
        )
        rewards.append(1.0 if ok else 0.0)
    return rewards
