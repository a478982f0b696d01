"""The FastAPI app: `/health`, `/v1/models`, `/v1/chat/completions`, `/v1/completions`,
and weight pushes (`/v1/weights`, and SGLang's `/update_weights_from_disk`).

Generating endpoints are plain `def`s: FastAPI runs each in its thread pool, where it
tokenises and then waits for the engine's batching thread, which generates concurrent
requests with the same settings together. The event loop keeps answering meanwhile.

Every route but `/health` takes the API key when one is set (`security`); what one request
may ask for is capped (`limits`), and the OpenAPI document says so (`openapi`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import Body, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from posttrain.models.chat.base import GenerationParams
from posttrain.models.chat.hf import HFChat
from posttrain.models.chat.hf_vision import ImageInputs, load_local_chat
from posttrain.models.server.engine import (
    MAX_BATCH,
    MAX_ROWS,
    Answer,
    Engine,
    Generated,
    TokenInfo,
)
from posttrain.models.server.errors import (
    APIError,
    BodySizeLimit,
    ErrorJSONResponse,
    install_error_handlers,
)
from posttrain.models.server.limits import GREEDY_BELOW, ServerLimits, TokenBudget, request_tokens
from posttrain.models.server.openapi import install_openapi
from posttrain.models.server.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    DiskWeightUpdateRequest,
    SamplingRequest,
    WeightUpdateRequest,
)
from posttrain.models.server.security import AccessGuard, allowed_hosts, check_bind
from posttrain.models.server.weights import read_state_dict, resolve_weights_path

DEFAULT_MAX_BODY_BYTES = 1 << 20


def create_app(
    chat: HFChat,
    *,
    served_model_name: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_batch: int = MAX_BATCH,
    max_rows: int = MAX_ROWS,
    limits: ServerLimits | None = None,
    api_key: str | None = None,
    host: str = "127.0.0.1",
    weights_root: str | Path | None = None,
) -> FastAPI:
    """An app serving `chat`'s model; `app.state.engine.weight_version` counts weight updates.
    An `HFVisionChat` (a vision-language model) also takes image_url content parts.

    Up to `max_batch` concurrent requests (and `max_rows` generated rows) are generated
    together; `max_batch=1` serves one request at a time. `limits` caps each request
    (default: `ServerLimits()`); `api_key` is required as a bearer token on every
    route but /health; `host` is the address served, which Host headers must name; weight
    pushes are taken from under `weights_root` only (none without it).
    """
    limits = limits or ServerLimits()
    engine = Engine(chat, max_batch=max_batch, max_rows=max_rows, time_slice_s=limits.time_slice_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        engine.close()

    app = FastAPI(title="posttrain OpenAI-compatible server", lifespan=lifespan)
    app.state.engine = engine
    app.state.served_model_name = served_model_name or chat.name
    app.state.model_path = str(chat.model_dir)
    app.state.limits = limits
    app.state.budget = TokenBudget(limits.max_queued_tokens)
    app.state.weights_root = Path(weights_root) if weights_root is not None else None
    app.state.created = int(time.time())
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.add_middleware(AccessGuard, api_key=api_key, hosts=allowed_hosts(host))  # outermost
    install_error_handlers(app)
    install_openapi(
        app,
        limits,
        engine.vocab_size,
        app.state.served_model_name,
        api_key is not None,
        vision=engine.processor is not None,
    )

    # Cheap endpoints are async: they answer from the event loop even while every worker
    # thread waits for the model.
    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models(request: Request) -> dict[str, Any]:
        state = request.app.state
        return {
            "object": "list",
            "data": [
                {
                    "id": state.served_model_name,
                    "object": "model",
                    "created": state.created,
                    "owned_by": "posttrain",
                    "max_model_len": state.engine.context_length,
                }
            ],
        }

    @app.post("/v1/chat/completions")
    def chat_completions(body: ChatCompletionRequest, request: Request) -> dict[str, Any]:
        started = time.monotonic()
        state = request.app.state
        engine: Engine = state.engine
        _check_request(body, state)
        top = (body.top_logprobs or 0) if body.logprobs else None
        prompt, images = engine.encode_chat_inputs(body.conversation(), body.has_images())
        engine.check_prompt(prompt, param="messages")
        param = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
        asked = body.max_completion_tokens or body.max_tokens
        params = _params(body, state.limits, [prompt], engine, asked, param, top is not None)
        answer = _generate(state, [prompt], params, top, started, images=[images])
        [generated], version = answer.generated, answer.weight_version
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": g.choice.text},
                "logprobs": _chat_logprobs(g.tokens) if g.tokens is not None else None,
                "finish_reason": g.choice.finish_reason,
                "token_ids": g.choice.token_ids,
            }
            for i, g in enumerate(generated)
        ]
        usage = _usage([prompt], generated)
        return _response("chat.completion", state.served_model_name, choices, usage, version)

    @app.post("/v1/completions")
    def completions(body: CompletionRequest, request: Request) -> dict[str, Any]:
        started = time.monotonic()
        state = request.app.state
        engine: Engine = state.engine
        _check_request(body, state)
        state.limits.check_prompts(len(body.prompt))  # before any tokenising
        prompts = [p if isinstance(p, list) else engine.encode_text(p) for p in body.prompt]
        for prompt in prompts:
            engine.check_prompt(prompt, param="prompt")
        logprobs = body.logprobs is not None
        params = _params(
            body, state.limits, prompts, engine, body.max_tokens, "max_tokens", logprobs
        )
        answer = _generate(state, prompts, params, body.logprobs, started)
        version = answer.weight_version
        flat = [g for per_prompt in answer.generated for g in per_prompt]
        choices = [
            {
                "index": i,
                "text": g.choice.text,
                "logprobs": _completion_logprobs(g.tokens) if g.tokens is not None else None,
                "finish_reason": g.choice.finish_reason,
                "token_ids": g.choice.token_ids,
            }
            for i, g in enumerate(flat)
        ]
        usage = _usage(prompts, flat)
        return _response("text_completion", state.served_model_name, choices, usage, version)

    @app.post("/v1/weights")
    def update_weights(body: WeightUpdateRequest, request: Request) -> dict[str, Any]:
        """Load new weights from under --weights-root between batches; the version must
        move forward."""
        engine: Engine = request.app.state.engine
        engine.check_version(body.version)
        path = resolve_weights_path(body.path, request.app.state.weights_root)
        tensors = read_state_dict(path, shown=body.path)  # read while generation goes on
        version = engine.load_weights(tensors, body.version)
        return {"weight_version": version, "tensors": len(tensors)}

    @app.get("/v1/weights")
    async def weight_version(request: Request) -> dict[str, int]:
        return {"weight_version": request.app.state.engine.weight_version}

    @app.post("/update_weights_from_disk")
    def update_weights_from_disk(
        request: Request,
        body: Any = Body(None),  # noqa: B008 - FastAPI's idiom
    ) -> JSONResponse:
        """SGLang's weight reload, same request and response shape: a trainer written for
        SGLang pushes to this server unchanged. Same rules as /v1/weights."""
        engine: Engine = request.app.state.engine
        status = 400
        try:
            update = DiskWeightUpdateRequest.model_validate(body)
            engine.check_version(update.version())
            path = resolve_weights_path(
                update.model_path, request.app.state.weights_root, param="model_path"
            )
            tensors = read_state_dict(
                path, load_format=update.load_format, shown=update.model_path, param="model_path"
            )
            version = engine.load_weights(tensors, update.version())
        except (ValidationError, APIError) as error:
            if isinstance(error, ValidationError):
                message = _first_error(error)
            else:
                message, status = error.message, error.status
            return ErrorJSONResponse(
                {"success": False, "message": message, "num_paused_requests": 0},
                status_code=status,
            )
        message = (
            f"Loaded {len(tensors)} tensors from {update.model_path}; weight version {version}."
        )
        return JSONResponse({"success": True, "message": message, "num_paused_requests": 0})

    @app.get("/stats")
    async def stats(request: Request) -> dict[str, int]:
        """Requests and batches generated so far: requests / batches is the mean batch size."""
        engine: Engine = request.app.state.engine
        return {
            "requests": engine.batcher.requests,
            "batches": engine.batcher.batches,
            "weight_version": engine.weight_version,
        }

    @app.get("/model_info")
    async def model_info(request: Request) -> dict[str, Any]:
        """The fields of SGLang's `/model_info` that apply here (its weight version too)."""
        state = request.app.state
        return {
            "model_path": state.model_path,
            "tokenizer_path": state.model_path,
            "is_generation": True,
            "weight_version": str(state.engine.weight_version),
        }

    return app


