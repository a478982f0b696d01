"""OpenAI-shaped errors: every failure is `{"error": {message, type, param, code}}` JSON.

Clients (the `openai` package, lm-eval) read `error.message` to explain a failure, so
malformed requests get a 4xx naming the problem instead of FastAPI's default 422 layout.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class APIError(Exception):
    """A request the server refuses, reported to the client as-is."""

    def __init__(
        self,
        message: str,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        type_: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.type = type_
        self.headers = headers or {}


def error_body(
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class ErrorJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: an error may quote the client's input, and a lone
    surrogate in it (valid JSON, invalid UTF-8) must not turn a 400 into a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(error: APIError) -> JSONResponse:
    return ErrorJSONResponse(
        error_body(error.message, error.type, error.param, error.code),
        status_code=error.status,
        headers=error.headers or None,
    )


async def send_error(
    error: APIError, send: Send, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer with `error` straight from ASGI middleware (before the app has run)."""
    response = error_response(error)
    headers = [*response.raw_headers, *(extra_headers or [])]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def _field_path(loc: Sequence[str | int]) -> str:
    """`("body", "messages", 0, "content")` -> `messages[0].content`."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


def _validation_error(exc: RequestValidationError) -> APIError:
    """The first problem in a request body, as one sentence that names the field."""
    first = exc.errors()[0]
    loc = [p for p in first.get("loc", ()) if p != "body"]
    if first.get("type") == "json_invalid":
        reason = first.get("ctx", {}).get("error", first.get("msg", "invalid JSON"))
        return APIError(f"Could not parse the request body as JSON: {reason}", code="json_invalid")
    field = _field_path(loc)
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if not field:
        if first.get("type") in ("missing", "model_attributes_type"):
            message = "it must be a JSON object (sent with Content-Type: application/json)"
        return APIError(f"Invalid request body: {message}.")
    if first.get("type") == "missing":
        return APIError(f"Missing required field '{field}'.", param=field)
    shown = json.dumps(first.get("input"), default=repr)[:80]
    return APIError(
        f"Invalid value for '{field}': {message} (got {shown}).", param=field, code="invalid_value"
    )


def install_error_handlers(app: FastAPI) -> None:
    """Route every failure through `error_body` so clients always get the OpenAI shape."""

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(_validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else None
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request)
        error = APIError(str(exc.detail), status=exc.status_code, code=code, headers=headers)
        return error_response(error)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        # Only genuine bugs land here. Starlette re-raises after this response is sent, so
        # uvicorn logs the traceback, and the server goes on serving.
        return error_response(
            APIError(
                f"Internal server error: {type(exc).__name__}: {exc}",
                status=500,
                type_="internal_server_error",
            )
        )


def _allowed_methods(request: Request) -> str:
    """Every method some route takes at this path: Starlette's own 405 lists only the first
    route's, and GET and POST /v1/weights are two routes."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


class BodySizeLimit:
    """ASGI middleware answering 413 to request bodies over `max_bytes`.

    Checks the declared Content-Length first, then counts what actually arrives (chunked
    uploads declare none), so an oversized body is never handed to JSON parsing.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(int(declared), send)
            return
        body, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # client went away: nothing to answer
                return
            body.append(message.get("body", b""))
            size += len(body[-1])
            if size > self.max_bytes:
                await self._reject(size, send)
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(body), receive), send)

    async def _reject(self, size: int, send: Send) -> None:
        error = APIError(
            f"Request body of {size} bytes exceeds the limit of {self.max_bytes} bytes.",
            status=413,
            code="request_too_large",
        )
        await send_error(error, send, extra_headers=[(b"connection", b"close")])


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the already-read body once, then defers to the client."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
