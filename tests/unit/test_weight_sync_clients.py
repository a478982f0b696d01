"""The weight-sync clients send each server's documented request and turn refusals into
errors that say what went wrong (servers stood in for by httpx's MockTransport)."""

from __future__ import annotations

import json

import httpx
import pytest

from posttrain.rl.asynchronous.weight_sync import make_weight_sync, server_root


def _client(answer):
    """An httpx client whose server records each request and replies with `answer(request)`."""
    seen: list[tuple[str, str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((request.method, str(request.url), body))
        return answer(request)

    return httpx.Client(transport=httpx.MockTransport(handler)), seen


def test_server_root_drops_the_openai_prefix():
    assert server_root("http://h:1/v1") == server_root("http://h:1/v1/") == "http://h:1"
    assert server_root("http://h:1") == "http://h:1"


def test_posttrain_posts_path_and_version():
    http, seen = _client(lambda r: httpx.Response(200, json={"weight_version": 4}))
    sync = make_weight_sync("posttrain", "http://h:1/v1", http)
    assert sync.push("/ckpt/v4", 4) == 4
    assert sync.current_version() == 4
    assert seen == [
        ("POST", "http://h:1/v1/weights", {"path": "/ckpt/v4", "version": 4}),
        ("GET", "http://h:1/v1/weights", None),
    ]


def test_sglang_posts_model_path_at_the_root():
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/model_info":
            return httpx.Response(200, json={"weight_version": "default"})
        return httpx.Response(200, json={"success": True, "message": "ok"})

    http, seen = _client(answer)
    sync = make_weight_sync("sglang", "http://h:1/v1", http, load_format="safetensors")
    assert sync.current_version() is None  # SGLang's default version is the string "default"
    assert sync.push("/ckpt/v2", 2) == 2
    assert seen[1] == (
        "POST",
        "http://h:1/update_weights_from_disk",
        {"model_path": "/ckpt/v2", "weight_version": "2", "load_format": "safetensors"},
    )


def test_sglang_refusal_carries_its_message():
    refusal = {"success": False, "message": "Failed to update weights: no such file"}
    http, _ = _client(lambda r: httpx.Response(400, json=refusal))
    sync = make_weight_sync("sglang", "http://h:1/v1", http)
    with pytest.raises(RuntimeError, match="400.*no such file"):
        sync.push("/nope", 1)


def test_vllm_reloads_through_collective_rpc_then_resets_the_prefix_cache():
    http, seen = _client(lambda r: httpx.Response(200, json={"results": [None]}))
    sync = make_weight_sync("vllm", "http://h:1/v1", http)
    assert sync.current_version() is None
    assert sync.push("/ckpt/v3", 3) == 3
    assert seen == [
        (
            "POST",
            "http://h:1/collective_rpc",
            {"method": "reload_weights", "kwargs": {"weights_path": "/ckpt/v3"}},
        ),
        ("POST", "http://h:1/reset_prefix_cache", None),
    ]


def test_vllm_without_dev_mode_is_explained():
    http, _ = _client(lambda r: httpx.Response(404, json={"detail": "Not Found"}))
    with pytest.raises(RuntimeError, match="VLLM_SERVER_DEV_MODE=1"):
        make_weight_sync("vllm", "http://h:1/v1", http).push("/ckpt", 1)


def test_vllm_worker_error_is_reported():
    http, _ = _client(lambda r: httpx.Response(500, text="TypeError: unexpected keyword"))
    with pytest.raises(RuntimeError, match="500.*unexpected keyword"):
        make_weight_sync("vllm", "http://h:1/v1", http).push("/ckpt", 1)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="posttrain, sglang, vllm"):
        make_weight_sync("tgi", "http://h:1/v1", httpx.Client())


def test_vllm_workers_need_running_servers():
    from posttrain.rl.asynchronous.workers import build_engines
    from posttrain.rl.config import WorkerSettings

    with pytest.raises(ValueError, match="urls"):
        build_engines(WorkerSettings(kind="server", server_kind="vllm"), "unused-model-dir")