def _first_error(error: ValidationError) -> str:
    """One sentence naming the first invalid field of a request body."""
    first = error.errors()[0]
    field = ".".join(str(part) for part in first.get("loc", ())) or "body"
    reason = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"Invalid request body: '{field}': {reason}."


def _check_request(body: SamplingRequest, state: Any) -> None:
    """Refuse requests for another model, or beyond the server's caps on choices and stop
    strings."""
    if body.model is not None and body.model != state.served_model_name:
        raise APIError(
            f"The model '{body.model}' does not exist; this server serves "
            f"'{state.served_model_name}'.",
            status=404,
            param="model",
            code="model_not_found",
        )
    state.limits.check_n(body.n)
    state.limits.check_stop(body.stop)


def _params(
    body: SamplingRequest,
    limits: ServerLimits,
    prompts: Sequence[Sequence[int]],
    engine: Engine,
    asked: int | None,
    param: str,
    logprobs: bool,
) -> GenerationParams:
    n = body.n or 1
    room = engine.context_length - max(len(p) for p in prompts)
    temperature = 1.0 if body.temperature is None else body.temperature
    return GenerationParams(
        n=n,
        temperature=0.0 if temperature < GREEDY_BELOW else temperature,
        top_p=1.0 if body.top_p is None else body.top_p,
        max_tokens=limits.max_tokens(asked, room, n, param),
        stop=tuple(body.stop),
        seed=body.seed,
        logprobs=logprobs,
    )


