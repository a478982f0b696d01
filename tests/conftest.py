"""Shared fixtures: tiny tokenizers and models are built here in seconds, never fetched."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# One intra-op thread per process, set before torch loads and inherited by every server or
# CLI a test starts. Tiny models gain nothing from a second thread, and two processes with
# two spinning OpenMP threads each on two cores (a test and its server, or two xdist
# workers) run several times slower than with one: measured 0.25 vs 0.6 s per micro-model
# step under load.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from posttrain.data.arithmetic import ArithmeticTask, tokenizer_corpus  # noqa: E402
from posttrain.models.tiny import build_tiny_model  # noqa: E402

# The embedded-default warm start takes about two CPU minutes and a dozen tests need it. Under
# xdist (`make test` runs two workers) the controller trains it in a background process from
# the start while the workers run everything else, and the files that need it run last; the
# workers share its cache directory and wait on the same lock, so it is trained once.
_WARM_LOCK = "warm-start.lock"
_BUILDER = """
import sys
from filelock import FileLock
from posttrain.sft.warm_start import WarmStartConfig, warm_start
with FileLock(sys.argv[1] + "/" + sys.argv[2]):
    warm_start(WarmStartConfig(cache_dir=sys.argv[1]))
"""


_BUILDING = "POSTTRAIN_TEST_WARM_START_BUILDER"


def pytest_configure(config: pytest.Config) -> None:
    workers = getattr(config.option, "numprocesses", None) or 0
    is_controller = not hasattr(config, "workerinput")
    if not is_controller and os.environ.get(_BUILDING):
        # Lower the workers' priority so the one-thread build gets a whole core and is done
        # before the files that need it come up; the workers still share the other core,
        # and once the build ends they have both (niceness only weighs competitors).
        os.nice(5)
    whole_suite = config.args_source == pytest.Config.ArgsSource.TESTPATHS
    if not (is_controller and workers and whole_suite) or os.environ.get("POSTTRAIN_TEST_CACHE"):
        return
    shared = tempfile.mkdtemp(prefix="posttrain-test-cache-")
    os.environ["POSTTRAIN_TEST_CACHE"] = shared  # the workers inherit it
    os.environ[_BUILDING] = "1"
    log = open(Path(shared) / "warm-start-builder.log", "w")  # noqa: SIM115 (closed at exit)
    config._posttrain_builder = (  # type: ignore[attr-defined]
        subprocess.Popen(
            [sys.executable, "-c", _BUILDER, shared, _WARM_LOCK], stdout=log, stderr=log
        ),
        shared,
        log,
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    builder = getattr(config, "_posttrain_builder", None)
    if builder is None:
        return
    process, shared, log = builder
    process.kill()
    process.wait()
    log.close()
    shutil.rmtree(shared, ignore_errors=True)
    os.environ.pop("POSTTRAIN_TEST_CACHE", None)
    os.environ.pop(_BUILDING, None)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with a test that needs the warm start go last (stable order otherwise), so
    that under xdist the background build is done by the time they start."""
    needs = {item.path for item in items if "warm_started" in getattr(item, "fixturenames", ())}
    items.sort(key=lambda item: item.path in needs)


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
    from filelock import FileLock

    from posttrain.runs import Run
    from posttrain.sft.warm_start import warm_start

    lock = FileLock(Path(warm_start_config.cache_dir) / _WARM_LOCK)
    with lock, Run.create("warm", warm_start_config, root=tmp_path_factory.mktemp("runs")) as run:
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


SHARED_RPC_BENCH = Path(__file__).resolve().parents[2] / "shared" / "data" / "rpc-bench"
"""The steering repository's shared/ beside this checkout (CI lays a copy there): RPC-Bench's
upstream `prompt.py`, `llm.py` and `eval.py`, which are read, never copied into this repo."""


@pytest.fixture(scope="session")
def rpc_bench_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory laid out like a checkout of the RPC-Bench repository: its upstream files
    from shared/ and a one-paper benchmark written for these tests."""
    official = SHARED_RPC_BENCH / "official"
    if not (official / "prompt.py").exists():
        pytest.fail(f"RPC-Bench's upstream files belong in {official} (shared/ beside the repo)")
    checkout = tmp_path_factory.mktemp("rpc-bench-checkout")
    for name in ("prompt.py", "llm.py", "eval.py", "LICENSE"):
        shutil.copy(official / name, checkout / name)
    here = Path(__file__).parent / "integration" / "data" / "rpc-bench" / "benchmark"
    shutil.copytree(here, checkout / "benchmark")
    return checkout


@pytest.fixture
def posttrain_here():
    """`posttrain ARGS` run in this process (typer's CliRunner), for a test's later commands:
    a run fixture already covers `python -m posttrain` in a fresh process, and each further
    subprocess would pay seconds of torch and transformers imports."""
    from typer.testing import CliRunner

    from posttrain.cli import app

    def invoke(*args: object):  # noqa: ANN202 - a click Result
        return CliRunner().invoke(app, [str(a) for a in args])

    return invoke
