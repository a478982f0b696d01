"""A reward model over HTTP: `POST /score` on a FastAPI app, and `HTTPRewardModel`, its client.

`posttrain serve-rm MODEL_DIR --port 8100` (which calls `serve`) serves a directory
written by `train_reward_model`. Errors and access follow `posttrain serve`: OpenAI-shaped
4xx JSON naming the problem, a body-size limit, an API key (`--api-key` or
POSTTRAIN_API_KEY, required beyond loopback) on every route but /health, and a Host check.
The client satisfies the same `Scorer` protocol as the in-process `RewardModel`, and sends
POSTTRAIN_API_KEY (or the key it is given) as a bearer token.

Prompts and responses are strings or lists of chat messages and travel whole: the server
scores the whole conversation (history included) through the model's chat template, exactly
as `RewardModel.score` does in-process.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import httpx
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from posttrain.models.server_process import ServerProcess
from posttrain.rewards.reward_model import RewardModel, Text, check_pairs, is_messages

if TYPE_CHECKING:
    from posttrain.rewards.ordinal import OrdinalRewardModel

DEFAULT_PORT = 8100
DEFAULT_MAX_ITEMS = 256
"""Pairs per request; a client sends more in batches (HTTPRewardModel does)."""
DEFAULT_MAX_BODY_BYTES = 4 << 20
API_KEY_ENV = "POSTTRAIN_API_KEY"  # as posttrain.models.server.security, without its imports

# What an item may be, for the OpenAPI document (`bad_item` checks the same).
_PART = {
    "type": "object",
    "properties": {"type": {"type": "string"}, "text": {"type": "string"}},
    "required": ["type"],
}
_MESSAGE = {
    "type": "object",
    "properties": {
        "role": {"type": "string"},
        "content": {
            "anyOf": [{"type": "string"}, {"type": "array", "items": _PART}, {"type": "null"}]
        },
    },
    "required": ["role", "content"],
}
_ITEM = {
    "description": "A string, or a non-empty list of chat messages.",
    "anyOf": [{"type": "string"}, {"type": "array", "items": _MESSAGE, "minItems": 1}],
}


def _items_schema(max_items: int) -> dict[str, Any]:
    return {"type": "array", "items": _ITEM, "minItems": 1, "maxItems": max_items}


class ScoreRequest(BaseModel):
    """`{"prompts": [...], "responses": [...]}`, each item a string or a list of chat messages;
    items are checked by `bad_item`, so an error names the item rather than a union branch."""

    model_config = ConfigDict(strict=True, extra="ignore")

    prompts: Annotated[list[Any], WithJsonSchema(_items_schema(DEFAULT_MAX_ITEMS))] = Field()
    responses: Annotated[list[Any], WithJsonSchema(_items_schema(DEFAULT_MAX_ITEMS))] = Field()


def _is_message(value: Any) -> bool:
    """A dict with a string role and string, null or text-part-list content."""
    if not (isinstance(value, dict) and isinstance(value.get("role"), str)):
        return False
    if "content" not in value:
        return False
    content = value["content"]
    if content is None or isinstance(content, str):
        return True
    return isinstance(content, list) and all(
        isinstance(part, dict)
        and isinstance(part.get("type"), str)
        and isinstance(part.get("text", ""), str)
        for part in content
    )


def bad_item(body: ScoreRequest) -> str | None:
    """The first prompt or response that is neither a string nor a non-empty list of chat
    messages (a number is not taken for a string), as `key[index]`."""
    for key in ("prompts", "responses"):
        for index, item in enumerate(getattr(body, key)):
            if isinstance(item, str):
                continue
            if not (is_messages(item) and item and all(_is_message(m) for m in item)):
                return f"{key}[{index}]"
    return None


def create_app(
    model_dir: str | Path | RewardModel | OrdinalRewardModel,
    *,
    batch_size: int = 16,
    max_length: int | None = None,
    device: str | None = None,
    torch_dtype: str = "auto",
    max_items: int = DEFAULT_MAX_ITEMS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    served_model_name: str | None = None,
    api_key: str | None = None,
    host: str = "127.0.0.1",
) -> FastAPI:
    """An app serving one reward model: a directory, loaded as what it holds
    (`load_reward_model_dir`: ordinal or Bradley–Terry), or one already loaded;
    `api_key` is required as a bearer token on every route but /health, and Host headers
    must name `host`, the address served."""
    # Imported here: the `posttrain.models.server` package loads torch and transformers, which
    # a process that only needs the HTTP client should not pay for.
    from posttrain.models.server.errors import APIError, BodySizeLimit, install_error_handlers
    from posttrain.models.server.openapi import install_error_docs
    from posttrain.models.server.schemas import lone_surrogate
    from posttrain.models.server.security import AccessGuard, allowed_hosts
    from posttrain.rewards.reward_model_dir import load_reward_model_dir

    model = (
        load_reward_model_dir(
            model_dir,
            batch_size=batch_size,
            max_length=max_length,
            device=device,
            torch_dtype=torch_dtype,
        )
        if isinstance(model_dir, str | Path)
        else model_dir
    )
    name = served_model_name or model.name
    lock = threading.Lock()  # torch modules and fast tokenizers are not thread-safe
    app = FastAPI(title="posttrain reward model server")
    app.state.model = model
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.add_middleware(AccessGuard, api_key=api_key, hosts=allowed_hosts(host))  # outermost
    install_error_handlers(app)
    install_error_docs(
        app,
        keyed=api_key is not None,
        codes={"/score": ("400", "401", "413")},
        schemas={
            "ScoreRequest": {
                "prompts": _items_schema(max_items),
                "responses": _items_schema(max_items),
            }
        },
    )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/info")
    async def info() -> dict[str, Any]:
        return {"model": name, "max_items": max_items, "max_length": model.max_length}

    # A plain `def`: FastAPI runs it in its thread pool, so /health answers meanwhile.
    @app.post("/score")
    def score(body: ScoreRequest) -> dict[str, Any]:
        n_prompts, n_responses = len(body.prompts), len(body.responses)
        if n_prompts != n_responses:
            raise APIError(
                f"'prompts' has {n_prompts} items but 'responses' has {n_responses}; "
                "they must be the same length.",
                param="responses",
                code="length_mismatch",
            )
        if n_prompts == 0:
            raise APIError(
                "'prompts' and 'responses' are empty; send at least one pair.", param="prompts"
            )
        wrong = bad_item(body)
        if wrong is not None:
            raise APIError(
                f"{wrong!r} must be a string or a non-empty list of chat messages "
                "(objects with a string 'role' and string, null or text-part 'content').",
                param=wrong,
            )
        where = lone_surrogate({"prompts": body.prompts, "responses": body.responses})
        if where is not None:
            raise APIError(
                f"{where!r} holds a lone surrogate, which is not valid Unicode.", param=where
            )
        if n_prompts > max_items:
            raise APIError(
                f"{n_prompts} pairs is over this server's limit of {max_items} per request; "
                "send them in batches.",
                status=413,
                param="prompts",
                code="too_many_items",
            )
        with lock:
            for index, pair in enumerate(zip(body.prompts, body.responses, strict=True)):
                try:  # the chat template may refuse a conversation: the client's to fix
                    model.encode(*pair)
                except Exception as exc:
                    raise APIError(
                        f"pair {index} could not be formatted for the model: "
                        f"{type(exc).__name__}: {exc}",
                        param=f"prompts[{index}]",
                        code="chat_template_error",
                    ) from exc
            rewards = model.score(body.prompts, body.responses)
        return {"model": name, "rewards": rewards}

    return app


def serve(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    batch_size: int = 16,
    max_length: int | None = None,
    device: str | None = None,
    torch_dtype: str = "auto",
    max_items: int = DEFAULT_MAX_ITEMS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    served_model_name: str | None = None,
    api_key: str | None = None,
) -> None:
    """Load `model_dir` and serve it until interrupted (loopback only without `api_key`)."""
    import uvicorn

    from posttrain.models.server.security import check_bind

    check_bind(host, api_key)
    app = create_app(
        model_dir,
        batch_size=batch_size,
        max_length=max_length,
        device=device,
        torch_dtype=torch_dtype,
        max_items=max_items,
        max_body_bytes=max_body_bytes,
        served_model_name=served_model_name,
        api_key=api_key,
        host=host,
    )
    uvicorn.run(app, host=host, port=port, log_level="info")


def reward_model_server(model_dir: str | Path, *extra: str, **kwargs: Any) -> ServerProcess:
    """A `posttrain serve-rm MODEL_DIR` subprocess on a free loopback port (not yet started)."""
    args = [sys.executable, "-m", "posttrain", "serve-rm", str(model_dir), *extra]
    return ServerProcess(args, **kwargs)


# --- client -----------------------------------------------------------------------------------


class RewardServerError(RuntimeError):
    """A scoring request the server refused (4xx) or that kept failing; names the reason."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


