"""The reward-model server as a real subprocess, driven by HTTPRewardModel and raw httpx.

The served model carries a Llama-3-style chat template (`llama_template_rm`), as a real
checkpoint would, so whole conversations must reach it and go through that template.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from posttrain.models.server_process import ServerProcess, free_port
from posttrain.rewards.reward_model import RewardModel, reward_model_reward
from posttrain.rewards.reward_model_server import (
    HTTPRewardModel,
    RewardServerError,
    reward_model_server,
)

MAX_ITEMS = 8
MAX_BODY_BYTES = 4096
ANIMALS = ["fox", "owl", "bear", "wolf", "deer"]
PROMPTS = [f"Tell a story about the {animal}." for animal in ANIMALS]
RESPONSES = ["the fox ran", "a dragon sat on the hill", "", "big red moon " * 5, "the owl"]


@pytest.fixture(scope="module")
def model_dir(llama_template_rm: Path) -> Path:
    """An untrained nano reward model: its scores are arbitrary but differ between inputs."""
    return llama_template_rm


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("rm-server") / "server.log"
    extra = ["--max-items", str(MAX_ITEMS), "--max-body-bytes", str(MAX_BODY_BYTES)]
    with pytest.MonkeyPatch.context() as patch:
        # Two torch processes on two busy cores: one thread each, or OpenMP oversubscribes.
        patch.setenv("OMP_NUM_THREADS", "1")
        proc = reward_model_server(model_dir, *extra, log_path=log).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def local(model_dir: Path) -> RewardModel:
    return RewardModel(model_dir)


def _pairs(n: int) -> tuple[list[str], list[str]]:
    prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
    responses = [RESPONSES[(i * 3) % len(RESPONSES)] + f" {i}" for i in range(n)]
    return prompts, responses


def test_the_client_batches_to_the_servers_cap(server: ServerProcess, local: RewardModel) -> None:
    from posttrain.eval.set_scorers import Pointwise, load_scorer

    _, responses = _pairs(3 * MAX_ITEMS + 1)  # over the cap: sent in 4 requests
    scorer = load_scorer(server.url)  # what `posttrain rm-bench --scorer URL` builds
    [served] = scorer.score_sets(["p"], [responses])
    [in_process] = Pointwise(local, "local").score_sets(["p"], [responses])
    assert served == pytest.approx(in_process, abs=1e-5)
    assert scorer.scorer.batch_size == MAX_ITEMS


def test_http_scores_equal_in_process_scores(server: ServerProcess, local: RewardModel) -> None:
    prompts, responses = _pairs(19)  # three requests at batch_size 8: 8 + 8 + 3
    with HTTPRewardModel(server.url, batch_size=MAX_ITEMS) as remote:
        served = remote.score(prompts, responses)
        assert served == pytest.approx(local.score(prompts, responses), abs=1e-5)
        assert len(set(served)) > 1  # different inputs, different scores

        # The reward function works over HTTP too, with conversational inputs.
        reward = reward_model_reward(remote)
        chat = [[{"role": "user", "content": p}] for p in prompts[:3]]
        answers = [[{"role": "assistant", "content": r}] for r in responses[:3]]
        assert reward(chat, answers) == pytest.approx(served[:3], abs=1e-5)


def test_whole_conversations_go_through_the_chat_template(
    server: ServerProcess, local: RewardModel
) -> None:
    history = [
        {"role": "system", "content": "You tell short stories."},
        {"role": "user", "content": PROMPTS[0]},
        {"role": "assistant", "content": RESPONSES[0]},
        {"role": "user", "content": PROMPTS[1]},
    ]
    prompts: list[Any] = [history, PROMPTS[1]]
    responses: list[Any] = [RESPONSES[1], [{"role": "assistant", "content": RESPONSES[1]}]]
    with HTTPRewardModel(server.url) as remote:
        served = remote.score(prompts, responses)
    reply = {"role": "assistant", "content": RESPONSES[1]}
    expected = []
    for conversation in ([*history, reply], [{"role": "user", "content": PROMPTS[1]}, reply]):
        ids = local.tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)
        assert "<|start_header_id|>" in local.tokenizer.convert_ids_to_tokens(ids["input_ids"])
        with torch.inference_mode():
            logits = local.model(input_ids=torch.tensor([ids["input_ids"]])).logits
        expected.append(float(logits[0, 0]))
    assert served == pytest.approx(expected, abs=1e-5)
    assert served[0] != pytest.approx(served[1], abs=1e-6)  # the history changed the score


def test_info_and_model_name(server: ServerProcess, model_dir: Path) -> None:
    info = httpx.get(server.url + "/info").json()
    assert info == {"model": model_dir.name, "max_items": MAX_ITEMS, "max_length": 512}
    body = httpx.post(server.url + "/score", json={"prompts": ["a"], "responses": ["b"]}).json()
    assert body["model"] == model_dir.name and len(body["rewards"]) == 1


JSON = {"content-type": "application/json"}
BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("invalid-json", {"content": b'{"prompts": [', "headers": JSON}, 400, "as JSON"),
    ("not-an-object", {"json": ["a", "b"]}, 400, "must be a JSON object"),
    ("missing-field", {"json": {"prompts": ["a"]}}, 400, "Missing required field 'responses'"),
    ("wrong-type", {"json": {"prompts": "a", "responses": ["b"]}}, 400, "'prompts'"),
    ("wrong-item", {"json": {"prompts": ["a"], "responses": [3]}}, 400, "'responses[0]'"),
    (
        "not-messages",
        {"json": {"prompts": [[{"text": "a"}]], "responses": ["b"]}},
        400,
        "'prompts[0]' must be a string or a non-empty list of chat messages",
    ),
    (
        "lengths-differ",
        {"json": {"prompts": ["a", "b"], "responses": ["c"]}},
        400,
        "'prompts' has 2 items but 'responses' has 1",
    ),
    ("empty", {"json": {"prompts": [], "responses": []}}, 400, "empty"),
    (
        # Valid JSON, invalid Unicode: the tokenizer cannot take it (was a 500).
        "lone-surrogate",
        {"content": b'{"prompts": ["a\\ud800"], "responses": ["b"]}', "headers": JSON},
        400,
        "'prompts[0]' holds a lone surrogate",
    ),
    (
        "bad-content-part",  # was a 500: the parts' text is read with .get
        {"json": {"prompts": [[{"role": "user", "content": [7]}]], "responses": ["b"]}},
        400,
        "'prompts[0]' must be a string or a non-empty list of chat messages",
    ),
    (
        "too-many",
        {"json": {"prompts": ["a"] * 9, "responses": ["b"] * 9}},
        413,
        f"limit of {MAX_ITEMS} per request",
    ),
    (
        "body-too-large",
        {"json": {"prompts": ["a" * 5000], "responses": ["b"]}},
        413,
        f"exceeds the limit of {MAX_BODY_BYTES} bytes",
    ),
]


@pytest.mark.parametrize(
    ("request_kwargs", "status", "message"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_requests_get_errors_naming_the_problem(
    server: ServerProcess, request_kwargs: dict[str, Any], status: int, message: str
) -> None:
    response = httpx.post(server.url + "/score", timeout=30, **request_kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error["message"], error
    # ... and the server goes on serving.
    assert httpx.get(server.url + "/health").status_code == 200
    ok = httpx.post(server.url + "/score", json={"prompts": ["p"], "responses": ["r"]})
    assert ok.status_code == 200 and len(ok.json()["rewards"]) == 1


class CountingTransport(httpx.HTTPTransport):
    """The real transport, answering the first `fail_first` requests with a 503 itself."""

    def __init__(self, fail_first: int = 0) -> None:
        super().__init__()
        self.fail_first = fail_first
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.requests <= self.fail_first:
            body = json.dumps({"error": {"message": "warming up"}}).encode()
            return httpx.Response(503, content=body, headers=JSON)
        return super().handle_request(request)


def test_client_retries_transient_failures(server: ServerProcess, local: RewardModel) -> None:
    transport = CountingTransport(fail_first=2)
    with HTTPRewardModel(server.url, retries=3, backoff=0.01, transport=transport) as remote:
        prompts, responses = _pairs(3)
        assert remote.score(prompts, responses) == pytest.approx(
            local.score(prompts, responses), abs=1e-5
        )
    assert transport.requests == 3


def test_client_reports_the_servers_4xx_message_without_retrying(server: ServerProcess) -> None:
    transport = CountingTransport()
    remote = HTTPRewardModel(server.url, batch_size=MAX_ITEMS + 1, transport=transport)
    with remote, pytest.raises(RewardServerError, match=f"HTTP 413: .*limit of {MAX_ITEMS}") as err:
        remote.score(*_pairs(MAX_ITEMS + 1))
    assert err.value.status == 413 and transport.requests == 1


def test_client_sends_invalid_unicode_and_does_not_retry_the_400(server: ServerProcess) -> None:
    transport = CountingTransport()
    remote = HTTPRewardModel(server.url, batch_size=MAX_ITEMS, transport=transport)
    with remote, pytest.raises(RewardServerError, match="HTTP 400: .*lone surrogate") as err:
        remote.score(["fine", "bad \ud800"], ["r", "r"])
    assert err.value.status == 400 and transport.requests == 1


def test_client_gives_up_on_an_unreachable_server() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with (
        HTTPRewardModel(url, retries=2, backoff=0.01) as remote,
        pytest.raises(RewardServerError, match="failed 3 times; last: ConnectError"),
    ):
        remote.score(["p"], ["r"])


def test_dtype_and_device_reach_the_served_model(model_dir: Path) -> None:
    from fastapi.testclient import TestClient

    from posttrain.rewards.reward_model_server import create_app

    app = create_app(model_dir, torch_dtype="bfloat16", device="cpu")
    assert app.state.model.model.dtype == torch.bfloat16
    body = {"prompts": [[{"role": "user", "content": PROMPTS[0]}]], "responses": [RESPONSES[0]]}
    with TestClient(app, base_url="http://127.0.0.1") as client:  # Host: a loopback name
        rewards = client.post("/score", json=body).json()["rewards"]
    assert len(rewards) == 1 and rewards[0] == rewards[0]  # a number, not NaN


def test_serve_rm_refuses_an_unknown_dtype(model_dir: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "posttrain", "serve-rm", str(model_dir), "--torch-dtype", "fp8"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--torch-dtype" in result.stderr and "bfloat16" in result.stderr, result.stderr
