"""`OpenAIChat`: any OpenAI-compatible chat endpoint (OpenAI, vLLM, `posttrain serve`, ...).

Retries are the official client's own: with `max_retries` it retries connection errors,
timeouts, 408/409/429 and 5xx with exponential backoff and jitter (0.5 s doubling up to 8 s)
and honours `retry-after` / `retry-after-ms` headers. We deliberately do not add a second
retry loop on top, which would multiply attempts and ignore the server's back-off hints.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai

from posttrain.models.chat.base import ChatResult, Choice, Conversation, GenerationParams, Usage
from posttrain.models.chat.cache import ResponseCache

DUMMY_API_KEY = "EMPTY"  # local servers need no key, but the client insists on one


class ChatRequestError(RuntimeError):
    """A chat request that still failed after the client's retries; `__cause__` has details."""


class OpenAIChat:
    """Chat through `openai.OpenAI` with bounded concurrency, timeouts, retries and a cache."""

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        name: str | None = None,
        max_concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 5,
        cache: ResponseCache | str | Path | None = None,
    ) -> None:
        """Arguments left as None come from OPENAI_MODEL, OPENAI_BASE_URL and OPENAI_API_KEY."""
        model = model or os.environ.get("OPENAI_MODEL")
        if not model:
            raise ValueError("OpenAIChat needs a model name (argument or OPENAI_MODEL)")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self.model = model
        self.name = name or f"openai:{model}"
        self.max_concurrency = max_concurrency
        self.client = openai.OpenAI(
            base_url=base_url or os.environ.get("OPENAI_BASE_URL") or None,
            api_key=api_key or os.environ.get("OPENAI_API_KEY") or DUMMY_API_KEY,
            timeout=timeout,
            max_retries=max_retries,
        )
        self._owns_cache = isinstance(cache, str | Path)
        self.cache = ResponseCache(cache) if isinstance(cache, str | Path) else cache

    @property
    def base_url(self) -> str:
        return str(self.client.base_url)

    def request(self, conversation: Conversation, params: GenerationParams) -> dict[str, Any]:
        """The chat-completions request body for one conversation."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(message) for message in conversation],
            "n": params.n,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "logprobs": params.logprobs,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        return body

    def chat(
        self, conversations: Sequence[Conversation], params: GenerationParams | None = None
    ) -> list[ChatResult]:
        """Answer each conversation, `max_concurrency` requests at a time, in input order."""
        params = params or GenerationParams()
        if not conversations:
            return []
        workers = min(self.max_concurrency, len(conversations))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-chat") as pool:
            futures = [pool.submit(self._answer, c, params) for c in conversations]
            try:
                return [future.result() for future in futures]
            except BaseException:
                for future in futures:  # fail fast: don't start the queued requests
                    future.cancel()
                raise

    def _answer(self, conversation: Conversation, params: GenerationParams) -> ChatResult:
        body = self.request(conversation, params)
        cache_key = {"base_url": self.base_url, **body}
        if self.cache is not None and (hit := self.cache.get(cache_key)) is not None:
            return hit
        try:
            completion = self.client.chat.completions.create(**body)
        except openai.APIError as error:
            raise ChatRequestError(
                f"{self.name} at {self.base_url}: chat request failed "
                f"(max_retries={self.client.max_retries}): {type(error).__name__}: {error}"
            ) from error
        result = self._to_result(completion)
        if self.cache is not None:
            self.cache.put(cache_key, result)
        return result

    def _to_result(self, completion: Any) -> ChatResult:
        choices = [_to_choice(c) for c in sorted(completion.choices, key=lambda c: c.index)]
        weight_version = _extra(completion, "weight_version")
        return ChatResult(
            model=self.name,
            choices=choices,
            weight_version=int(weight_version) if weight_version is not None else None,
            usage=_to_usage(getattr(completion, "usage", None)),
        )

    def close(self) -> None:
        """Close the HTTP client, and the cache if this instance opened it from a path."""
        self.client.close()
        if self.cache is not None and self._owns_cache:
            self.cache.close()

    def __enter__(self) -> OpenAIChat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _extra(obj: Any, field: str) -> Any:
    """A non-standard response field (kept by the client's models in `model_extra`)."""
    extra = getattr(obj, "model_extra", None) or {}
    return extra.get(field, getattr(obj, field, None))


def _to_usage(usage: Any) -> Usage | None:
    """The reply's token counts; None when the server sent none (some do not)."""
    if usage is None or usage.prompt_tokens is None or usage.completion_tokens is None:
        return None
    return Usage(
        prompt_tokens=int(usage.prompt_tokens), completion_tokens=int(usage.completion_tokens)
    )


def _to_choice(choice: Any) -> Choice:
    content = choice.logprobs.content if choice.logprobs is not None else None
    token_ids = _extra(choice, "token_ids")
    return Choice(
        text=choice.message.content or "",
        finish_reason=choice.finish_reason or "stop",
        token_ids=[int(t) for t in token_ids] if token_ids is not None else None,
        logprobs=[float(t.logprob) for t in content] if content else None,
    )
