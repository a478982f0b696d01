"""`posttrain serve` and `serve-rm` as real subprocesses under hostile requests: the API key,
the Host check, the bind refusal, weight pushes confined to --weights-root and checked
before anything changes, the caps on one request's work, and a short request answered
while a long one is generating."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import torch

from posttrain.models.chat.base import GenerationParams
from posttrain.models.chat.hf import HFChat
from posttrain.models.chat.openai_chat import ChatRequestError
from posttrain.models.chat.spec import load_chat
from posttrain.models.remote_generator import RemoteGenerator
from posttrain.models.server_process import ServerProcess, serve_model
from posttrain.rewards.reward_model_server import (
    HTTPRewardModel,
    RewardServerError,
    reward_model_server,
)

KEY = "test-key-4b1d"
AUTH = {"authorization": f"Bearer {KEY}"}
MAX_QUEUED = 2000
LIMITS = [
    *("--max-n", "4", "--max-prompts", "4", "--max-stop", "2", "--max-stop-chars", "8"),
    *("--max-sampled-tokens", "1024", "--max-queued-tokens", str(MAX_QUEUED)),
]
USER = [{"role": "user", "content": "What is 12+7?"}]


class NotWeights:
    """A pickled object that is no tensor: `torch.load(weights_only=True)` refuses it."""


@pytest.fixture(scope="module")
def weights_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("weights-root")


@pytest.fixture(scope="module")
def server(
    tiny_model_dir: Path, weights_root: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("limits") / "server.log"
    extra = [*LIMITS, "--weights-root", str(weights_root), "--served-model-name", "tiny"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")  # see test_server.py
        proc = serve_model(tiny_model_dir, *extra, log_path=log, api_key=KEY).start()
    try:
        yield proc
    finally:
        proc.stop()


def _post(server: ServerProcess, path: str, body: object, **kwargs: object) -> httpx.Response:
    return httpx.post(server.url + path, json=body, headers=AUTH, timeout=120, **kwargs)


def _error(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    return response.json()["error"]


# --- who may talk to the server ------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/models"),
        ("GET", "/v1/weights"),
        ("GET", "/stats"),
        ("GET", "/model_info"),
        ("GET", "/openapi.json"),
        ("POST", "/v1/completions"),
        ("POST", "/v1/weights"),
        ("POST", "/update_weights_from_disk"),
    ],
)
def test_every_route_but_health_needs_the_key(server: ServerProcess, method: str, path: str):
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": KEY}):
        response = httpx.request(method, server.url + path, headers=headers, json={})
        assert _error(response, 401)["code"] == "invalid_api_key"
        assert response.headers["www-authenticate"] == "Bearer"
    assert httpx.get(server.url + "/health").status_code == 200
    allowed = httpx.request(method, server.url + path, headers=AUTH, json={})
    assert allowed.status_code in (200, 400)  # let in: {} is a bad body for the POSTs


def test_openai_clients_send_the_configured_key(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("TINY_SERVER_KEY", KEY)
    params = GenerationParams(max_tokens=4, temperature=0.0)
    with load_chat(f"openai:tiny@{server.base_url}#TINY_SERVER_KEY", max_retries=0) as chat:
        [answer] = chat.chat([USER], params)
    assert len(answer.choices[0].token_ids) == 4
    with (
        load_chat(f"openai:tiny@{server.base_url}", max_retries=0) as keyless,
        pytest.raises(ChatRequestError, match="AuthenticationError"),
    ):
        keyless.chat([USER], params)
    with pytest.raises(ValueError, match=r"\$NO_SUCH_KEY_VAR, which is not set"):
        load_chat(f"openai:tiny@{server.base_url}#NO_SUCH_KEY_VAR")
    remote = RemoteGenerator(server.base_url, "tiny", api_key=KEY)
    assert len(remote.generate([[5, 6, 7]], params)[0][0].token_ids) == 4
    with pytest.raises(openai.AuthenticationError):
        RemoteGenerator(server.base_url, "tiny", max_retries=0).generate([[5, 6, 7]], params)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "10.1.2.3", "[::2]:80"])
def test_a_host_header_naming_another_host_is_refused(server: ServerProcess, host: str):
    """DNS rebinding: a page whose own name now points at 127.0.0.1 sends that name."""
    response = httpx.get(server.url + "/v1/models", headers={**AUTH, "host": host})
    assert _error(response, 400)["code"] == "invalid_host"
    for good in (f"localhost:{server.port}", f"127.0.0.1:{server.port}", "[::1]"):
        ok = httpx.get(server.url + "/v1/models", headers={**AUTH, "host": good})
        assert ok.status_code == 200, good


@pytest.mark.parametrize("command", ["serve", "serve-rm"])
def test_binding_beyond_loopback_without_a_key_is_refused(tiny_model_dir: Path, command: str):
    env = {k: v for k, v in os.environ.items() if k != "POSTTRAIN_API_KEY"}
    args = [sys.executable, "-m", "posttrain", command, str(tiny_model_dir), "--host", "0.0.0.0"]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "refusing to serve on 0.0.0.0 without an API key" in done.stderr


def test_the_reward_server_takes_the_key_too(
    llama_template_rm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("POSTTRAIN_API_KEY", raising=False)  # the client's default key
    log = tmp_path / "rm.log"
    with reward_model_server(llama_template_rm, log_path=log, api_key=KEY) as rm:
        with HTTPRewardModel(rm.url, api_key=KEY) as remote:
            assert len(remote.score(["p"], ["r"])) == 1
        with (
            HTTPRewardModel(rm.url, batch_size=4, retries=3) as keyless,
            pytest.raises(RewardServerError, match="HTTP 401") as err,
        ):
            keyless.score(["p"], ["r"])
        assert err.value.status == 401
        assert httpx.get(rm.url + "/health").status_code == 200
        evil = httpx.get(rm.url + "/info", headers={**AUTH, "host": "evil.example"})
        assert _error(evil, 400)["code"] == "invalid_host"
    assert log.read_text().count('POST /score HTTP/1.1" 401') == 1  # not retried


# --- weight pushes --------------------------------------------------------------------------


def _version(server: ServerProcess) -> int:
    return httpx.get(server.base_url + "/weights", headers=AUTH).json()["weight_version"]


def _greedy(server: ServerProcess) -> list[int]:
    body = {"prompt": [5, 6, 7], "max_tokens": 6, "temperature": 0}
    response = _post(server, "/v1/completions", body)
    assert response.status_code == 200, response.text
    return response.json()["choices"][0]["token_ids"]


def test_paths_outside_the_root_get_one_answer_whether_or_not_they_exist(
    server: ServerProcess, weights_root: Path, tmp_path: Path
):
    (weights_root / "escape").symlink_to(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"not weights")
    messages = []
    for path in [
        "/etc",
        "/etc/passwd",
        "/no/such/dir",
        str(weights_root / ".." / ".." / "etc"),
        str(weights_root / "escape"),  # a link inside the root to a folder outside it
        "escape/model.safetensors",  # relative paths are taken from the root
    ]:
        for route, key in (("/v1/weights", "path"), ("/update_weights_from_disk", "model_path")):
            response = _post(server, route, {key: path})
            assert response.status_code == 403, (route, path, response.text)
            body = response.json()
            message = body["error"]["message"] if "error" in body else body["message"]
            messages.append(message.replace(repr(path), "PATH"))
    assert len(set(messages)) == 1, set(messages)
    assert "weights root" in messages[0]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("nan", ["model.norm.weight", "NaN or infinite"]),
        ("inf-after-cast", ["lm_head.weight", "NaN or infinite"]),
        ("int", ["model.norm.weight", "torch.int64"]),
        ("string", ["model.norm.weight", "not a dense tensor"]),
        ("pickled-object", ["could not be read as weights"]),
        ("garbage", ["could not be read as weights"]),
        ("shape", ["model.norm.weight", "shape"]),
    ],
)
def test_bad_weights_are_refused_before_anything_changes(
    server: ServerProcess, tiny_model_dir: Path, weights_root: Path, change: str, words: list
):
    state = HFChat(tiny_model_dir).model.state_dict()
    path = weights_root / f"{change}.pt"
    if change == "nan":
        state["model.norm.weight"] = torch.full_like(state["model.norm.weight"], math.nan)
    elif change == "inf-after-cast":  # float64 values too big for the served float32
        state["lm_head.weight"] = state["lm_head.weight"].double() * 1e300
    elif change == "int":
        state["model.norm.weight"] = torch.ones_like(state["model.norm.weight"], dtype=torch.long)
    elif change == "string":
        state["model.norm.weight"] = "hello"
    elif change == "shape":
        state["model.norm.weight"] = torch.ones(3)
    if change == "pickled-object":
        torch.save({"model.norm.weight": NotWeights()}, path)  # weights_only refuses it
    elif change == "garbage":
        path.write_bytes(b"\x80\x04 not a pickle")
    else:
        torch.save(state, path)
    before_version, before_ids = _version(server), _greedy(server)
    response = _post(server, "/v1/weights", {"path": path.name})
    error = _error(response, 400)
    for word in words:
        assert word in error["message"], error
    assert _version(server) == before_version
    assert _greedy(server) == before_ids  # the old weights still serve, unchanged


def test_pushed_versions_must_move_forward(
    server: ServerProcess, tiny_model_dir: Path, weights_root: Path
):
    torch.save(HFChat(tiny_model_dir).model.state_dict(), weights_root / "same.pt")
    for version in (-7, 10**30, "3", True):
        assert (
            _post(server, "/v1/weights", {"path": "same.pt", "version": version}).status_code == 400
        )
    sglang = _post(
        server,
        "/update_weights_from_disk",
        {"model_path": "same.pt", "weight_version": "1" + "0" * 30},
    )
    assert sglang.status_code == 400 and "weight_version" in sglang.json()["message"]
    now = _version(server)
    pushed = _post(server, "/v1/weights", {"path": "same.pt"})
    assert pushed.status_code == 200 and pushed.json()["weight_version"] == now + 1
    for stale in (now + 1, now):
        refused = _post(server, "/v1/weights", {"path": "same.pt", "version": stale})
        assert _error(refused, 409)["code"] == "version_not_increasing"
    assert _version(server) == now + 1
    big = _post(
        server, "/v1/weights", {"path": str(weights_root / "same.pt"), "version": 2**63 - 1}
    )
    assert big.status_code == 200 and _version(server) == 2**63 - 1


# --- one request's work ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "flag"),
    [
        ({"prompt": ["1+1"] * 5}, "--max-prompts"),
        ({"prompt": [[5, 6]] * 512}, "--max-prompts"),
        ({"prompt": "1", "stop": ["a", "b", "c"]}, "--max-stop"),
        ({"prompt": "1", "stop": "x" * 9}, "--max-stop-chars"),
        ({"prompt": "1", "n": 4, "max_tokens": 300}, "--max-sampled-tokens"),
        ({"prompt": "1", "n": 5}, "--max-n"),
        ({"prompt": ["1+1"] * 4, "max_tokens": 500}, "--max-queued-tokens"),
    ],
)
def test_requests_over_a_cap_get_a_400_naming_it(server: ServerProcess, body: dict, flag: str):
    error = _error(_post(server, "/v1/completions", body), 400)
    assert flag in error["message"], error


def test_a_chat_over_a_cap_gets_a_400_naming_it(server: ServerProcess):
    body = {"messages": USER, "stop": ["a", "b", "c"]}
    assert "--max-stop" in _error(_post(server, "/v1/chat/completions", body), 400)["message"]
    body = {"messages": USER, "max_completion_tokens": 2000}
    error = _error(_post(server, "/v1/chat/completions", body), 400)
    assert error["param"] == "max_completion_tokens" and "--max-sampled-tokens" in error["message"]


def test_a_vanishing_temperature_samples_greedily(server: ServerProcess):
    greedy = _greedy(server)
    body = {"prompt": [5, 6, 7], "max_tokens": 6, "temperature": 1e-45, "logprobs": 0}
    response = _post(server, "/v1/completions", body)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["token_ids"] == greedy


def _in_background(call) -> tuple[threading.Thread, dict]:
    out: dict = {}

    def run() -> None:
        out["response"] = call()
        out["done"] = time.monotonic()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


LONG = {"prompt": [[5, 6, 7], [9, 10, 11], [20, 21], [30, 31]], "max_tokens": 400, "temperature": 0}


def test_a_full_queue_answers_429_and_frees_up(server: ServerProcess):
    """The long request holds ~1650 of the 2000 queued tokens while it runs; a 520-token
    request does not fit meanwhile, and does once it is answered."""
    second = {"prompt": "1+1", "max_tokens": 500}
    thread, out = _in_background(lambda: _post(server, "/v1/completions", LONG))
    time.sleep(0.3)  # admitted and generating
    seen = None
    while "done" not in out:
        response = _post(server, "/v1/completions", second)
        if response.status_code == 429:
            seen = response
            break
        time.sleep(0.05)
    thread.join()
    assert seen is not None, "the long request finished before a second one was refused"
    error = _error(seen, 429)
    assert error["code"] == "server_busy" and "--max-queued-tokens" in error["message"]
    assert seen.headers["retry-after"] == "1"
    assert out["response"].status_code == 200
    assert _post(server, "/v1/completions", second).status_code == 200


def test_a_short_request_is_answered_while_a_long_one_generates(server: ServerProcess):
    alone = _post(server, "/v1/completions", LONG)
    assert alone.status_code == 200
    thread, out = _in_background(lambda: _post(server, "/v1/completions", LONG))
    time.sleep(0.3)  # the long request is generating
    short = _post(server, "/v1/chat/completions", {"messages": USER, "max_tokens": 4})
    short_done = time.monotonic()
    thread.join()
    assert short.status_code == 200 and out["response"].status_code == 200
    assert short_done < out["done"]  # it did not wait for the long request
    # Cut into pieces around the short one, the long request still answers as alone.
    ids = [c["token_ids"] for c in out["response"].json()["choices"]]
    assert ids == [c["token_ids"] for c in alone.json()["choices"]]
