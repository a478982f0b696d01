"""`posttrain storyreward run` end to end at a size that runs in seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from posttrain.data.io import read_jsonl

SMALL = [
    "world.n_train_premises=40",
    "world.n_test_premises=12",
    "world.pool_size=4",
    "reward_model.model_size=nano",
    "reward_model.steps=4",  # the wiring: scores only need to differ, not to be good
    "best_of_n=[1, 2, 4]",
]
SCORERS = {"random", "length", "vocabulary", "untrained-rm", "storyreward-rm"}


def storyreward_run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    flags = [f"--set={item}" for item in [*SMALL, f"runs_root={tmp_path}", *extra]]
    return subprocess.run(
        [sys.executable, "-m", "posttrain", "storyreward", "run", *flags],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("storyreward")
    done = storyreward_run(tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return tmp_path, done, tmp_path / "storyreward"


def test_every_scorer_is_benchmarked_and_selects(finished):
    _, done, run = finished
    results = json.loads((run / "results.json").read_text())
    assert set(results["bench"]) == SCORERS and set(results["best_of_n"]) == SCORERS
    for name, bench in results["bench"].items():
        assert bench["n"] == 12 and bench["random_baseline"] == 0.25
        assert 0.0 <= bench["accuracy"] <= 1.0
        assert len(read_jsonl(run / "bench" / name / "scores.jsonl")) == 12
        assert set(bench["pairwise_per_dimension"]) <= {
            "coherence",
            "creativity",
            "characterization",
            "fluency",
            "relevance",
        }
        assert [r["n"] for r in results["best_of_n"][name].values()] == [1, 2, 4]
    # Best-of-1 is no choice at all: every scorer gets the first candidate of each pool.
    assert len({b["n=1"]["selected_unflawed"] for b in results["best_of_n"].values()}) == 1
    assert "StoryReward" in done.stdout and "storyreward-rm" in done.stdout


def test_reward_model_trained_on_training_premises_only(finished):
    _, _, run = finished
    train = {r["premise_id"] for r in read_jsonl(run / "data" / "pairs.train.jsonl")}
    test = {r["premise_id"] for r in read_jsonl(run / "data" / "bench.test.jsonl")}
    pools = {r["id"] for r in read_jsonl(run / "data" / "pools.test.jsonl")}
    assert train and not train & test and pools == test
    summary = json.loads((run / "reward-model" / "final" / "reward_model.json").read_text())
    assert summary["n_train"] == 40 * 4
    assert summary["config"]["train_file"].endswith("pairs.train.jsonl")
    report = (run / "report.html").read_text()
    assert "bench_dimensions.png" in report and "best_of_n.png" in report


def test_a_rerun_reuses_the_trained_model_and_the_scores(finished):
    tmp_path, _, run = finished
    final = run / "reward-model" / "final" / "model.safetensors"
    stamp = final.stat().st_mtime_ns
    scores = (run / "bench" / "storyreward-rm" / "scores.jsonl").read_text()
    # In this process: the run fixture already covers `python -m posttrain`, and a second
    # subprocess would pay seconds of torch and transformers imports.
    from typer.testing import CliRunner

    from posttrain.cli import app

    flags = [f"--set={item}" for item in [*SMALL, f"runs_root={tmp_path}"]]
    done = CliRunner().invoke(app, ["storyreward", "run", *flags])
    assert done.exit_code == 0, done.output[-3000:]
    assert final.stat().st_mtime_ns == stamp
    assert (run / "bench" / "storyreward-rm" / "scores.jsonl").read_text() == scores


def test_bad_settings_are_named(tmp_path):
    # Refused before any work starts, so in-process: a subprocess would pay seconds of imports.
    from typer.testing import CliRunner

    from posttrain.cli import app

    for setting, named in [
        ("best_of_n=[1, 16]", "pool_size"),
        ("world.n_rejected=0", "n_rejected"),
    ]:
        flags = [f"--set={item}" for item in [*SMALL, f"runs_root={tmp_path}", setting]]
        result = CliRunner().invoke(app, ["storyreward", "run", *flags])
        assert result.exit_code == 2 and named in result.stderr, (setting, result.output)


def test_the_demo_config_file_states_the_defaults():
    from posttrain.config import load_config, to_dict
    from posttrain.recipes.storyreward import StoryRewardRunConfig

    path = Path(__file__).parents[2] / "configs" / "storyreward" / "tiny.yaml"
    assert to_dict(load_config(StoryRewardRunConfig, path)) == to_dict(StoryRewardRunConfig())
