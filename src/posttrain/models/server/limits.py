"""How much work one request may ask of `posttrain serve`, and how much may wait at once.

A small body can ask for a lot: 512 prompts fit in 3 KB, and 50,000 stop strings cost
seconds and hundreds of MB to prepare. Every cap here is a CLI flag of `posttrain serve`
and is named in the 400 that enforces it, so a client knows what to change.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields

from posttrain.models.server.errors import APIError

GREEDY_BELOW = 1e-5
"""Temperatures below this sample greedily (as vLLM does): dividing logits by a tiny
temperature overflows to inf and sampling fails."""


@dataclass(frozen=True)
class ServerLimits:
    max_n: int = 16
    """Largest `n` (choices per prompt)."""
    max_prompts: int = 64
    """Largest number of prompts in one /v1/completions request."""
    max_stop: int = 16
    """Largest number of stop strings."""
    max_stop_chars: int = 256
    """Longest stop string, in characters."""
    max_sampled_tokens: int = 65536
    """Largest n * max_tokens for one prompt. When max_tokens is left out it defaults to what
    the context leaves, cut to this / n."""
    max_queued_tokens: int = 1 << 20
    """Largest sum, over the requests admitted and not yet answered, of n * (prompt tokens +
    max_tokens) per prompt; a request that would go over waits for none: it gets a 429."""
    request_timeout_s: float = 600.0
    """A request still unanswered after this long (queued or generating) gets a 408, and its
    generation stops."""
    time_slice_s: float = 0.5
    """A batch that has generated this long while other requests wait yields to them at its
    next decode step, and continues after them: a long request cannot starve short ones."""

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value <= 0:
                flag = "--" + spec.name.removesuffix("_s").replace("_", "-")
                raise ValueError(f"{flag} must be > 0, got {value}")

    def check_n(self, n: int | None) -> None:
        if n is not None and n > self.max_n:
            raise APIError(
                f"n={n} is above this server's limit of {self.max_n} choices per request "
                "(--max-n).",
                param="n",
                code="too_many_choices",
            )

    def check_prompts(self, count: int) -> None:
        if count > self.max_prompts:
            raise APIError(
                f"'prompt' holds {count} prompts; this server takes at most "
                f"{self.max_prompts} per request (--max-prompts). Send them in batches.",
                param="prompt",
                code="too_many_prompts",
            )

    def check_stop(self, stop: Sequence[str]) -> None:
        if len(stop) > self.max_stop:
            raise APIError(
                f"'stop' holds {len(stop)} strings; this server takes at most "
                f"{self.max_stop} (--max-stop).",
                param="stop",
                code="too_many_stop_strings",
            )
        longest = max((len(s) for s in stop), default=0)
        if longest > self.max_stop_chars:
            raise APIError(
                f"a stop string is {longest} characters long; this server takes at most "
                f"{self.max_stop_chars} (--max-stop-chars).",
                param="stop",
                code="stop_string_too_long",
            )

    def max_tokens(self, asked: int | None, room: int, n: int, param: str) -> int:
        """Tokens to generate per choice: `asked` (refused if n * asked is over the cap),
        or by default what the context leaves, cut to the cap."""
        per_choice = self.max_sampled_tokens // n
        if asked is None:
            return max(1, min(room, per_choice))
        if n * asked > self.max_sampled_tokens:
            raise APIError(
                f"n * {param} = {n} * {asked} = {n * asked} tokens is above this server's "
                f"limit of {self.max_sampled_tokens} per prompt (--max-sampled-tokens).",
                param=param,
                code="too_many_tokens",
            )
        return min(asked, room)


class TokenBudget:
    """Tokens admitted and not yet answered, against `ServerLimits.max_queued_tokens`."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._lock = threading.Lock()

    @contextmanager
    def reserve(self, tokens: int) -> Iterator[None]:
        """Hold `tokens` while the body runs; refuse when they do not fit now (429) or
        never could (400)."""
        if tokens > self.capacity:
            raise APIError(
                f"This request needs {tokens} tokens (n * (prompt + max_tokens) per prompt), "
                f"above this server's limit of {self.capacity} queued tokens "
                "(--max-queued-tokens): send fewer prompts or a smaller max_tokens.",
                code="request_too_large",
            )
        with self._lock:
            if self.used + tokens > self.capacity:
                raise APIError(
                    f"The server is busy: {self.used} of its {self.capacity} queued tokens "
                    f"(--max-queued-tokens) are taken and this request needs {tokens}. "
                    "Retry later.",
                    status=429,
                    code="server_busy",
                    type_="rate_limit_error",
                    headers={"retry-after": "1"},
                )
            self.used += tokens
        try:
            yield
        finally:
            with self._lock:
                self.used -= tokens


def request_tokens(prompts: Sequence[Sequence[int]], n: int, max_tokens: int) -> int:
    """What a request can occupy: n rows per prompt, each its prompt plus max_tokens."""
    return n * sum(len(p) + max_tokens for p in prompts)
