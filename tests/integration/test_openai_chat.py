"""OpenAIChat against a real OpenAI-compatible server subprocess, through the real client."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from posttrain.models.chat import ChatResult, Choice, GenerationParams, ResponseCache, ask
from posttrain.models.chat.base import Usage
from posttrain.models.chat.openai_chat import ChatRequestError, OpenAIChat
from posttrain.models.server_process import ServerProcess

FLAKY_SERVER = Path(__file__).with_name("flaky_server.py")
REJECTED = "[reject me]"  # the flaky server answers this last message with a 400

StartServer = Callable[..., ServerProcess]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start flaky_server.py with the given flags; every server is stopped after the test."""
    servers: list[ServerProcess] = []

    def start(*flags: str) -> ServerProcess:
        server = ServerProcess([sys.executable, str(FLAKY_SERVER), *flags], ready_path="/health")
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


def stats(server: ServerProcess) -> dict:
    return httpx.get(server.url + "/stats", timeout=5).json()


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_retries_503_until_success(start_server: StartServer) -> None:
    server = start_server("--fail-first", "3")
    chat = OpenAIChat("echo", base_url=server.base_url, max_retries=3, timeout=10)
    assert ask(chat, "hello") == "hello"
    assert stats(server)["chat_requests"] == 4


def test_too_few_retries_raise_a_clear_error(start_server: StartServer) -> None:
    server = start_server("--fail-first", "3")
    chat = OpenAIChat("echo", base_url=server.base_url, max_retries=1, timeout=10)
    with pytest.raises(ChatRequestError, match=r"openai:echo at .*max_retries=1.*503") as err:
        ask(chat, "hello")
    assert isinstance(err.value.__cause__, openai.InternalServerError)
    assert server.base_url in str(err.value)
    assert stats(server)["chat_requests"] == 2


def test_timeouts_are_retried_then_raised(start_server: StartServer) -> None:
    server = start_server("--delay", "1")
    chat = OpenAIChat("echo", base_url=server.base_url, max_retries=1, timeout=0.2)
    with pytest.raises(ChatRequestError) as err:
        ask(chat, "too slow")
    assert isinstance(err.value.__cause__, openai.APITimeoutError)
    assert stats(server)["chat_requests"] == 2


def test_params_map_to_request_and_fields_propagate(start_server: StartServer) -> None:
    server = start_server("--weight-version", "11")
    chat = OpenAIChat("echo", base_url=server.base_url, max_retries=0)
    params = GenerationParams(
        n=2, temperature=0.7, top_p=0.9, max_tokens=20, stop=("!",), seed=5, logprobs=True
    )
    [result] = chat.chat([user("hi there! ignored")], params)

    sent = stats(server)["last_request"]
    assert sent["model"] == "echo"
    assert sent["messages"] == user("hi there! ignored")
    assert {k: sent[k] for k in ("n", "temperature", "top_p", "max_tokens", "seed")} == {
        "n": 2,
        "temperature": 0.7,
        "top_p": 0.9,
        "max_tokens": 20,
        "seed": 5,
    }
    assert sent["stop"] == ["!"] and sent["logprobs"] is True

    assert result.model == "openai:echo"
    assert result.weight_version == 11
    assert result.usage == Usage(prompt_tokens=0, completion_tokens=8)  # the server's own
    assert len(result.choices) == 2
    for choice in result.choices:
        assert choice.text == "hi there"
        assert choice.finish_reason == "stop"
        assert choice.token_ids == list(b"hi there")
        assert choice.logprobs == pytest.approx([-0.01 * (i + 1) for i in range(8)])

    [plain] = chat.chat([user("abcdef")], GenerationParams(max_tokens=3))
    assert plain.choices[0].text == "abc"
    assert plain.choices[0].finish_reason == "length"
    assert plain.choices[0].logprobs is None
    assert "seed" not in stats(server)["last_request"]


def test_bounded_concurrency_keeps_input_order(start_server: StartServer) -> None:
    server = start_server("--delay", "0.3")
    chat = OpenAIChat("echo", base_url=server.base_url, max_concurrency=4)
    prompts = [f"question {i}" for i in range(8)]
    results = chat.chat([user(p) for p in prompts])
    assert [r.text for r in results] == prompts
    seen = stats(server)
    assert seen["chat_requests"] == 8
    assert 2 <= seen["max_in_flight"] <= 4


def test_cache_survives_a_restart(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server()
    path = tmp_path / "cache" / "responses.sqlite"
    params = GenerationParams(logprobs=True)

    first = OpenAIChat("echo", base_url=server.base_url, cache=path)
    answer = first.chat([user("remember me")], params)
    assert stats(server)["chat_requests"] == 1
    first.close()

    restarted = OpenAIChat("echo", base_url=server.base_url, cache=path)
    assert restarted.chat([user("remember me")], params) == answer
    assert stats(server)["chat_requests"] == 1

    restarted.chat([user("remember me")], GenerationParams(logprobs=True, max_tokens=5))
    assert stats(server)["chat_requests"] == 2
    restarted.chat([user("remember me")], GenerationParams(logprobs=True, temperature=1.0))
    assert stats(server)["chat_requests"] == 3
    OpenAIChat("other", base_url=server.base_url, cache=path).chat([user("remember me")], params)
    assert stats(server)["chat_requests"] == 4


def test_cache_keeps_answers_finished_before_a_failure(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server()
    cache = ResponseCache(tmp_path / "responses.sqlite")
    chat = OpenAIChat("echo", base_url=server.base_url, cache=cache, max_concurrency=1)
    with pytest.raises(ChatRequestError, match="400"):
        chat.chat([user("one"), user("two"), user(REJECTED)])
    assert len(cache) == 2 and stats(server)["chat_requests"] == 3

    resumed = chat.chat([user("one"), user("two"), user("three")])
    assert [r.text for r in resumed] == ["one", "two", "three"]
    assert stats(server)["chat_requests"] == 4
    chat.close()
    assert len(cache) == 3  # a cache passed in is the caller's to close


def test_response_cache_round_trip_and_threads(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    result = ChatResult(
        model="m", choices=[Choice("a", "length", [1, 2], [-0.5, -1.0]), Choice("b")]
    )
    cache.put({"b": 1, "a": [1, 2]}, result)
    assert cache.get({"a": [1, 2], "b": 1}) == result  # key ignores dict order
    assert cache.get({"a": [1, 2], "b": 2}) is None

    def write(i: int) -> None:
        cache.put({"i": i}, ChatResult(model=f"m{i}", weight_version=i))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(cache) == 17
    assert cache.get({"i": 9}) == ChatResult(model="m9", weight_version=9)
    mode = cache._conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
