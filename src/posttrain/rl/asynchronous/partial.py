"""Partial rollouts: generation that may pick up new weights part-way through a response.

slime and AReaL interrupt in-flight generation when weights change and resume it from the
prefix with the new weights. Here a response is generated in segments of `segment_tokens`;
the engine applies pushes between batches, so a push takes effect at the next segment
boundary, and every token records the weight version that generated it. The alternative
("finish") generates the whole response as one request, with the weights it started with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from transformers import PreTrainedTokenizerBase

from posttrain.models.chat.base import Choice, GenerationParams
from posttrain.rl.rollout import TokenGenerator


class SegmentedGenerator:
    """Generate `params.max_tokens` in segments, resuming each unfinished choice."""

    def __init__(
        self, engine: TokenGenerator, tokenizer: PreTrainedTokenizerBase, segment_tokens: int
    ) -> None:
        if segment_tokens < 1:
            raise ValueError(f"segment_tokens must be >= 1, got {segment_tokens}")
        self.engine = engine
        self.tokenizer = tokenizer
        self.segment_tokens = segment_tokens

    def generate(
        self, prompts: Sequence[Sequence[int]], params: GenerationParams
    ) -> list[list[Choice]]:
        first = replace(params, max_tokens=min(self.segment_tokens, params.max_tokens))
        out = self.engine.generate(prompts, first)
        # One open choice per (prompt, sample); each continues alone (n = 1) from its prefix.
        states = [
            _Partial(list(p), c) for p, choices in zip(prompts, out, strict=True) for c in choices
        ]
        while True:
            open_ = [s for s in states if s.open(params.max_tokens)]
            if not open_:
                break
            room = min(self.segment_tokens, params.max_tokens - min(len(s.ids) for s in open_))
            step = replace(params, n=1, max_tokens=max(1, room))
            more = self.engine.generate([s.prompt + s.ids for s in open_], step)
            for state, (choice,) in zip(open_, more, strict=True):
                state.extend(choice, params.max_tokens)
        finished = [s.to_choice(self.tokenizer, params.stop) for s in states]
        return [finished[i * params.n : (i + 1) * params.n] for i in range(len(prompts))]


class _Partial:
    def __init__(self, prompt: list[int], choice: Choice) -> None:
        self.prompt = prompt
        self.ids: list[int] = []
        self.logprobs: list[float] = []
        self.versions: list[int] = []
        self.finish = "length"
        self.has_logprobs = choice.logprobs is not None
        self.extend(choice, None)

    def open(self, max_tokens: int) -> bool:
        return self.finish == "length" and len(self.ids) < max_tokens

    def extend(self, choice: Choice, max_tokens: int | None) -> None:
        tokens = list(choice.token_ids or [])
        if max_tokens is not None:
            tokens = tokens[: max_tokens - len(self.ids)]
        self.ids += tokens
        self.logprobs += list(choice.logprobs or [0.0] * len(tokens))[: len(tokens)]
        version = choice.weight_version if choice.weight_version is not None else 0
        self.versions += list(choice.token_versions or [version] * len(tokens))[: len(tokens)]
        self.finish = choice.finish_reason

    def to_choice(self, tokenizer: PreTrainedTokenizerBase, stops: Sequence[str]) -> Choice:
        eos = tokenizer.eos_token_id
        visible = self.ids[:-1] if self.finish == "stop" and self.ids[-1:] == [eos] else self.ids
        text = tokenizer.decode(visible, skip_special_tokens=True)
        for stop in stops:  # a stop string that straddles two segments
            if stop in text:
                text, self.finish = text[: text.find(stop)], "stop"
        return Choice(
            text=text,
            finish_reason=self.finish,
            token_ids=self.ids,
            logprobs=self.logprobs if self.has_logprobs else None,
            weight_version=min(self.versions, default=0),
            token_versions=self.versions,
        )
