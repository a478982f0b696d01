"""Batched chat calls whose answers must parse, with retries for the ones that do not.

Both the labeler and the refusal adjudicator need it: one batched call for a chunk, then
only the unparsed prompts again, each retry with its own seed and a temperature of at
least 0.7 so a sampling model can answer differently (a greedy one would repeat itself).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from posttrain.models.chat.base import ChatModel, GenerationParams

T = TypeVar("T")


@dataclasses.dataclass
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
    """Answers in prompt order; a prompt still unparsed after `retries` retries has value None."""
    answers: list[Answer[T] | None] = [None] * len(prompts)
    texts = [""] * len(prompts)
    pending = list(range(len(prompts)))
    for attempt in range(retries + 1):
        if not pending:
            break
        call = params
        if attempt:
            call = dataclasses.replace(
                params, temperature=max(params.temperature, 0.7), seed=attempt
            )
        results = model.chat([[{"role": "user", "content": prompts[i]}] for i in pending], call)
        if len(results) != len(pending):
            raise RuntimeError(
                f"{model.name!r} returned {len(results)} results for {len(pending)} prompts"
            )
        still = []
        for index, result in zip(pending, results, strict=True):
            text = result.text
            value = parse(text)
            texts[index] = text
            if value is None:
                still.append(index)
            else:
                answers[index] = Answer(value, text, attempt + 1)
        pending = still
    for index in pending:
        answers[index] = Answer(None, texts[index], retries + 1)
    return [a for a in answers if a is not None]
