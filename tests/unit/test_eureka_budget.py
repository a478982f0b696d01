"""Budgets: exact cost sums (retries, cached replies), limits, persistence, price tables."""

from __future__ import annotations

import json
import math
import time

import httpx
import openai
import pytest

from posttrain.errors import InputError
from posttrain.eureka.budget import Budget, StageTimeExceeded, TrackedChat
from posttrain.eureka.prices import SHIPPED, Price, load_prices, parse_prices
from posttrain.models.chat.base import GenerationParams
from posttrain.models.chat.cache import ResponseCache, request_key
from posttrain.models.chat.openai_chat import OpenAIChat
from posttrain.models.chat.replies import ask_until_parsed
from posttrain.models.chat.scripted import ScriptedChat

TABLE = parse_prices({"models": {"gpt-test": {"input": 2.0, "output": 8.0}}})
PROMPT = [{"role": "user", "content": "Give me JSON."}]

# The endpoint's billed tokens per reply: the first ask fails to parse, the re-ask (sent with a
# seed by `retry_params`) parses. The numbers are the endpoint's, so the sums below are exact.
FIRST = ("no json here", 1000, 50)
RETRY = ('{"ok": 1}', 1000, 20)


def endpoint(log: list[dict]) -> httpx.MockTransport:
    """A chat-completions endpoint answering through the real openai client's HTTP layer."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        log.append(body)
        text, prompt_tokens, completion_tokens = RETRY if "seed" in body else FIRST
        return httpx.Response(
            200,
            json={
                "id": f"c{len(log)}",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )

    return handle


@pytest.fixture
def remote(tmp_path):
    log: list[dict] = []
    # Offline: httpx.MockTransport answers in this process (usage fixed per reply); the
    # reserved .invalid name could not resolve anyway.
    chat = OpenAIChat("gpt-test", base_url="http://test.invalid/v1", cache=tmp_path / "cache.db")
    chat.client = openai.OpenAI(
        base_url="http://test.invalid/v1",
        api_key="k",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(endpoint(log))),
    )
    yield chat, log
    chat.close()


def ask_json(chat) -> None:
    accept = lambda key, text: text.startswith("{")  # noqa: E731
    left = ask_until_parsed(chat, {0: PROMPT}, accept, GenerationParams(), max_retries=2)
    assert left == []


def test_retries_are_billed_and_cached_replies_are_free(remote):
    chat, log = remote
    budget = Budget(cost_limit_usd=1.0)
    tracked = TrackedChat(chat, budget, "implement", TABLE)
    ask_json(tracked)  # the first ask and one re-ask, both sent to the endpoint
    first = (1000 * 2.0 + 50 * 8.0) / 1e6
    retry = (1000 * 2.0 + 20 * 8.0) / 1e6
    assert budget.spent() == pytest.approx(first + retry, abs=1e-15)
    ask_json(tracked)  # the same two requests again: the response cache answers both
    assert len(log) == 2
    tally = budget.summary()["stages"]["implement"]["models"]["openai:gpt-test"]
    assert tally["calls"] == 4 and tally["cached"] == 2 and tally["estimated"] == 0
    assert (tally["tokens_in"], tally["tokens_out"]) == (2000, 70)
    assert budget.spent() == pytest.approx(0.00456, abs=1e-15)
    assert budget.remaining() == pytest.approx(1.0 - 0.00456, abs=1e-15)


def test_cache_round_trips_usage_and_marks_hits(tmp_path, remote):
    chat, _ = remote
    fresh = chat.chat([PROMPT])[0]
    again = chat.chat([PROMPT])[0]
    assert not fresh.cached and again.cached
    assert again.usage == fresh.usage and again.usage.prompt_tokens == 1000
    assert again == fresh  # `cached` does not take part in equality
    with ResponseCache(tmp_path / "old.db") as cache:  # rows written before `usage` existed
        row = {"model": "m", "choices": [{"text": "hi"}], "weight_version": None}
        cache._conn.execute(
            "INSERT INTO responses VALUES (?, ?, ?, 0)",
            (request_key({}), "{}", json.dumps(row)),
        )
        assert cache.get({}).usage is None


def test_character_estimate_is_labelled_and_counts_every_choice():
    echo = ScriptedChat("echo", [(r"(?s).+", r"\g<0>")])
    table = parse_prices({"models": {"scripted:*": {"input": 1.0, "output": 2.0}}})
    budget = Budget(None)
    TrackedChat(echo, budget, "propose", table).chat(
        [[{"role": "user", "content": "abcdefghij"}]], GenerationParams(n=2)
    )
    tally = budget.summary()["stages"]["propose"]["models"]["scripted:echo"]
    # 10 characters -> ceil(10 / 4) = 3 tokens in; two choices of 3 tokens out
    assert (tally["tokens_in"], tally["tokens_out"], tally["estimated"]) == (3, 6, 1)
    assert budget.spent() == pytest.approx((3 * 1.0 + 6 * 2.0) / 1e6, abs=1e-18)
    assert budget.remaining() == math.inf and not budget.exhausted()
    assert budget.prompt_note() == "$0.00 spent (no cost limit)"


def test_local_model_counts_by_its_tokenizer(tiny_model_dir):
    from posttrain.models.chat.hf import HFChat

    chat = HFChat(tiny_model_dir)
    table = parse_prices({"models": {tiny_model_dir.name: {"input": 3.0, "output": 5.0}}})
    budget = Budget(None)
    result = TrackedChat(chat, budget, "implement", table).chat(
        [PROMPT], GenerationParams(n=2, max_tokens=4, temperature=1.0, seed=1)
    )[0]
    prompt = chat.tokenizer.apply_chat_template(
        PROMPT, add_generation_prompt=True, tokenize=True, return_dict=False
    )
    out = sum(len(c.token_ids) for c in result.choices)
    tally = budget.summary()["stages"]["implement"]["models"][chat.name]
    assert (tally["tokens_in"], tally["tokens_out"], tally["estimated"]) == (len(prompt), out, 0)
    assert budget.spent() == pytest.approx((len(prompt) * 3.0 + out * 5.0) / 1e6, abs=1e-18)


def test_cost_limit_trips_at_the_call_that_reaches_it(remote):
    chat, _ = remote
    budget = Budget(cost_limit_usd=0.004)
    tracked = TrackedChat(chat, budget, "implement", TABLE)
    tracked.chat([PROMPT])  # $0.0024
    assert not budget.exhausted()
    tracked.chat([PROMPT], GenerationParams(seed=1))  # + $0.00216 = $0.00456 >= $0.004
    assert budget.exhausted() and budget.remaining() == 0.0
    assert budget.prompt_note() == "$0.00 of $0.00 left"


def test_prompt_note_shows_dollars_left():
    budget = Budget(5.0)
    budget.record("propose", "m", 10, 10, 1.234)
    assert budget.prompt_note() == "$3.77 of $5.00 left"


def test_stage_time_limit_stops_model_calls_and_counts_the_overrun():
    echo = ScriptedChat("echo", [(r"(?s).+", r"\g<0>")])
    table = parse_prices({"models": {"scripted:*": {"input": 0, "output": 0}}})
    budget = Budget(5.0, {"implement": 0.2})
    tracked = TrackedChat(echo, budget, "implement", table)
    with budget.stage("implement") as clock:
        tracked.chat([PROMPT])  # in time
        note = budget.prompt_note()
        assert note.startswith("$5.00 of $5.00 left; stage implement: ")
        assert note.endswith(" of 0s left")
        with pytest.raises(ValueError, match="already running"), budget.stage("implement"):
            pass
        time.sleep(0.25)
        assert clock.over
        with pytest.raises(StageTimeExceeded, match="implement"):
            tracked.chat([PROMPT])
    tracked.chat([PROMPT])  # outside the stage there is no clock to run out
    stage = budget.summary()["stages"]["implement"]
    assert stage["entries"] == 1 and stage["overruns"] == 1 and stage["seconds"] >= 0.25
    assert stage["models"]["scripted:echo"]["calls"] == 2


def test_persisted_totals_resume(tmp_path, remote):
    chat, _ = remote
    path = tmp_path / "run" / "budget.json"
    budget = Budget(1.0, {"grade": 60}, path=path)
    with budget.stage("grade"):
        TrackedChat(chat, budget, "grade", TABLE).chat([PROMPT])
    before = budget.summary()
    resumed = Budget(2.0, {"grade": 60}, path=path)  # a person raised the limit
    after = resumed.summary()
    assert after["stages"] == before["stages"]
    assert resumed.spent() == pytest.approx(0.0024, abs=1e-15)
    assert after["cost_limit_usd"] == 2.0
    path.write_text("{not json")
    with pytest.raises(InputError, match="budget.json"):
        Budget(1.0, path=path)


def test_price_table_lookup_and_errors(tmp_path):
    shipped = load_prices()
    assert shipped.source == str(SHIPPED)
    assert shipped.price("openai:gpt-4o") == shipped.price("gpt-4o")
    assert shipped.price("scripted:anything") == Price(0.0, 0.0)
    with pytest.raises(InputError, match="prices.yaml: models: no price for model 'my-local-dir'"):
        shipped.price("my-local-dir")
    fallback = parse_prices({"models": {"default": {"input": 1, "output": 1}}})
    assert fallback.price("anything") == Price(1.0, 1.0)
    bad = tmp_path / "prices.yaml"
    bad.write_text("models:\n  m: {input: -1, output: 2}\n")
    with pytest.raises(InputError, match=r"prices.yaml: models.m.input: .*>= 0"):
        load_prices(bad)
    bad.write_text("models:\n  m: {input: 1}\n")
    with pytest.raises(InputError, match="models.m: .*exactly"):
        load_prices(bad)
    with pytest.raises(InputError, match="no price"):  # before any call is made
        table = parse_prices({"models": {"a": {"input": 1, "output": 1}}})
        TrackedChat(ScriptedChat("x"), Budget(1.0), "s", table)


def test_parallel_callers_lose_no_count(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    budget = Budget(None, path=tmp_path / "budget.json")

    def work(worker: int) -> None:
        for _ in range(10):
            budget.record("implement", f"m{worker % 2}", 3, 5, 0.25)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(work, range(4)))
    models = budget.summary()["stages"]["implement"]["models"]
    assert models["m0"]["calls"] == models["m1"]["calls"] == 20
    assert budget.spent() == 10.0  # quarters add exactly in binary floating point
    assert Budget(None, path=tmp_path / "budget.json").summary() == budget.summary()
