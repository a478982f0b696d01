"""The OpenAPI document of `posttrain serve`, made to say what the server does.

FastAPI documents a 422 with its own error layout for every body; this server answers 400
with OpenAI's `{"error": {...}}` instead, and can also answer 401 (API key), 403, 404, 408,
409, 413 and 429. This module replaces the 422s with those, documents the bearer key when
one is set, and writes the server's limits (prompts and stop strings per request, `n`, the
vocabulary, the model name) into the request schemas, so a schema-valid request is refused
only for what a schema cannot say (a prompt longer than the context, `n * max_tokens`).
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI

from posttrain.models.server.limits import ServerLimits
from posttrain.models.server.schemas import DiskWeightUpdateRequest, ImagePart, TextPart

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "description": "OpenAI's error layout.",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
SGLANG_ANSWER: dict[str, Any] = {
    "title": "SGLangWeightUpdateAnswer",
    "type": "object",
    "required": ["success", "message", "num_paused_requests"],
    "properties": {
        "success": {"type": "boolean"},
        "message": {"type": "string"},
        "num_paused_requests": {"type": "integer"},
    },
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
_SGLANG_REF = {"$ref": "#/components/schemas/SGLangWeightUpdateAnswer"}

_WHY = {
    "400": "Invalid request: a malformed body, a value the server refuses (named in "
    "`error.param`), or a Host header this server does not answer to.",
    "401": "Missing or wrong API key (`Authorization: Bearer <key>`).",
    "403": "Weight pushes are off (no --weights-root), or the path is outside the weights root.",
    "404": "The requested model is not served here.",
    "408": "Not answered within the server's time budget per request (--request-timeout).",
    "409": "The pushed version does not move forward.",
    "413": "The request body is over the server's size limit (--max-body-bytes), or "
    "(serve-rm) holds more pairs than --max-items.",
    "429": "The server's queue of tokens is full (--max-queued-tokens); retry later.",
}
_GENERATING = ("400", "401", "404", "408", "413", "429")
_PUSHING = ("400", "401", "403", "409", "413")


def install_openapi(
    app: FastAPI,
    limits: ServerLimits,
    vocab_size: int,
    model_name: str,
    keyed: bool,
    vision: bool = False,
) -> None:
    """Make `app.openapi()` return the corrected document of `posttrain serve` (`vision`:
    the model takes image_url content parts too)."""
    _install(app, lambda schema: document(schema, limits, vocab_size, model_name, keyed, vision))


def install_error_docs(
    app: FastAPI,
    keyed: bool,
    codes: dict[str, tuple[str, ...]],
    schemas: dict[str, dict[str, Any]] | None = None,
) -> None:
    """The same corrections for another app (`posttrain serve-rm`): the error codes each
    path answers with (others: 400 and 401), and request-schema properties to replace."""

    def edit(schema: dict[str, Any]) -> dict[str, Any]:
        components = _common(schema, keyed)
        for name, properties in (schemas or {}).items():
            components[name]["properties"].update(copy.deepcopy(properties))
        for path, operations in schema["paths"].items():
            for operation in operations.values():
                default = ("400",) if path == "/health" else ("400", "401")
                _errors(operation, path, codes.get(path, default), keyed)
        return schema

    _install(app, edit)


def _install(app: FastAPI, edit: Any) -> None:
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = edit(copy.deepcopy(plain()))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _common(schema: dict[str, Any], keyed: bool) -> dict[str, Any]:
    """Drop FastAPI's validation-error schemas, add OpenAI's error and the bearer scheme;
    returns the component schemas."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    components["Error"] = ERROR_SCHEMA
    if keyed:
        schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return components


