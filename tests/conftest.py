"""Shared fixtures: tiny tokenizers and models are built here in seconds, never fetched."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from posttrain.data.arithmetic import ArithmeticTask, tokenizer_corpus  # noqa: E402
from posttrain.models.tiny import build_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained micro Qwen2 causal LM with a tokenizer trained on arithmetic text."""
    out = tmp_path_factory.mktemp("tiny-model")
    return build_tiny_model(out, tokenizer_corpus(ArithmeticTask()), size="micro", seed=0)


@pytest.fixture(scope="session")
def warm_start_config(tmp_path_factory: pytest.TempPathFactory):
    """The embedded-default warm start, cached in a per-session directory (or, to skip the
    two-minute training while developing, in $POSTTRAIN_TEST_CACHE)."""
    from posttrain.sft.warm_start import WarmStartConfig

    cache = os.environ.get("POSTTRAIN_TEST_CACHE") or tmp_path_factory.mktemp("warm-start-cache")
    return WarmStartConfig(cache_dir=str(cache))


@pytest.fixture(scope="session")
def warm_started(warm_start_config, tmp_path_factory: pytest.TempPathFactory):
    """Train the default warm-start policy once per session (about 2 CPU minutes)."""
    from posttrain.runs import Run
    from posttrain.sft.warm_start import warm_start

    with Run.create("warm", warm_start_config, root=tmp_path_factory.mktemp("runs")) as run:
        result = warm_start(warm_start_config, run)
    return result, run.path


# A Llama-3-style header template (not ChatML), written for these tests: role headers, each
# message closed by <|eot_id|>, a BOS first; what a Skywork-Reward-Llama checkpoint carries.
LLAMA3_STYLE_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}"
    "{{ message['content'] + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)


@pytest.fixture(scope="session")
def llama_template_rm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained nano reward model (seq-cls) whose tokenizer carries a Llama-3-style chat
    template and special tokens instead of posttrain's ChatML: a stand-in for a real
    checkpoint, built offline in about a second."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path_factory.mktemp("llama-template-rm")
    words = "the fox owl ran sat over a dragon big red moon tell story about hill".split()  # noqa: SIM905
    build_tiny_model(out, [" ".join(words), *words], size="nano", kind="seq-cls", seed=0)
    tokenizer = AutoTokenizer.from_pretrained(out)
    special = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    tokenizer.add_special_tokens({"additional_special_tokens": special})
    tokenizer.bos_token, tokenizer.eos_token = "<|begin_of_text|>", "<|eot_id|>"
    tokenizer.chat_template = LLAMA3_STYLE_TEMPLATE
    model = AutoModelForSequenceClassification.from_pretrained(out)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    model.config.bos_token_id, model.config.eos_token_id = (
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
