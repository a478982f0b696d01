"""The reward-model server as a real subprocess, driven by HTTPRewardModel and raw httpx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from posttrain.models.server_process import ServerProcess, free_port
from posttrain.models.tiny import build_tiny_model
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
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained nano reward model: its scores are arbitrary but differ between inputs."""
    out = tmp_path_factory.mktemp("rm")
    return build_tiny_model(out, PROMPTS + RESPONSES, size="nano", kind="seq-cls", seed=0)


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
        "lengths-differ",
        {"json": {"prompts": ["a", "b"], "responses": ["c"]}},
        400,
        "'prompts' has 2 items but 'responses' has 1",
    ),
    ("empty", {"json": {"prompts": [], "responses": []}}, 400, "empty"),
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


def test_client_gives_up_on_an_unreachable_server() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with (
        HTTPRewardModel(url, retries=2, backoff=0.01) as remote,
        pytest.raises(RewardServerError, match="failed 3 times; last: ConnectError"),
    ):
        remote.score(["p"], ["r"])