_TRANSIENT = {408, 429}  # plus every 5xx
_JSON = {"content-type": "application/json"}


def _server_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase


class HTTPRewardModel:
    """Scores through a reward-model server; a `Scorer`, like `RewardModel`.

    Sends at most `batch_size` pairs per request (by default, the server's own `max_items`
    from GET /info, asked once), retries connection errors, timeouts, 408/429 and 5xx
    `retries` times with exponential backoff, and raises `RewardServerError` with the
    server's message on any other 4xx, at once. `api_key` (default: POSTTRAIN_API_KEY) is
    sent as a bearer token.
    """

    def __init__(
        self,
        base_url: str,
        timeout: float = 60.0,
        batch_size: int | None = None,
        retries: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        api_key: str | None = None,
    ) -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.base_url = base_url.rstrip("/")
        self.batch_size = batch_size
        self.retries = retries
        self.backoff = backoff
        key = api_key or os.environ.get(API_KEY_ENV)
        headers = {"authorization": f"Bearer {key}"} if key else None
        self._client = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, headers=headers
        )

    def score(self, prompts: Sequence[Text], responses: Sequence[Text]) -> list[float]:
        """Rewards for (prompt, response) pairs, strings or message lists, sent as they are."""
        check_pairs(prompts, responses)
        if self.batch_size is None:
            self.batch_size = self._server_max_items()
        rewards: list[float] = []
        for start in range(0, len(prompts), self.batch_size):
            end = start + self.batch_size
            rewards.extend(self._post(list(prompts[start:end]), list(responses[start:end])))
        return rewards

    def _server_max_items(self) -> int:
        try:
            response = self._client.get("/info")
            return int(response.json()["max_items"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return DEFAULT_MAX_ITEMS  # an older or other server: its default cap

    def _post(self, prompts: list[Text], responses: list[Text]) -> list[float]:
        url = f"{self.base_url}/score"
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            # JSON with \u escapes: text that is not valid UTF-8 (a lone surrogate) still
            # reaches the server, whose 400 names it; httpx's `json=` would fail here.
            body = json.dumps({"prompts": prompts, "responses": responses}).encode()
            try:
                response = self._client.post("/score", content=body, headers=_JSON)
            except httpx.TransportError as err:  # refused, reset, timed out, ...
                problem = f"{type(err).__name__}: {err}"
                continue
            status = response.status_code
            if status < 400:
                rewards = response.json().get("rewards")
                if not isinstance(rewards, list) or len(rewards) != len(prompts):
                    raise RewardServerError(f"{url} answered without {len(prompts)} rewards")
                return [float(r) for r in rewards]
            problem = f"HTTP {status}: {_server_message(response)}"
            if status < 500 and status not in _TRANSIENT:
                raise RewardServerError(f"reward server refused the request ({problem})", status)
        raise RewardServerError(
            f"reward server at {url} failed {self.retries + 1} times; last: {problem}"
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HTTPRewardModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
