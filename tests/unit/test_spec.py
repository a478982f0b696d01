"""load_chat: every spec form, keyword pass-through, and the error for a bad spec."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from posttrain.models.chat import (
    ChatModel,
    GenerationParams,
    HFChat,
    OpenAIChat,
    ScriptedChat,
    load_chat,
)


def test_scripted_spec() -> None:
    model = load_chat("scripted:echo")
    assert isinstance(model, ScriptedChat) and isinstance(model, ChatModel)
    assert model.name == "scripted:echo"


def test_openai_spec_with_base_url() -> None:
    model = load_chat("openai:my-model@http://127.0.0.1:9/v1", max_concurrency=3, timeout=5)
    assert isinstance(model, OpenAIChat) and isinstance(model, ChatModel)
    assert model.model == "my-model"
    assert model.name == "openai:my-model"
    assert model.base_url.rstrip("/") == "http://127.0.0.1:9/v1"
    assert model.max_concurrency == 3


def test_openai_spec_takes_url_and_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/env/v1")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    model = load_chat("openai:org/model-7b", name="judge")
    assert isinstance(model, OpenAIChat)
    assert model.model == "org/model-7b"
    assert model.name == "judge"
    assert model.base_url.rstrip("/") == "http://127.0.0.1:9/env/v1"
    assert model.client.api_key == "EMPTY"

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert load_chat("openai:m").client.api_key == "sk-test"


def test_local_directory_spec(tiny_model_dir: Path) -> None:
    model = load_chat(str(tiny_model_dir))
    assert isinstance(model, HFChat) and isinstance(model, ChatModel)
    assert model.name == tiny_model_dir.name
    conversation = [{"role": "user", "content": "What is 1 + 2?"}]
    [result] = model.chat([conversation], GenerationParams(max_tokens=2))
    assert result.model == model.name and result.choices[0].token_ids


@pytest.mark.parametrize(
    "spec", ["", "no/such/model-dir", "gpt-4o", "openai:", "openai:@http://x/v1", "hf:x"]
)
def test_bad_spec_names_spec_and_accepted_forms(spec: str) -> None:
    with pytest.raises(ValueError, match=r"openai:MODEL\[@BASE_URL\].*scripted:NAME") as err:
        load_chat(spec)
    assert repr(spec) in str(err.value)


def test_a_file_is_not_a_model_directory(tmp_path: Path) -> None:
    file = tmp_path / "weights.bin"
    file.write_bytes(b"")
    with pytest.raises(ValueError, match="local model directory"):
        load_chat(str(file))


def test_importing_the_package_is_cheap() -> None:
    """torch, transformers and openai load only when a backend that needs them is used."""
    code = (
        "import sys, posttrain.models.chat as c; "
        "c.load_chat('scripted:echo'); "
        "print(sorted(m for m in ('torch', 'transformers', 'openai') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_openai_spec_names_the_variable_holding_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUDGE_KEY", "sk-judge")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-other")
    model = load_chat("openai:m@http://127.0.0.1:9/v1#JUDGE_KEY")
    assert isinstance(model, OpenAIChat) and model.client.api_key == "sk-judge"
    assert model.base_url.rstrip("/") == "http://127.0.0.1:9/v1" and model.model == "m"
    monkeypatch.delenv("JUDGE_KEY")
    with pytest.raises(ValueError, match=r"\$JUDGE_KEY, which is not set"):
        load_chat("openai:m@http://127.0.0.1:9/v1#JUDGE_KEY")
