"""Partial rollouts: a weight push that lands mid-generation aborts and resumes the batch.

slime and AReaL interrupt in-flight generation when weights change and resume it from the
prefix with the new weights. With `async.partial_rollout: resume` the trainer pushes with
`interrupt=True`: an engine that can stop between decode steps (`EngineCore` in a thread,
a child process or a Ray actor) ends the batch it is generating at the next step and
returns the unfinished responses with finish reason "abort"; `generate_resuming` then has
the new weights loaded and continues each of them from prompt + the tokens it has so far,
keeping those tokens and their log-probs. Every token records the weight version that
generated it. Server engines cannot stop mid-batch (the OpenAI API has no abort): they
finish the batch and load the push after it, as `finish` always does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from posttrain.models.chat.base import Choice, GenerationParams

ABORT = "abort"
"""Finish reason of a response cut short by an interrupting weight push (as vLLM names it)."""

Request = tuple[list[list[int]], GenerationParams]
Generate = Callable[[list[Request]], list[list[list[Choice]]]]


def generate_resuming(
    requests: Sequence[Request],
    generate: Generate,
    reload: Callable[[], None],
    decode: Callable[[list[int]], str],
) -> list[list[list[Choice]]]:
    """`generate(requests)`, continuing every aborted response after `reload()` until none is.

    `decode` renders token ids as text (special tokens skipped), for responses whose text
    now spans two generations.
    """
    results = generate(list(requests))
    while True:
        open_ = [
            _Open(prompt, params, choice, per_prompt, k)
            for (prompts, params), per_request in zip(requests, results, strict=True)
            for prompt, per_prompt in zip(prompts, per_request, strict=True)
            for k, choice in enumerate(per_prompt)
            if choice.finish_reason == ABORT
        ]
        if not open_:
            return results
        reload()
        more = generate([item.continuation() for item in open_])
        for item, [[choice]] in zip(open_, more, strict=True):
            item.slot[item.index] = _joined(item.choice, choice, item.params, decode)


@dataclass
class _Open:
    """An aborted response and where its finished version goes."""

    prompt: list[int]
    params: GenerationParams
    choice: Choice
    slot: list[Choice]
    index: int

    def continuation(self) -> Request:
        done = len(self.choice.token_ids or [])
        rest = replace(self.params, n=1, max_tokens=max(1, self.params.max_tokens - done))
        return [self.prompt + list(self.choice.token_ids or [])], rest


def versions_of(choice: Choice) -> list[int]:
    """Per-token weight versions of a choice (its one version, if it records no more)."""
    if choice.token_versions is not None:
        return list(choice.token_versions)
    return [choice.weight_version or 0] * len(choice.token_ids or [])


def _joined(
    head: Choice, tail: Choice, params: GenerationParams, decode: Callable[[list[int]], str]
) -> Choice:
    """`head`'s tokens followed by its continuation `tail`, as one choice."""
    ids = list(head.token_ids or []) + list(tail.token_ids or [])
    logprobs = None
    if head.logprobs is not None and tail.logprobs is not None:
        logprobs = list(head.logprobs) + list(tail.logprobs)
    versions = versions_of(head) + versions_of(tail)
    finish = tail.finish_reason
    text = decode(ids)
    stops = [s for s in params.stop if s in text]
    if stops:  # a stop string across the join ends the response there
        ends = range(len(head.token_ids or []) + 1, len(ids) + 1)
        cut = next((n for n in ends if any(s in decode(ids[:n]) for s in stops)), len(ids))
        ids, versions = ids[:cut], versions[:cut]
        logprobs = logprobs[:cut] if logprobs is not None else None
        text = decode(ids)
        text, finish = text[: min(text.find(s) for s in stops)], "stop"
    return Choice(
        text=text,
        finish_reason=finish,
        token_ids=ids,
        logprobs=logprobs,
        weight_version=min(versions, default=tail.weight_version or 0),
        token_versions=versions,
    )
