"""`posttrain serve` batches concurrent requests: requests that wait together are generated
in one call and answer as they would alone; weight pushes land between batches, so every
response's tokens come from the weight version it reports. Pushes in SGLang's protocol
(`/update_weights_from_disk`) reach the server end to end through the RL engine."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from posttrain.data.arithmetic import ArithmeticTask, tokenizer_corpus
from posttrain.models.chat.base import GenerationParams
from posttrain.models.chat.hf import HFChat
from posttrain.models.server.engine import Engine
from posttrain.models.server_process import serve_model
from posttrain.models.tiny import build_tiny_model
from posttrain.rl.asynchronous.engines import WeightUpdate
from posttrain.rl.asynchronous.weight_sync import make_weight_sync
from posttrain.rl.asynchronous.workers import build_engines
from posttrain.rl.config import WorkerSettings

GREEDY = GenerationParams(max_tokens=6, logprobs=True)
PROMPTS = [[5, 6, 7], [9, 10, 11, 12, 13], [20, 21], [30, 31, 32, 33]]


@pytest.fixture(scope="module")
def chat(tiny_model_dir):
    return HFChat(tiny_model_dir)


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory):
    """Same architecture and tokenizer as `tiny_model_dir`, different weights."""
    out = tmp_path_factory.mktemp("other-model")
    return build_tiny_model(out, tokenizer_corpus(ArithmeticTask()), size="micro", seed=1)


def _concurrently(engine: Engine, calls):
    """Run `calls` from threads while the batching thread is held, so all of them wait
    together; returns their results in order."""
    gate, held = threading.Event(), threading.Event()
    engine.batcher.between(lambda: (held.set(), gate.wait(30)))
    assert held.wait(30)
    before = engine.batcher.requests
    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(call) for call in calls]
        deadline = time.monotonic() + 60
        while engine.batcher.waiting < len(calls) and time.monotonic() < deadline:
            time.sleep(0.01)  # until every call has tokenised and queued
        gate.set()
        results = [f.result(60) for f in futures]
    assert engine.batcher.requests - before == len(calls)
    return results


def test_waiting_requests_are_generated_in_one_batch_like_alone(chat):
    alone = [c[0].token_ids for c in chat.generator.generate(PROMPTS[:1], GREEDY)]
    alone += [chat.generator.generate([p], GREEDY)[0][0].token_ids for p in PROMPTS[1:]]
    engine = Engine(chat, max_batch=8)
    try:
        batches = engine.batcher.batches
        answers = _concurrently(engine, [lambda p=p: engine.generate([p], GREEDY) for p in PROMPTS])
        assert engine.batcher.batches - batches == 1
        assert [a.generated[0][0].choice.token_ids for a in answers] == alone
        assert {a.weight_version for a in answers} == {0}
    finally:
        engine.close()


def test_max_batch_one_generates_one_request_at_a_time(chat):
    engine = Engine(chat, max_batch=1)
    try:
        batches = engine.batcher.batches
        _concurrently(engine, [lambda p=p: engine.generate([p], GREEDY) for p in PROMPTS])
        assert engine.batcher.batches - batches == len(PROMPTS)
    finally:
        engine.close()


def test_different_settings_are_never_merged(chat):
    engine = Engine(chat, max_batch=8)
    try:
        longer = GenerationParams(max_tokens=3, logprobs=True)
        batches = engine.batcher.batches
        answers = _concurrently(
            engine,
            [
                lambda: engine.generate([PROMPTS[0]], GREEDY),
                lambda: engine.generate([PROMPTS[1]], longer),
                lambda: engine.generate([PROMPTS[2]], GREEDY),
            ],
        )
        assert engine.batcher.batches - batches == 2
        assert len(answers[1].generated[0][0].choice.token_ids) <= 3
    finally:
        engine.close()


def test_a_lone_seeded_request_is_seeded_with_its_own_seed(chat):
    sampled = GenerationParams(n=2, temperature=1.0, max_tokens=6, seed=17)
    direct = [c.token_ids for c in chat.generator.generate([PROMPTS[0]], sampled)[0]]
    engine = Engine(chat)
    try:
        answer = engine.generate([PROMPTS[0]], sampled)
        assert [g.choice.token_ids for g in answer.generated[0]] == direct
    finally:
        engine.close()


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp("batching") / "server.log"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        # Weight pushes from anywhere under pytest's temporary root (the other model's).
        root = str(tmp_path_factory.getbasetemp())
        proc = serve_model(
            tiny_model_dir, "--max-batch", "8", "--weights-root", root, log_path=log
        ).start()
    yield proc
    proc.stop()


def test_pushes_between_batches_keep_every_response_on_one_version(server, chat, other_model_dir):
    """Requests keep arriving while weights are pushed: each response's tokens are exactly
    those of the version it reports (a push inside a batch would mix the two)."""
    expected = {
        0: [c[0].token_ids for c in chat.generator.generate(PROMPTS, GREEDY)],
        1: [c[0].token_ids for c in HFChat(other_model_dir).generator.generate(PROMPTS, GREEDY)],
    }
    assert expected[0] != expected[1]

    def ask(i: int) -> tuple[int, int, list[int]]:
        body = {"prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": 6, "temperature": 0}
        response = httpx.post(f"{server.url}/v1/completions", json=body, timeout=120)
        assert response.status_code == 200, response.text
        answer = response.json()
        return i % len(PROMPTS), answer["weight_version"], answer["choices"][0]["token_ids"]

    with ThreadPoolExecutor(8) as pool:
        asked = [pool.submit(ask, i) for i in range(16)]
        pushed = httpx.post(
            f"{server.url}/v1/weights", json={"path": str(other_model_dir)}, timeout=120
        )
        answers = [future.result() for future in asked]
    assert pushed.status_code == 200 and pushed.json()["weight_version"] == 1
    for prompt, version, tokens in answers:
        assert tokens == expected[version][prompt], (prompt, version)
    stats = httpx.get(f"{server.url}/stats").json()
    assert stats["weight_version"] == 1 and stats["requests"] >= 16


def _served_greedy(server) -> list[list[int]]:
    body = {"prompt": PROMPTS, "max_tokens": 6, "temperature": 0}
    response = httpx.post(f"{server.url}/v1/completions", json=body, timeout=120)
    return [c["token_ids"] for c in response.json()["choices"]]


def test_sglang_weight_pushes_load_and_report_their_version(
    server, chat, tiny_model_dir, other_model_dir
):
    with httpx.Client(timeout=120) as http:
        sync = make_weight_sync("sglang", server.base_url, http)
        assert sync.push(str(other_model_dir), 5) == 5
        assert sync.current_version() == 5
        other = HFChat(other_model_dir).generator.generate(PROMPTS, GREEDY)
        assert _served_greedy(server) == [c[0].token_ids for c in other]
        make_weight_sync("sglang", server.base_url, http, load_format="safetensors").push(
            str(tiny_model_dir), 6
        )
    assert httpx.get(f"{server.url}/v1/weights").json() == {"weight_version": 6}
    original = chat.generator.generate(PROMPTS, GREEDY)
    assert _served_greedy(server) == [c[0].token_ids for c in original]


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({}, 400, ["model_path"]),
        ({"model_path": "ROOT/no/such/dir"}, 400, ["no/such/dir"]),
        ({"model_path": "/no/such/dir"}, 403, ["/no/such/dir", "weights root"]),
        ({"model_path": "MODEL", "load_format": "gguf"}, 400, ["gguf", "safetensors"]),
        ({"model_path": "MODEL", "load_format": "pt"}, 400, [".pt"]),
        ({"model_path": "MODEL", "weight_version": "step-3"}, 400, ["weight_version", "step-3"]),
        ({"model_path": "MODEL", "weight_version": "-1"}, 400, ["weight_version"]),
        ({"model_path": 7}, 400, ["model_path"]),
    ],
)
def test_bad_sglang_pushes_are_refused_in_sglangs_shape(
    server, tiny_model_dir, tmp_path_factory, body, status, words
):
    before = httpx.get(f"{server.url}/v1/weights").json()
    if body.get("model_path") == "MODEL":
        body = {**body, "model_path": str(tiny_model_dir)}
    if str(body.get("model_path")).startswith("ROOT/"):
        root = tmp_path_factory.getbasetemp()
        body = {**body, "model_path": str(root / body["model_path"].removeprefix("ROOT/"))}
    response = httpx.post(f"{server.url}/update_weights_from_disk", json=body, timeout=60)
    assert response.status_code == status
    answer = response.json()
    assert answer["success"] is False
    for word in words:
        assert word in answer["message"], answer["message"]
    assert httpx.get(f"{server.url}/v1/weights").json() == before


def test_rl_server_engine_pushes_in_sglangs_protocol(server, tiny_model_dir, other_model_dir):
    settings = WorkerSettings(kind="server", urls=[server.base_url], server_kind="sglang")
    [engine] = build_engines(settings, str(tiny_model_dir))
    try:
        engine.push(WeightUpdate(9, path=str(other_model_dir)), wait=True)
        [choices] = engine.generate([PROMPTS[0]], GREEDY)
        other = HFChat(other_model_dir).generator.generate([PROMPTS[0]], GREEDY)
        assert choices[0].token_ids == other[0][0].token_ids
        assert engine.version == 9 and choices[0].weight_version == 9
    finally:
        engine.close()


def test_a_new_trainer_on_a_used_server_keeps_its_own_version_numbers(
    server, tiny_model_dir, other_model_dir
):
    """The server takes only versions that move forward; a trainer whose first push is
    version 0 on a server already past it sends its versions shifted past the server's and
    sees its own numbers in what it gets back."""
    pushed = httpx.post(f"{server.url}/v1/weights", json={"path": str(tiny_model_dir)})
    served = pushed.json()["weight_version"]
    assert served >= 1
    settings = WorkerSettings(kind="server", urls=[server.base_url])
    [engine] = build_engines(settings, str(tiny_model_dir))
    try:
        for version in (0, 1):
            engine.push(WeightUpdate(version, path=str(other_model_dir)), wait=True)
            [choices] = engine.generate([PROMPTS[0]], GREEDY)
            assert engine.version == version and choices[0].weight_version == version
            now = httpx.get(f"{server.url}/v1/weights").json()["weight_version"]
            assert now == served + 1 + version
    finally:
        engine.close()
