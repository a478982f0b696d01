"""`posttrain serve` as a real subprocess, driven by the official `openai` client and raw httpx."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import OpenAI

from posttrain.models.chat.base import GenerationParams
from posttrain.models.chat.hf import HFChat
from posttrain.models.server_process import ServerProcess, serve_model

MAX_N = 4
MAX_BODY_BYTES = 64 * 1024
CONTEXT_LENGTH = 512  # the tiny model's max_position_embeddings
USER = [{"role": "user", "content": "What is 12+7?"}]
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
JSON_HEADER = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def server(
    tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("server") / "server.log"
    extra = ["--max-n", str(MAX_N), "--max-body-bytes", str(MAX_BODY_BYTES)]
    with pytest.MonkeyPatch.context() as patch:
        # One torch thread: a micro model gains nothing from more, and on a busy 2-core
        # machine OpenMP's thread hand-offs make each step up to 100x slower.
        patch.setenv("OMP_NUM_THREADS", "1")
        proc = serve_model(tiny_model_dir, *extra, log_path=log).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[OpenAI]:
    with OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=60) as api:
        yield api


@pytest.fixture(scope="module")
def model_name(tiny_model_dir: Path) -> str:
    return tiny_model_dir.name  # served_model_name defaults to the directory's name


def test_models_lists_the_served_model(client: OpenAI, model_name: str) -> None:
    assert [m.id for m in client.models.list().data] == [model_name]


def test_chat_n_choices_with_token_ids_and_logprobs(client: OpenAI, model_name: str) -> None:
    response = client.chat.completions.create(
        model=model_name,
        messages=USER,
        n=3,
        temperature=1.0,
        seed=7,
        logprobs=True,
        max_tokens=8,
    )
    assert len(response.choices) == 3
    assert response.weight_version == 0
    total = 0
    for choice in response.choices:
        assert choice.message.role == "assistant"
        assert choice.finish_reason in ("stop", "length")
        token_ids = choice.token_ids
        assert 1 <= len(token_ids) <= 8
        entries = choice.logprobs.content
        assert len(entries) == len(token_ids)
        assert all(e.logprob <= 0 and e.top_logprobs == [] for e in entries)
        total += len(token_ids)
    assert response.usage.completion_tokens == total
    assert response.usage.prompt_tokens > 0


def test_chat_top_logprobs(client: OpenAI, model_name: str) -> None:
    response = client.chat.completions.create(
        model=model_name, messages=USER, logprobs=True, top_logprobs=3, max_tokens=4, seed=1
    )
    for entry in response.choices[0].logprobs.content:
        top = [t.logprob for t in entry.top_logprobs]
        assert len(top) == 3 and top == sorted(top, reverse=True)
        assert entry.logprob <= top[0] + 1e-4  # nothing sampled beats the likeliest token
        assert bytes(entry.bytes).decode("utf-8", errors="replace") == entry.token


def test_served_tokens_match_local_generation(
    client: OpenAI, model_name: str, tiny_model_dir: Path
) -> None:
    params = GenerationParams(temperature=0.0, max_tokens=8, logprobs=True)
    [local] = HFChat(tiny_model_dir).chat([USER], params)[0].choices
    served = client.chat.completions.create(
        model=model_name, messages=USER, temperature=0, max_tokens=8, logprobs=True
    ).choices[0]
    assert served.token_ids == local.token_ids
    assert served.message.content == local.text
    served_logprobs = [e.logprob for e in served.logprobs.content]
    assert served_logprobs == pytest.approx(local.logprobs, abs=1e-4)


def test_health_answers_during_generation(server: ServerProcess, model_name: str) -> None:
    # Four rows to the end of the context: long enough to still be running when /health asks.
    body = {"model": model_name, "prompt": [5, 6, 7], "n": 4, "temperature": 0}
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(httpx.post, server.url + COMPLETIONS, json=body, timeout=120)
        time.sleep(0.2)
        start = time.monotonic()
        assert httpx.get(server.url + "/health", timeout=10).status_code == 200
        assert time.monotonic() - start < 1.0
        answered_during_generation = not running.done()
        assert running.result().status_code == 200
    assert answered_during_generation, "generation ended before /health was asked"


def test_text_parts_and_max_completion_tokens(client: OpenAI, model_name: str) -> None:
    parts = [{"type": "text", "text": "What is "}, {"type": "text", "text": "12+7?"}]

    def greedy(content: Any) -> list[int]:
        response = client.chat.completions.create(
            model=model_name,
            messages=[{"role": "user", "content": content}],
            temperature=0,
            max_completion_tokens=3,
        )
        return response.choices[0].token_ids

    assert greedy(parts) == greedy(USER[0]["content"])
    assert 1 <= len(greedy(parts)) <= 3


def test_same_seed_same_outputs(client: OpenAI, model_name: str) -> None:
    def sample(seed: int) -> list[tuple[str, list[int]]]:
        response = client.chat.completions.create(
            model=model_name, messages=USER, n=2, temperature=1.0, seed=seed, max_tokens=8
        )
        return [(c.message.content, c.token_ids) for c in response.choices]

    assert sample(11) == sample(11)
    assert sample(11) != sample(12)


def test_stop_cuts_the_text(client: OpenAI, model_name: str) -> None:
    def sample(stop: list[str] | None) -> Any:
        return client.chat.completions.create(
            model=model_name, messages=USER, temperature=1.0, seed=3, max_tokens=24, stop=stop
        ).choices[0]

    # Greedy output of the untrained model repeats one byte token; a seeded sample gives
    # varied text, and the same seed reproduces it, so pick the stop from that.
    full = sample(None)
    candidates = [c for c in full.message.content[1:] if c.isascii() and c.isalnum()]
    assert candidates, f"no usable stop character in {full.message.content!r}"
    stop = candidates[0]
    cut = sample([stop])
    assert cut.finish_reason == "stop"
    assert cut.message.content == full.message.content[: full.message.content.index(stop)]
    assert full.token_ids[: len(cut.token_ids)] == cut.token_ids


def test_completion_from_a_string_prompt(client: OpenAI, model_name: str) -> None:
    response = client.completions.create(
        model=model_name, prompt="12+7=", max_tokens=6, temperature=0, logprobs=1
    )
    [choice] = response.choices
    logprobs = choice.logprobs
    assert len(logprobs.tokens) == len(choice.token_ids) == len(logprobs.token_logprobs)
    assert logprobs.text_offset[0] == 0
    assert logprobs.text_offset == sorted(logprobs.text_offset)
    for token, logprob, top in zip(
        logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs, strict=True
    ):
        # One alternative plus the sampled token; greedy means they are the same token.
        assert top == {token: logprob}
    assert response.weight_version == 0
    assert response.usage.completion_tokens == len(choice.token_ids)


def test_completion_from_token_ids(client: OpenAI, model_name: str) -> None:
    prompts = [[5, 6, 7, 8], [9, 10]]
    response = client.completions.create(
        model=model_name, prompt=prompts, n=2, max_tokens=3, temperature=1.0, seed=0
    )
    assert [c.index for c in response.choices] == [0, 1, 2, 3]
    assert all(1 <= len(c.token_ids) <= 3 for c in response.choices)
    assert response.usage.prompt_tokens == 6
    single = client.completions.create(model=model_name, prompt=prompts[0], max_tokens=2)
    assert len(single.choices) == 1 and single.usage.prompt_tokens == 4


def test_max_tokens_is_clamped_to_the_context(client: OpenAI, model_name: str) -> None:
    prompt = [5] * (CONTEXT_LENGTH - 3)
    response = client.completions.create(
        model=model_name, prompt=prompt, max_tokens=100, temperature=0
    )
    [choice] = response.choices
    assert 1 <= len(choice.token_ids) <= 3
    if choice.finish_reason == "length":
        assert response.usage.total_tokens == CONTEXT_LENGTH


def test_concurrent_requests_are_all_answered(client: OpenAI, model_name: str) -> None:
    def ask(seed: int) -> int:
        response = client.chat.completions.create(
            model=model_name, messages=USER, max_tokens=4, seed=seed
        )
        return len(response.choices)

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(ask, range(4))) == [1, 1, 1, 1]


def _chat(**fields: Any) -> dict[str, Any]:
    return {"messages": USER, "max_tokens": 2, **fields}


# (path, request kwargs for httpx, expected status, words the error message must contain)
BAD_REQUESTS = {
    "bad json": (CHAT, {"content": b'{"messages": [', "headers": JSON_HEADER}, 400, ["JSON"]),
    "not an object": (CHAT, {"json": [1, 2]}, 400, ["JSON object"]),
    "temperature type": (CHAT, {"json": _chat(temperature="hot")}, 400, ["temperature"]),
    "temperature range": (CHAT, {"json": _chat(temperature=7)}, 400, ["temperature"]),
    "n type": (CHAT, {"json": _chat(n=True)}, 400, ["'n'"]),
    "unknown model": (CHAT, {"json": _chat(model="no-such-model")}, 404, ["no-such-model"]),
    "n above cap": (CHAT, {"json": _chat(n=MAX_N + 1)}, 400, [f"n={MAX_N + 1}", str(MAX_N)]),
    "empty messages": (CHAT, {"json": _chat(messages=[])}, 400, ["messages"]),
    "missing messages": (CHAT, {"json": {"max_tokens": 2}}, 400, ["messages"]),
    "message content type": (
        CHAT,
        {"json": _chat(messages=[{"role": "user", "content": 5}])},
        400,
        ["messages[0].content"],
    ),
    "image content": (
        CHAT,
        {"json": _chat(messages=[{"role": "user", "content": [{"type": "image_url"}]}])},
        400,
        ["image_url"],
    ),
    "empty stop": (CHAT, {"json": _chat(stop="")}, 400, ["stop"]),
    "top_logprobs alone": (CHAT, {"json": _chat(top_logprobs=2)}, 400, ["top_logprobs"]),
    "stream": (CHAT, {"json": _chat(stream=True)}, 400, ["stream"]),
    "chat prompt too long": (
        CHAT,
        {"json": _chat(messages=[{"role": "user", "content": "1 2 " * 600}])},
        400,
        ["context length", str(CONTEXT_LENGTH)],
    ),
    "token prompt too long": (
        COMPLETIONS,
        {"json": {"prompt": [5] * 600}},
        400,
        ["600", str(CONTEXT_LENGTH)],
    ),
    "token id out of range": (COMPLETIONS, {"json": {"prompt": [1, 10**6]}}, 400, ["1000000"]),
    "empty prompt": (COMPLETIONS, {"json": {"prompt": ""}}, 400, ["empty"]),
    "prompt type": (COMPLETIONS, {"json": {"prompt": {"a": 1}}}, 400, ["prompt"]),
    "oversized body": (
        CHAT,
        {"json": _chat(messages=[{"role": "user", "content": "x" * (2 * MAX_BODY_BYTES)}])},
        413,
        [str(MAX_BODY_BYTES)],
    ),
    "unknown route": ("/v1/nothing", {"json": {}}, 404, ["Not Found"]),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_gets_an_openai_error(server: ServerProcess, case: str) -> None:
    path, kwargs, status, words = BAD_REQUESTS[case]
    response = httpx.post(server.url + path, timeout=30, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    for word in words:
        assert word in error["message"], error["message"]


def test_server_still_serves_after_bad_requests(server: ServerProcess, model_name: str) -> None:
    assert httpx.get(server.url + "/health", timeout=10).status_code == 200
    response = httpx.post(server.url + CHAT, json=_chat(model=model_name), timeout=30)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["role"] == "assistant"
