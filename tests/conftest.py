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