def document(
    schema: dict[str, Any],
    limits: ServerLimits,
    vocab_size: int,
    model_name: str,
    keyed: bool,
    vision: bool = False,
) -> dict[str, Any]:
    components = _common(schema, keyed)
    components["SGLangWeightUpdateAnswer"] = SGLANG_ANSWER
    ref = "#/components/schemas/{model}"
    components["TextPart"] = TextPart.model_json_schema(ref_template=ref)
    # Only a vision-language model takes image parts (pydantic lists them for every server);
    # a text model answers them with a 400.
    for name in ("ImagePart", "ImageURL"):
        components.pop(name, None)
    if vision:
        image = ImagePart.model_json_schema(ref_template=ref)
        components.update(image.pop("$defs", {}))  # ImageURL, which its $ref names here
        components["ImagePart"] = image
        content = components["ChatMessage"]["properties"]["content"]
        content["description"] = "A string, a list of text and image_url parts, or null."
        content["anyOf"][1]["items"] = {
            "anyOf": [{"$ref": ref.format(model=name)} for name in ("TextPart", "ImagePart")]
        }
    components["DiskWeightUpdateRequest"] = DiskWeightUpdateRequest.model_json_schema(
        ref_template=ref
    )
    for name in ("ChatCompletionRequest", "CompletionRequest"):
        _limit_sampling(components[name]["properties"], limits, model_name)
    properties = components["CompletionRequest"]["properties"]
    properties["prompt"] = _limit_prompt(copy.deepcopy(properties["prompt"]), limits, vocab_size)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            _document_operation(path, method, operation, keyed)
    return schema


def _document_operation(path: str, method: str, operation: dict[str, Any], keyed: bool) -> None:
    if path == "/health":
        codes: tuple[str, ...] = ("400",)  # the Host check covers every route
    elif path in ("/v1/chat/completions", "/v1/completions"):
        codes = _GENERATING
    elif path == "/v1/weights" and method == "post":
        codes = _PUSHING
    elif path == "/update_weights_from_disk":
        codes = _PUSHING
        operation["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/DiskWeightUpdateRequest"}
                }
            },
        }
        operation["responses"]["200"]["content"]["application/json"]["schema"] = _SGLANG_REF
    else:
        codes = ("400", "401")
    _errors(operation, path, codes, keyed)


def _errors(operation: dict[str, Any], path: str, codes: tuple[str, ...], keyed: bool) -> None:
    """Replace the 422 with the error answers `codes`, and require the key when set."""
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    for code in codes:
        if code == "401" and not keyed:
            continue
        body = _ERROR_REF
        if path == "/update_weights_from_disk" and code in ("400", "403", "409"):
            body = {"anyOf": [_SGLANG_REF, _ERROR_REF]}  # the Host check answers OpenAI's way
        responses[code] = {
            "description": _WHY[code],
            "content": {"application/json": {"schema": body}},
        }
    if keyed and path != "/health":
        operation["security"] = [{"bearer": []}]


def _limit_sampling(properties: dict[str, Any], limits: ServerLimits, model_name: str) -> None:
    properties["n"] = {
        "anyOf": [{"type": "integer", "minimum": 1, "maximum": limits.max_n}, {"type": "null"}],
        "description": f"Choices per prompt, at most {limits.max_n} (--max-n).",
    }
    properties["model"] = {
        "anyOf": [{"enum": [model_name]}, {"type": "null"}],
        "description": "The served model's name (others get a 404); null: that model.",
    }
    stop = copy.deepcopy(properties["stop"])
    one, many, _ = stop["anyOf"]
    one["maxLength"] = limits.max_stop_chars
    many["items"]["maxLength"] = limits.max_stop_chars
    many["maxItems"] = limits.max_stop
    properties["stop"] = stop
    for name in ("max_tokens", "max_completion_tokens"):
        if name in properties:
            properties[name]["description"] = (
                f"Tokens per choice; n * this is at most {limits.max_sampled_tokens} "
                "(--max-sampled-tokens). Default: what the context leaves, within that."
            )


def _limit_prompt(prompt: dict[str, Any], limits: ServerLimits, vocab_size: int) -> dict[str, Any]:
    _, strings, ids, id_lists = prompt["anyOf"]
    for form in (strings, id_lists):
        form["maxItems"] = limits.max_prompts
    for form in (ids, id_lists["items"]):
        form["items"]["maximum"] = vocab_size - 1
    prompt["description"] += f" At most {limits.max_prompts} prompts (--max-prompts)."
    return prompt
