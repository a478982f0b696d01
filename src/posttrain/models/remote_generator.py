"""A token generator behind an OpenAI-compatible `/v1/completions` endpoint.

It implements the same `generate(prompt_ids, params) -> list[list[Choice]]` as
`LocalGenerator`, so rollout can run on `posttrain serve` (or another server that accepts
token-id prompts and returns each choice's `token_ids` and per-token log-probs) exactly as
it runs on the local policy. Token ids are taken from the server, never re-tokenised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import openai

from posttrain.models.chat.base import Choice, GenerationParams


class RemoteGenerator:
    """Token-in, token-out generation over HTTP with the official `openai` client."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 300.0,
        max_retries: int = 3,
    ) -> None:
        self.model = model
        self.client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout, max_retries=max_retries
        )
        self.weight_version: int | None = None
        """The server's weight version at the last response (None if it reports none)."""

    def generate(
        self, prompts: Sequence[Sequence[int]], params: GenerationParams
    ) -> list[list[Choice]]:
        response = self.client.completions.create(
            model=self.model,
            prompt=[list(p) for p in prompts],
            n=params.n,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_tokens,
            stop=list(params.stop) or None,
            seed=params.seed,
            logprobs=0 if params.logprobs else None,  # sampled tokens only, no alternatives
            # vLLM returns each choice's `token_ids` only when asked; posttrain serve always does.
            extra_body={"return_token_ids": True},
        )
        version = _extra(response, "weight_version")
        self.weight_version = int(version) if version is not None else None
        ordered = sorted(response.choices, key=lambda c: c.index)
        if len(ordered) != len(prompts) * params.n:
            raise ValueError(
                f"{self.client.base_url}: expected {len(prompts) * params.n} choices, "
                f"got {len(ordered)}"
            )
        choices = [_choice(c, params.logprobs, str(self.client.base_url)) for c in ordered]
        for choice in choices:
            choice.weight_version = self.weight_version
        return [choices[i * params.n : (i + 1) * params.n] for i in range(len(prompts))]


def _extra(obj: Any, field: str) -> Any:
    extra = getattr(obj, "model_extra", None) or {}
    return extra.get(field, getattr(obj, field, None))


def _choice(choice: Any, logprobs: bool, server: str) -> Choice:
    token_ids = _extra(choice, "token_ids")
    if token_ids is None:
        raise ValueError(f"{server} returned no token_ids; rollout needs the generated ids")
    token_logprobs = choice.logprobs.token_logprobs if logprobs and choice.logprobs else None
    return Choice(
        text=choice.text,
        finish_reason=choice.finish_reason or "stop",
        token_ids=[int(t) for t in token_ids],
        logprobs=[float(lp) for lp in token_logprobs] if token_logprobs is not None else None,
    )
