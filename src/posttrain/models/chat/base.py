"""The one protocol every judge, agent, labeler and evaluator talks to a model through."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

# {"role": "user" | "assistant" | "system", "content": "..." or a list of content parts
# (`posttrain.models.chat.images`: text and image_url parts, in the OpenAI format)}
Message = dict[str, Any]
Conversation = Sequence[Message]


@dataclass(frozen=True)
class GenerationParams:
    """Sampling settings, named as in the OpenAI API so they map one to one."""

    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 64
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")


@dataclass
class Choice:
    """One completion. Token ids and log-probs are those produced at generation time."""

    text: str
    finish_reason: str = "stop"  # "stop" | "length"
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    weight_version: int | None = None
    """Version of the weights that generated it (the oldest, if a weight push came mid-way)."""
    token_versions: list[int] | None = None
    """Per token, the weight version that generated it (when generation spanned a push)."""


@dataclass(frozen=True)
class Usage:
    """Tokens a backend reports it billed for one request (the OpenAI API's `usage`): the
    prompt once, the completions of all `n` choices together."""

    prompt_tokens: int
    completion_tokens: int


@dataclass
class ChatResult:
    """All choices for one conversation. `model` always names the backend that answered."""

    model: str
    choices: list[Choice] = field(default_factory=list)
    weight_version: int | None = None
    usage: Usage | None = None
    """The backend's own token counts, where it reports them (None: it did not)."""
    cached: bool = field(default=False, compare=False)
    """Answered from a response cache, not by the backend: nothing was billed for it."""

    @property
    def text(self) -> str:
        return self.choices[0].text


@runtime_checkable
class ChatModel(Protocol):
    """A model that answers conversations: local weights, an HTTP endpoint or a script."""

    name: str

    def chat(
        self, conversations: Sequence[Conversation], params: GenerationParams | None = None
    ) -> list[ChatResult]:
        """Answer each conversation; results are in input order."""
        ...


def ask(model: ChatModel, prompt: str, params: GenerationParams | None = None) -> str:
    """Send one user message and return the first answer's text."""
    return model.chat([[{"role": "user", "content": prompt}]], params)[0].text
