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
    from posttrain.models.warm_start import WarmStartConfig

    cache = os.environ.get("POSTTRAIN_TEST_CACHE") or tmp_path_factory.mktemp("warm-start-cache")
    return WarmStartConfig(cache_dir=str(cache))


@pytest.fixture(scope="session")
def warm_started(warm_start_config, tmp_path_factory: pytest.TempPathFactory):
    """Train the default warm-start policy once per session (about 2 CPU minutes)."""
    from posttrain.models.warm_start import warm_start
    from posttrain.runs import Run

    with Run.create("warm", warm_start_config, root=tmp_path_factory.mktemp("runs")) as run:
        result = warm_start(warm_start_config, run)
    return result, run.path
