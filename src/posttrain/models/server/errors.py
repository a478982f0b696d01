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
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.type = type_


def error_body(
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(error: APIError) -> JSONResponse:
    return JSONResponse(
        error_body(error.message, error.type, error.param, error.code), status_code=error.status
    )


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
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else None
        return error_response(APIError(str(exc.detail), status=exc.status_code, code=code))

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
        response = error_response(
            APIError(
                f"Request body of {size} bytes exceeds the limit of {self.max_bytes} bytes.",
                status=413,
                code="request_too_large",
            )
        )
        response.headers["connection"] = "close"
        await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": response.body})


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
