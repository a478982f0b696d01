"""Request bodies of the OpenAI chat-completions and completions APIs.

Validation is strict (no "0.5" for a number, no `true` for an integer) so a wrong type is
reported instead of guessed at. `null` means "use the default", as OpenAI clients send
it. Fields this server has no use for (`user`, `presence_penalty`, ...) are ignored.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

_STRICT = ConfigDict(strict=True, extra="ignore")


def _stop_list(value: Any) -> list[str]:
    """`stop` as a list of non-empty strings; OpenAI allows one string or a list."""
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise ValueError("stop must be a string or a list of strings")
    if any(s == "" for s in stops):
        raise ValueError("stop strings must not be empty")
    return stops


class SamplingRequest(BaseModel):
    """Fields shared by both endpoints."""

    model_config = _STRICT

    model: str | None = None
    n: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = Field(None, ge=-(2**63), lt=2**64)  # what torch.manual_seed takes
    stream: bool | None = None

    _check_stop = field_validator("stop", mode="before")(_stop_list)

    @field_validator("stream")
    @classmethod
    def _no_streaming(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("streaming is not supported by this server; send stream=false")
        return value


class TextPart(BaseModel):
    """One part of a multi-part message; only text parts can be given to a text model."""

    model_config = _STRICT

    type: str
    text: str | None = None

    @model_validator(mode="after")
    def _text_only(self) -> TextPart:
        if self.type != "text":
            raise ValueError(f"only text content parts are supported, got type {self.type!r}")
        if self.text is None:
            raise ValueError("a text content part needs a 'text' field")
        return self


class ChatMessage(BaseModel):
    model_config = _STRICT

    role: str = Field(min_length=1)
    # OpenAI allows a string, a list of parts, or null (an assistant turn with tool calls).
    content: list[TextPart] = Field(default_factory=list)

    @field_validator("content", mode="before")
    @classmethod
    def _parts(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [{"type": "text", "text": value}]
        if isinstance(value, list):
            return value
        raise ValueError("content must be a string, a list of content parts, or null")

    def text(self) -> str:
        return "".join(part.text or "" for part in self.content)


class ChatCompletionRequest(SamplingRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)

    @field_validator("top_logprobs")
    @classmethod
    def _top_needs_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value and not info.data.get("logprobs"):
            raise ValueError("top_logprobs requires logprobs=true")
        return value

    def conversation(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.text()} for m in self.messages]


class CompletionRequest(SamplingRequest):
    # A string, a list of strings, a list of token ids, or a list of token-id lists.
    prompt: list[str] | list[list[int]] = Field(min_length=1)
    logprobs: int | None = Field(None, ge=0, le=20)
    echo: bool | None = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_batch(cls, value: Any) -> list[str] | list[list[int]]:
        """Normalise to a batch: one string or one token list becomes a batch of one."""

        def is_ids(item: Any) -> bool:
            return isinstance(item, list) and all(
                isinstance(t, int) and not isinstance(t, bool) for t in item
            )

        if isinstance(value, str) or (is_ids(value) and value):
            return [value]
        if isinstance(value, list) and (
            all(isinstance(item, str) for item in value) or all(is_ids(i) for i in value)
        ):
            return value
        raise ValueError(
            "prompt must be a string, a list of strings, a list of token ids "
            "or a list of token-id lists"
        )

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("echo is not supported by this server")
        return value


class WeightUpdateRequest(BaseModel):
    """`POST /v1/weights`: new weights for the served model, from a path on the server."""

    model_config = _STRICT

    path: str
    """A checkpoint directory (`save_pretrained`) or a `.safetensors` / `.pt` state dict."""
    version: int | None = None
    """The weight version to report from now on; default: the current one plus 1."""


class DiskWeightUpdateRequest(BaseModel):
    """`POST /update_weights_from_disk`, SGLang's request: reload weights from a directory.

    SGLang's other fields (`abort_all_requests`, `flush_cache`, ...) are accepted and
    ignored: this server has no KV cache across requests and loads between batches anyway.
    """

    model_config = ConfigDict(strict=True, extra="ignore", protected_namespaces=())

    model_path: str = Field(min_length=1)
    """A checkpoint directory (`save_pretrained`) or a `.safetensors` / `.pt` state dict."""
    load_format: str | None = None
    """None or "auto" (whatever the path holds), "safetensors" or "pt"."""
    weight_version: str | int | None = None
    """SGLang names versions with strings; this server counts them, so an integer (or its
    decimal string) is required when given. Default: the current version plus 1."""

    @field_validator("weight_version")
    @classmethod
    def _integer_version(cls, value: str | int | None) -> str | int | None:
        if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
            raise ValueError(
                f"weight_version must be an integer or its decimal string, got {value!r}"
            )
        return value

    def version(self) -> int | None:
        return None if self.weight_version is None else int(self.weight_version)
