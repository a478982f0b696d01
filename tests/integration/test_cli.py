"""The `posttrain` command as a user runs it: a real subprocess, real files, real server."""

import json
import subprocess
import sys
from pathlib import Path

from transformers import AutoModelForSequenceClassification

COMMANDS = [
    "tiny-model",
    "warm-start",
    "serve",
    "serve-rm",
    "report",
    "quickstart",
    "demo",
    "rl",
    "rm-bench",
    "rm",
    "ifeval",
    "longtrace",
    "storyreward",
    "wildreward",
    "indexcache",
    "cherrl",
    "rpc",
    "sustain",
    "sft",
]
TINY_RL = Path(__file__).parents[2] / "configs" / "rl" / "tiny.yaml"


def posttrain(*args, check=True):
    result = subprocess.run(
        [sys.executable, "-m", "posttrain", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_help_lists_every_command():
    out = posttrain("--help").stdout
    for command in COMMANDS:
        assert command in out


def test_tiny_model_from_a_corpus_file(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(f"the {i} cats sat on {i + 1} mats" for i in range(200)))
    out = posttrain(
        "tiny-model",
        "--out",
        tmp_path / "rm",
        "--corpus",
        corpus,
        "--size",
        "nano",
        "--vocab-size",
        "300",
        "--kind",
        "seq-cls",
    ).stdout
    assert "parameters" in out
    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "rm").num_labels == 1


def test_bad_inputs_are_named(tmp_path):
    result = posttrain("warm-start", "--set", "stepz=3", check=False)
    assert result.returncode == 2
    assert "unknown key 'stepz'; did you mean 'steps'" in result.stderr
    result = posttrain("warm-start", "--set", "task.max_operand=ten", check=False)
    assert "task.max_operand: expected int, got 'ten'" in result.stderr
    result = posttrain("tiny-model", "--out", tmp_path / "m", "--size", "huge", check=False)
    assert result.returncode != 0 and "huge" not in result.stdout
    assert "--size" in result.stderr


def test_quickstart_serves_the_warm_model_and_reports(warm_started, warm_start_config, tmp_path):
    result, _ = warm_started
    out = posttrain(
        "quickstart",
        "--set",
        f"warm_start.cache_dir={warm_start_config.cache_dir}",
        "--set",
        f"runs_root={tmp_path}",
        "--set",
        "questions=12",
    ).stdout
    run_dir = tmp_path / "quickstart"
    summary = json.loads((run_dir / "results.json").read_text())
    assert summary["model_dir"] == str(result.model_dir)  # reused from the cache
    assert summary["questions"] == 12 and summary["answered_by"] == "openai:tiny-arithmetic"
    assert 0.0 <= summary["served_accuracy"] <= 1.0
    assert "accuracy over HTTP" in out and str(run_dir) in out
    assert (run_dir / "report.html").read_text().count("<svg ") >= 1
    assert "POST /v1/chat/completions" in (run_dir / "server.log").read_text()

    # `posttrain report` re-renders the same run.
    (run_dir / "report.html").unlink()
    posttrain("report", run_dir)
    assert (run_dir / "report.html").exists()


def test_rl_command_trains_and_resumes(warm_started, warm_start_config, tmp_path):
    args = [
        "rl",
        "configs/rl/tiny.yaml",
        "--set",
        f"warm_start.cache_dir={warm_start_config.cache_dir}",
        "--set",
        f"runs_root={tmp_path}",
        "--set",
        "prompts_per_step=4",
        "--set",
        "eval_size=20",
        "--set",
        "eval_every=2",
        "--set",
        "save_every=2",
    ]
    posttrain(*args, "--set", "steps=2")
    out = posttrain(*args, "--set", "steps=4").stdout  # continues from checkpoints/step-000002
    assert '"eval_rewards/exact_match/mean"' in out
    steps = [json.loads(line)["step"] for line in (tmp_path / "rl-tiny" / "metrics.jsonl").open()]
    assert steps == [0, 1, 2, 3, 4]
    assert (tmp_path / "rl-tiny" / "checkpoints" / "final" / "config.json").exists()
    assert (tmp_path / "rl-tiny" / "report.html").exists()
    bad = posttrain("rl", TINY_RL, "--set", "loss.aggregation=mean", check=False)
    assert bad.returncode == 2 and "loss.aggregation: expected one of" in bad.stderr
