"""Request bodies of the OpenAI chat-completions and completions APIs.

Validation is strict (no "0.5" for a number, no `true` for an integer) so a wrong type is
reported instead of guessed at; a whole number written as `2.0` is an integer, as JSON
Schema counts it. `null` means "use the default", as OpenAI clients send
it. Fields this server has no use for (`user`, `presence_penalty`, ...) are ignored.

Fields that take several forms (`prompt`, `stop`, `content`) are normalised by validators;
their OpenAPI schema is written out by hand (`*_SCHEMA`) to list exactly the forms taken.
`posttrain.models.server.openapi` fills in the server's own limits (prompts, stop strings,
vocabulary).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

_STRICT = ConfigDict(strict=True, extra="ignore")
MAX_VERSION = 2**63 - 1  # weight versions are int64 wherever they are stored


def _whole(value: Any) -> Any:
    """`2.0` -> `2`: JSON Schema's "integer" takes any number with no fraction."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _int(**bounds: int) -> Any:
    """An integer field type within `bounds` (ge, le, lt) that takes `2.0` for 2. The bounds
    come before the validator: after it, the JSON schema would not state them."""
    return Annotated[int, Field(**bounds), BeforeValidator(_whole)]


def _nonempty_string() -> dict[str, Any]:
    return {"type": "string", "minLength": 1}


def _token_ids() -> dict[str, Any]:
    return {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1}


# Fresh dicts everywhere: the OpenAPI document edits its copies one by one.
PROMPT_SCHEMA: dict[str, Any] = {
    "description": "A string, a list of strings, a list of token ids, or a list of "
    "token-id lists; each one prompt (a string or token-id list alone is a batch of one).",
    "anyOf": [
        _nonempty_string(),
        {"type": "array", "items": _nonempty_string(), "minItems": 1},
        _token_ids(),
        {"type": "array", "items": _token_ids(), "minItems": 1},
    ],
}
STOP_SCHEMA: dict[str, Any] = {
    "description": "Up to `maxItems` non-empty strings (or one string) that end a choice; "
    "the text returned stops before the first of them.",
    "anyOf": [
        _nonempty_string(),
        {"type": "array", "items": _nonempty_string()},
        {"type": "null"},
    ],
}
# A text model's document; a vision model's adds ImagePart to the items (`openapi`).
CONTENT_SCHEMA: dict[str, Any] = {
    "description": "A string, a list of text parts, or null (no text).",
    "anyOf": [
        {"type": "string"},
        {"type": "array", "items": {"$ref": "#/components/schemas/TextPart"}},
        {"type": "null"},
    ],
}
NOT_TRUE = {"description": "Not supported: false or null only.", "enum": [False, None]}


