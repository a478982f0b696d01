"""lm-evaluation-harness's `local-chat-completions` model against `posttrain serve`, offline."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from posttrain.models.server_process import serve_model

DATA_DIR = Path(__file__).parent / "data" / "lm_eval"
TASK = "posttrain_tiny_arithmetic"
LIMIT = 4


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any connection that leaves the machine: the evaluation must need no network."""
    connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> Any:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            if host not in ("127.0.0.1", "::1", "localhost"):
                raise AssertionError(f"unexpected network connection to {address}")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def test_lm_eval_chat_completions_task(
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    loopback_only: None,
) -> None:
    datasets = pytest.importorskip("datasets")
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for the server: see test_server.py
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets"))
    monkeypatch.chdir(DATA_DIR)  # the task's data_files path is relative to its YAML
    log = tmp_path / "server.log"
    # The server wants a key; lm-eval's OpenAI-style models send $OPENAI_API_KEY as a bearer.
    monkeypatch.setenv("OPENAI_API_KEY", "lm-eval-test-key")

    with serve_model(tiny_model_dir, log_path=log, api_key="lm-eval-test-key") as server:
        results = lm_eval.simple_evaluate(
            model="local-chat-completions",
            model_args={
                "model": tiny_model_dir.name,
                "base_url": f"{server.base_url}/chat/completions",
                # No tokenizer on the client side: nothing to fetch from a hub.
                "tokenized_requests": False,
                "max_retries": 1,
                "timeout": 60,
            },
            tasks=[TASK],
            task_manager=TaskManager(include_path=str(DATA_DIR), include_defaults=False),
            apply_chat_template=True,
            limit=LIMIT,
            log_samples=True,
            bootstrap_iters=0,
        )

    assert results is not None
    score = results["results"][TASK]["exact_match,none"]
    assert 0.0 <= score <= 1.0
    samples = results["samples"][TASK]
    assert len(samples) == LIMIT
    for sample in samples:
        [[response]] = sample["resps"]
        assert isinstance(response, str) and response
    served = log.read_text().count('"POST /v1/chat/completions HTTP/1.1" 200')
    assert served == LIMIT