def _generate(
    state: Any,
    prompts: list[list[int]],
    params: GenerationParams,
    top_logprobs: int | None,
    started: float,
    images: list[ImageInputs | None] | None = None,
) -> Answer:
    """Generate within the queued-token budget and the request's time budget."""
    limits: ServerLimits = state.limits
    with state.budget.reserve(request_tokens(prompts, params.n, params.max_tokens)):
        left = limits.request_timeout_s - (time.monotonic() - started)
        try:
            return state.engine.generate(
                prompts, params, top_logprobs, timeout=max(left, 0.0), images=images
            )
        except TimeoutError:
            raise APIError(
                f"The request was not answered within this server's time budget of "
                f"{limits.request_timeout_s:g} s per request (--request-timeout); its "
                "generation was stopped. Ask for fewer tokens, or retry when it is less busy.",
                status=408,
                code="request_timeout",
            ) from None


def _usage(prompts: list[list[int]], generated: list[Generated]) -> dict[str, int]:
    """Token counts; completion tokens include each choice's final stop token, as generated."""
    prompt_tokens = sum(len(p) for p in prompts)
    completion_tokens = sum(len(g.choice.token_ids or []) for g in generated)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


_ID_PREFIX = {"chat.completion": "chatcmpl", "text_completion": "cmpl"}


def _response(
    kind: str, model: str, choices: list[dict[str, Any]], usage: dict[str, int], version: int
) -> dict[str, Any]:
    return {
        "id": f"{_ID_PREFIX[kind]}-{uuid.uuid4().hex}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": usage,
        "system_fingerprint": None,
        "weight_version": version,
    }


def _chat_logprobs(tokens: list[TokenInfo]) -> dict[str, Any]:
    """Chat API layout: one entry per token with its exactly-k alternatives."""
    return {
        "content": [
            {
                "token": t.text,
                "logprob": t.logprob,
                "bytes": t.bytes,
                "top_logprobs": [
                    {"token": text, "logprob": lp, "bytes": raw} for text, raw, lp in t.top
                ],
            }
            for t in tokens
        ],
        "refusal": None,
    }


def _completion_logprobs(tokens: list[TokenInfo]) -> dict[str, Any]:
    """Legacy completions layout; as OpenAI documents, the sampled token is always included."""
    offsets, offset = [], 0
    for t in tokens:
        offsets.append(offset)
        offset += len(t.text)
    return {
        "tokens": [t.text for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [
            {**{text: lp for text, _, lp in t.top}, t.text: t.logprob} for t in tokens
        ],
        "text_offset": offsets,
    }


def serve(
    model_dir: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    served_model_name: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    device: str = "auto",
    max_batch: int = MAX_BATCH,
    limits: ServerLimits | None = None,
    api_key: str | None = None,
    weights_root: str | Path | None = None,
    attn_implementation: str | None = None,
) -> None:
    """Load `model_dir` and serve it until interrupted (`posttrain serve`).
    `attn_implementation` must already be registered with transformers if it is not one
    of its own (the CLI registers `posttrain_sparse`)."""
    if max_batch < 1:
        raise ValueError(f"--max-batch must be >= 1, got {max_batch}")
    check_bind(host, api_key)  # before minutes of loading a model
    if weights_root is not None and not Path(weights_root).is_dir():
        raise ValueError(f"--weights-root {weights_root} is not a directory")
    chat = load_local_chat(model_dir, device=device, attn_implementation=attn_implementation)
    app = create_app(
        chat,
        served_model_name=served_model_name,
        max_body_bytes=max_body_bytes,
        max_batch=max_batch,
        limits=limits,
        api_key=api_key,
        host=host,
        weights_root=weights_root,
    )
    uvicorn.run(app, host=host, port=port, log_level="info")
