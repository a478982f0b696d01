"""CHERRL on the real HealthBench prompts: a prompt longer than the policy's context is a
one-line config error before any training, or is dropped / shortened on request; a tiny
policy with a large enough context trains on the real prompts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from posttrain.data.io import read_jsonl
from posttrain.recipes.cherrl import fit_prompts

# The real HealthBench validation parquet (500 conversations) lives in the steering
# repository's shared/ beside this checkout (CI lays a copy there); it is read, not copied in.
HEALTHBENCH = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "cherrl" / "healthbench_val.parquet"
)


@pytest.fixture
def healthbench() -> Path:
    if not HEALTHBENCH.is_file():
        pytest.fail(f"the HealthBench parquet belongs at {HEALTHBENCH} (shared/ beside the repo)")
    return HEALTHBENCH


SMALL = [
    "data.n_train=200",
    "data.n_prompts=40",
    "warm_start.steps=5",
    "rl.steps=2",
    "rl.prompts_per_step=2",
    "rl.rollout.n=4",
    "rl.rollout.max_tokens=16",
    "rl.save_every=2",
]


class WordTokenizer:
    """A chat template that is one token per word of each message, plus one per message."""

    def apply_chat_template(self, messages, **_: object) -> list[int]:
        return [0 for m in messages for _ in range(1 + len(m["content"].split()))]


def _turns(*words: int) -> list[dict]:
    roles = ["user", "assistant"]
    return [{"role": roles[i % 2], "content": "w " * n} for i, n in enumerate(words)]


def test_fit_prompts_modes() -> None:
    rows = [
        {"prompt": "short question", "rubrics": []},
        {"prompt": _turns(10, 10, 3), "rubrics": []},
        {"prompt": _turns(30), "rubrics": []},
    ]
    tokenizer = WordTokenizer()
    kept, too_long = fit_prompts(rows, tokenizer, 8, "error")
    assert too_long == [(2, 26), (3, 31)] and kept == rows[:1]
    assert fit_prompts(rows, tokenizer, 8, "drop") == (rows[:1], too_long)
    kept, _ = fit_prompts(rows, tokenizer, 8, "truncate_oldest_turns")
    # The oldest user turn and the assistant reply after it go; the last turn never fits.
    assert [r["prompt"] for r in kept] == ["short question", _turns(3)]
    system = [{"role": "system", "content": "be brief"}]
    kept, _ = fit_prompts(
        [{"prompt": system + _turns(10, 10, 3)}], tokenizer, 8, "truncate_oldest_turns"
    )
    assert kept[0]["prompt"] == system + _turns(3)


def posttrain(root: Path, *settings: str) -> subprocess.CompletedProcess:
    every = [*SMALL, f"runs_root={root}", f"warm_start.cache_dir={root / 'cache'}", *settings]
    return subprocess.run(
        [sys.executable, "-m", "posttrain", "cherrl", "run", "--bias", "lexical",
         *(f"--set={s}" for s in every)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip


def test_long_healthbench_prompts_are_a_config_error_before_training(
    tmp_path: Path, healthbench: Path
) -> None:
    done = posttrain(tmp_path, f"prompts={healthbench}")
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    message = done.stderr.strip()
    assert "Traceback" not in done.stderr and message.count("\n") == 0
    assert "prompts:" in message and "healthbench_val.parquet" in message
    assert "context length of 256" in message and "long_prompts" in message
    assert "the longest, prompt " in message and "rl.rollout.max_tokens=16" in message
    assert not (tmp_path / "cherrl" / "warm-start").exists()  # nothing trained


@pytest.mark.slow
def test_a_tiny_policy_trains_on_the_real_healthbench_prompts(
    tmp_path: Path, healthbench: Path
) -> None:
    done = posttrain(
        tmp_path,
        f"prompts={healthbench}",
        "max_positions=512",
        "long_prompts=truncate_oldest_turns",
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    run = tmp_path / "cherrl"
    fitted = read_jsonl(run / "rl-prompts.jsonl")
    assert 400 < len(fitted) <= 500
    assert "prompts fit in 496 tokens" in done.stdout
    rollouts = read_jsonl(run / "rl-lexical" / "rollouts.jsonl")
    assert {r["step"] for r in rollouts} == {1, 2} and len(rollouts) == 2 * 2 * 4
    last_turns = {m["content"] for r in fitted for m in r["prompt"] if m["role"] == "user"}
    assert all(r["prompt"] in last_turns for r in rollouts)  # the real prompts, not the demo's