def lone_surrogate(value: Any, where: str = "body") -> str | None:
    """Where in a parsed JSON value a string holds a lone UTF-16 surrogate (`"\\ud800"` is
    valid JSON but no Unicode text: tokenizers and UTF-8 encoders fail on it), else None."""
    if isinstance(value, str):
        return where if any("\ud800" <= ch <= "\udfff" for ch in value) else None
    if isinstance(value, dict):
        items = ((f"{where}.{k}" if where != "body" else str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    return next((found for key, v in items if (found := lone_surrogate(v, key))), None)


class RequestBody(BaseModel):
    """A request body: strict types, unknown fields ignored, valid Unicode only."""

    model_config = _STRICT

    @model_validator(mode="before")
    @classmethod
    def _valid_unicode(cls, data: Any) -> Any:
        where = lone_surrogate(data)
        if where is not None:
            raise ValueError(f"'{where}' holds a lone surrogate, which is not valid Unicode")
        return data


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


class SamplingRequest(RequestBody):
    """Fields shared by both endpoints."""

    model: str | None = None
    n: _int(ge=1) | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    """Below 1e-5, sampling is greedy (as at 0)."""
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: _int(ge=1) | None = None
    stop: Annotated[list[str], WithJsonSchema(STOP_SCHEMA)] = Field(default_factory=list)
    seed: _int(ge=-(2**63), lt=2**64) | None = None  # what torch.manual_seed takes
    stream: Annotated[bool | None, WithJsonSchema(NOT_TRUE)] = None

    _check_stop = field_validator("stop", mode="before")(_stop_list)

    @field_validator("stream")
    @classmethod
    def _no_streaming(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("streaming is not supported by this server; send stream=false")
        return value


class TextPart(BaseModel):
    """One text part of a multi-part message (image parts are `ImagePart`s)."""

    # Both fields are checked by `_text_only` (to name the problem); the schema says so.
    model_config = ConfigDict(
        strict=True, extra="ignore", json_schema_extra={"required": ["type", "text"]}
    )

    type: Annotated[str, WithJsonSchema({"enum": ["text"]})]
    text: Annotated[str | None, WithJsonSchema({"type": "string"})] = None

    @model_validator(mode="after")
    def _text_only(self) -> TextPart:
        if self.type != "text":
            raise ValueError(
                f"only text and image_url content parts are supported, got type {self.type!r}"
            )
        if self.text is None:
            raise ValueError("a text content part needs a 'text' field")
        return self


class ImageURL(BaseModel):
    model_config = _STRICT

    url: str = Field(min_length=1)
    """A base64 data URL (`data:image/png;base64,...`); the server fetches nothing."""
    detail: str | None = None  # OpenAI's resolution hint; the processor decides here


class ImagePart(BaseModel):
    """An image part, as OpenAI writes it; only a vision-language model takes one."""

    model_config = _STRICT

    type: Literal["image_url"]
    image_url: ImageURL

    def as_dict(self) -> dict[str, Any]:
        return {"type": "image_url", "image_url": {"url": self.image_url.url}}


def _part_kind(value: Any) -> str:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return "image_url" if kind == "image_url" else "text"


ContentPart = Annotated[
    Annotated[TextPart, Tag("text")] | Annotated[ImagePart, Tag("image_url")],
    Discriminator(_part_kind),
]


class ChatMessage(BaseModel):
    model_config = _STRICT

    role: str = Field(min_length=1)
    # OpenAI allows a string, a list of parts, or null (an assistant turn with tool calls).
    content: Annotated[list[ContentPart], WithJsonSchema(CONTENT_SCHEMA)] = Field(
        default_factory=list
    )

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
        return "".join(part.text or "" for part in self.content if isinstance(part, TextPart))

    def has_images(self) -> bool:
        return any(isinstance(part, ImagePart) for part in self.content)

    def message(self) -> dict[str, Any]:
        """The message for a chat template: string content when it has no image (as a text
        model's template expects), else its parts in order, in the OpenAI layout."""
        if not self.has_images():
            return {"role": self.role, "content": self.text()}
        parts = [
            part.as_dict() if isinstance(part, ImagePart) else {"type": "text", "text": part.text}
            for part in self.content
        ]
        return {"role": self.role, "content": parts}


class ChatCompletionRequest(SamplingRequest):
    # As `_top_needs_logprobs` checks: alternatives (top_logprobs > 0) need logprobs=true.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {
                "properties": {"top_logprobs": {"type": "integer", "minimum": 1}},
                "required": ["top_logprobs"],
            },
            "then": {"properties": {"logprobs": {"const": True}}, "required": ["logprobs"]},
        }
    )

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: _int(ge=1) | None = None
    logprobs: bool | None = None
    top_logprobs: _int(ge=0, le=20) | None = None

    @field_validator("top_logprobs")
    @classmethod
    def _top_needs_logprobs(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value and not info.data.get("logprobs"):
            raise ValueError("top_logprobs requires logprobs=true")
        return value

    def conversation(self) -> list[dict[str, Any]]:
        return [m.message() for m in self.messages]

    def has_images(self) -> bool:
        return any(m.has_images() for m in self.messages)


class CompletionRequest(SamplingRequest):
    # A string, a list of strings, a list of token ids, or a list of token-id lists.
    prompt: Annotated[list[str] | list[list[int]], WithJsonSchema(PROMPT_SCHEMA)] = Field(
        min_length=1
    )
    logprobs: _int(ge=0, le=20) | None = None
    echo: Annotated[bool | None, WithJsonSchema(NOT_TRUE)] = None

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_batch(cls, value: Any) -> list[str] | list[list[int]]:
        """Normalise to a batch: one string or one token list becomes a batch of one."""

        def is_ids(item: Any) -> bool:
            return isinstance(item, list) and all(
                isinstance(_whole(t), int) and not isinstance(t, bool) for t in item
            )

        def ids(item: list[Any]) -> list[int]:
            return [_whole(t) for t in item]

        if isinstance(value, str):
            return [value]
        if is_ids(value) and value:
            return [ids(value)]
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        if isinstance(value, list) and all(is_ids(item) for item in value):
            return [ids(item) for item in value]
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


class WeightUpdateRequest(RequestBody):
    """`POST /v1/weights`: new weights for the served model, from a path on the server."""

    path: str = Field(min_length=1)
    """A checkpoint directory (`save_pretrained`) or a `.safetensors` / `.pt` state dict,
    under the server's `--weights-root` (a relative path is taken from there)."""
    version: _int(ge=0, le=MAX_VERSION) | None = None
    """The weight version to report from now on (above the current one); default: the
    current one plus 1."""


class DiskWeightUpdateRequest(RequestBody):
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
        text = value.strip() if isinstance(value, str) else None
        if text is not None and not (text.isascii() and text.lstrip("-").isdigit()):
            raise ValueError(
                f"weight_version must be an integer or its decimal string, got {value!r}"
            )
        number = int(text) if text is not None else value
        if number is not None and not 0 <= number <= MAX_VERSION:
            raise ValueError(f"weight_version must be in [0, 2**63 - 1], got {value!r}")
        return value

    def version(self) -> int | None:
        return None if self.weight_version is None else int(self.weight_version)
