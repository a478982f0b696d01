"""A minimal OpenAI-compatible chat server for tests: fails the first K requests, then echoes.

Run as `python flaky_server.py --fail-first 3 --host 127.0.0.1 --port 8000`. The first K
chat requests get a 503 with a short `retry-after-ms`; a last message "[reject me]" always
gets a 400; other requests echo the last user message (cut at `stop`, or to `max_tokens`
characters), with non-standard `token_ids` (the UTF-8 bytes) and `weight_version` fields
and, when asked, per-token log-probs.
`GET /stats` reports how many chat requests arrived, the most served at once, the last
request body, and how many requests carried each `seed` ("none" for no seed).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

BAD_REQUEST = "[reject me]"  # a last message with this content always gets a 400


def build_app(fail_first: int, delay: float, weight_version: int) -> FastAPI:
    app = FastAPI()
    state: dict[str, Any] = {"requests": 0, "in_flight": 0, "max_in_flight": 0, "last": None}
    seeds: dict[str, int] = {}

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/stats")
    async def stats() -> dict:
        return {
            "chat_requests": state["requests"],
            "max_in_flight": state["max_in_flight"],
            "last_request": state["last"],
            "seeds": seeds,
        }

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        state["requests"] += 1
        state["last"] = body
        seed = str(body.get("seed", "none"))
        seeds[seed] = seeds.get(seed, 0) + 1
        if state["requests"] <= fail_first:
            return JSONResponse(
                {"error": {"message": "warming up", "type": "server_error"}},
                status_code=503,
                headers={"retry-after-ms": "10"},
            )
        if body["messages"] and body["messages"][-1]["content"] == BAD_REQUEST:
            return JSONResponse(
                {"error": {"message": "rejected", "type": "invalid_request_error"}},
                status_code=400,
            )
        state["in_flight"] += 1
        state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
        try:
            if delay:
                await asyncio.sleep(delay)
            return JSONResponse(completion(body, weight_version))
        finally:
            state["in_flight"] -= 1

    return app


def completion(body: dict, weight_version: int) -> dict:
    """A deterministic echo of the last user message in the chat-completions format."""
    users = [m["content"] for m in body["messages"] if m["role"] == "user"]
    text, finish = users[-1] if users else "", "stop"
    for stop in body.get("stop") or []:
        text = text.split(stop)[0]
    if len(text) > body.get("max_tokens", 64):
        text, finish = text[: body["max_tokens"]], "length"
    token_ids = list(text.encode("utf-8"))
    logprobs = None
    if body.get("logprobs"):
        content = [
            {"token": chr(t), "logprob": -0.01 * (i + 1), "bytes": [t], "top_logprobs": []}
            for i, t in enumerate(token_ids)
        ]
        logprobs = {"content": content, "refusal": None}
    choices = [
        {
            "index": i,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish,
            "logprobs": logprobs,
            "token_ids": token_ids,
        }
        for i in range(body.get("n", 1))
    ]
    return {
        "id": "chatcmpl-flaky",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": choices,
        "weight_version": weight_version,
        "usage": {
            "prompt_tokens": 0,
            "completion_tokens": len(token_ids),
            "total_tokens": len(token_ids),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per answer")
    parser.add_argument("--weight-version", type=int, default=7)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    app = build_app(args.fail_first, args.delay, args.weight_version)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
