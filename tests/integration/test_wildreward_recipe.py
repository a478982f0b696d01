"""`posttrain wildreward run` end to end at a size that runs in seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from posttrain.data.io import read_jsonl

SMALL = [
    "conversations=300",
    "users=30",
    "scaling_conversations=200",
    "user_counts=[5, 20]",
    "reward_model.model_size=nano",
    "reward_model.epochs=1",
    "policy_warm_start.steps=4",  # the wiring; no test reads the policy's quality
    "policy_rl.steps=2",
    "policy_rl.eval_every=1",
    "policy_rl.eval_size=10",
    "policy_rl.prompts_per_step=2",
    "policy_prompts=40",
]
MODELS = {"thresholds", "coral", "regression", "bradley_terry"}


def wildreward_run(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    flags = [f"--set={item}" for item in [*SMALL, f"runs_root={tmp_path}", *extra]]
    return subprocess.run(
        [sys.executable, "-m", "posttrain", "wildreward", "run", *flags],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", "POSTTRAIN_CACHE": str(tmp_path / "cache")},
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("wildreward")
    done = wildreward_run(tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return tmp_path, done, tmp_path / "wildreward"


def test_every_reward_model_is_compared_on_one_test_split(finished):
    _, done, run = finished
    results = json.loads((run / "results.json").read_text())
    assert set(results["reward_models"]) == MODELS
    test_rows = len(read_jsonl(run / "data" / "feedback" / "test.jsonl"))
    for name, result in results["reward_models"].items():
        assert result["n"] == test_rows, name
        assert 0.0 <= result["ece"] <= 1.0 and result["rmse"] > 0.0
    # The ordinal heads give their own probabilities; the others are calibrated isotonically.
    assert results["reward_models"]["thresholds"]["probability_source"] == "model"
    assert results["reward_models"]["bradley_terry"]["probability_source"] == "isotonic"
    assert "WildReward" in done.stdout and "bradley_terry" in done.stdout
    for figure in ("margin_accuracy.png", "reliability.png", "scaling.png", "online_dpo.png"):
        assert (run / figure).stat().st_size > 1000


def test_scaling_points_train_on_equal_row_counts(finished):
    _, _, run = finished
    points = json.loads((run / "results.json").read_text())["scaling"]
    assert [p["users"] for p in points] == [5, 20]
    assert len({p["train_rows"] for p in points}) == 1
    for users in (5, 20):
        rows = read_jsonl(run / f"scaling-users{users}" / f"train.{points[0]['train_rows']}.jsonl")
        assert len({r["user_id"] for r in rows}) <= users


def test_online_dpo_logs_the_reward_model_and_the_oracle(finished):
    _, _, run = finished
    records = read_jsonl(run / "online-dpo" / "metrics.jsonl")
    evals = [r for r in records if "eval_rewards/reward_model/mean" in r]
    assert [r["step"] for r in evals] == [0, 1, 2]
    assert all(1.0 <= r["eval_rewards/wild_reply_quality/mean"] <= 5.0 for r in evals)
    assert (run / "online-dpo" / "checkpoints" / "final" / "config.json").exists()


def test_a_rerun_reuses_every_stage(finished, monkeypatch, posttrain_here):
    tmp_path, _, run = finished
    final = run / "rm-thresholds" / "final" / "model.safetensors"
    stamp = final.stat().st_mtime_ns
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))
    flags = [f"--set={item}" for item in [*SMALL, f"runs_root={tmp_path}"]]
    done = posttrain_here("wildreward", "run", *flags)
    assert done.exit_code == 0, done.output[-3000:]
    assert final.stat().st_mtime_ns == stamp


def test_train_and_eval_commands_on_the_pipeline_output(finished, tmp_path, posttrain_here):
    _, _, run = finished
    data = run / "data" / "feedback"
    flags = ["--set", "model_size=nano", "--set", "steps=3", "--set", "head=coral"]
    done = posttrain_here("wildreward", "train", "--data", data, "--out", tmp_path / "rm", *flags)
    assert done.exit_code == 0, done.output[-2000:]
    model = tmp_path / "rm" / "final"
    done = posttrain_here("wildreward", "eval", "--model", model, "--data", data)
    assert done.exit_code == 0, done.output[-2000:]
    shown = json.loads(done.stdout)
    assert shown["n"] == len(read_jsonl(data / "test.jsonl"))
    assert json.loads((model / "results.json").read_text())["ece"] == shown["ece"]
    done = posttrain_here("wildreward", "eval", "--model", tmp_path, "--data", data)
    assert done.exit_code == 2


def test_bad_settings_are_named(tmp_path):
    # Refused before any work starts, so in-process: a subprocess would pay seconds of imports.
    from typer.testing import CliRunner

    from posttrain.cli import app

    for setting, named in [
        ("policy_rl.loss.kind=ppo", "online_dpo"),
        ("reward_model.head=cubic", "head"),
    ]:
        flags = [f"--set={item}" for item in [*SMALL, f"runs_root={tmp_path}", setting]]
        result = CliRunner().invoke(app, ["wildreward", "run", *flags])
        assert result.exit_code == 2 and named in result.stderr, (setting, result.output)


def test_the_demo_config_file_states_the_defaults():
    from posttrain.config import load_config, to_dict
    from posttrain.recipes.wildreward import WildRewardRunConfig

    path = Path(__file__).parents[2] / "configs" / "wildreward" / "tiny.yaml"
    assert to_dict(load_config(WildRewardRunConfig, path)) == to_dict(WildRewardRunConfig())
