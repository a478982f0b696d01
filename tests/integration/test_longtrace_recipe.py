"""`posttrain longtrace run` (the `make demo` recipe) end to end at a size that runs in seconds."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import Result

from posttrain.data.io import read_jsonl

SMALL = [
    "data.n=48",
    "data.n_test=12",
    "model_size=nano",
    "vocab_size=1024",
    # A small world: enough questions for the split at this size, and fast to index and
    # tokenize (the demo's 360-entity world costs this test about half its time).
    "data.world.countries=4",
    "data.world.cities_per_country=3",
    "data.world.people=50",
    "data.world.organisations=10",
    "data.world.works=15",
    "warm_start.steps=4",
    "warm_start.batch_size=8",
    "rl.steps=2",
    "rl.eval_every=1",
    "rl.eval_size=6",
    "rl.prompts_per_step=2",
    "rl.rollout.n=2",
    "rl.rollout.max_tokens=6",
    "eval_max_tokens=6",
    "seeds=[0, 1]",
]


def longtrace_run(tmp_path, *extra: str) -> subprocess.CompletedProcess:
    flags = [f"--set={item}" for item in [*SMALL, f"runs_root={tmp_path / 'runs'}", *extra]]
    return subprocess.run(
        [sys.executable, "-m", "posttrain", "longtrace", "run", *flags],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "POSTTRAIN_CACHE": str(tmp_path / "cache")},
    )


def longtrace_here(tmp_path, monkeypatch, *extra: str) -> Result:
    """`longtrace_run` in this process: the run fixture already covers `python -m posttrain`,
    and each further subprocess would pay seconds of torch and transformers imports."""
    from typer.testing import CliRunner

    from posttrain.cli import app

    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path / "cache"))
    flags = [f"--set={item}" for item in [*SMALL, f"runs_root={tmp_path / 'runs'}", *extra]]
    return CliRunner().invoke(app, ["longtrace", "run", *flags])


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("longtrace-run")
    done = longtrace_run(tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return tmp_path, done, tmp_path / "runs" / "longtrace"


def test_every_policy_is_evaluated_under_every_setting(finished):
    _, done, run = finished
    evaluations = read_jsonl(run / "evaluation.jsonl")
    pairs = {(e["policy"], e["setting"]) for e in evaluations}
    policies = {"bm25-chain-reader", "warm-start-seed0", "warm-start-seed1"}
    policies |= {f"{v}-seed{s}" for v in ("outcome", "rubric") for s in (0, 1)}
    assert pairs == {(p, s) for p in policies for s in ("tiered", "random")}
    assert len(evaluations) == len(pairs)
    saved = json.loads((run / "results.json").read_text())
    results = saved["table"]
    assert set(results) == {
        f"{p} / {s}"
        for p in ("bm25-chain-reader", "warm-start", "rl-outcome", "rl-rubric")
        for s in ("tiered", "random")
    }
    for summary in results.values():
        assert set(summary) == {"all", "hops=2", "hops=3"}
        assert summary["all"]["n"] == 12 and 0.0 <= summary["all"]["accuracy"] <= 1.0
    assert results["rl-outcome / tiered"]["all"]["seeds"] == 2
    assert results["warm-start / random"]["all"]["seeds"] == 2  # one warm start per seed
    # rubric against outcome, per setting and metric: over seeds and over questions.
    comparisons = saved["comparisons"]
    assert {(c["setting"], c["metric"]) for c in comparisons} == {
        (s, m) for s in ("tiered", "random") for m in ("accuracy", "rubric recall (all answers)")
    }
    for c in comparisons:
        assert (c["baseline"], c["treatment"]) == ("rl-outcome", "rl-rubric")
        assert c["welch"]["n"] == [2, 2] and c["bootstrap"]["n"] == [12, 2]
        assert c["bootstrap"]["ci_low"] <= c["bootstrap"]["difference"] <= c["bootstrap"]["ci_high"]
    assert "Variant differences" in done.stdout
    # The printed table and the per-row responses behind it.
    assert "LongTraceRL held-out results" in done.stdout and "rl-rubric" in done.stdout
    assert len(read_jsonl(run / "responses" / "rubric-seed1.random.jsonl")) == 12


def test_both_variants_train_the_same_steps_on_their_own_reward(finished):
    _, _, run = finished
    for variant, reward in (("outcome", "longtrace_outcome"), ("rubric", "longtrace_rubric")):
        metrics = read_jsonl(run / f"rl-{variant}-seed0" / "metrics.jsonl")
        steps = [m for m in metrics if "reward" in m]
        assert [m["step"] for m in steps] == [1, 2]
        assert all(f"rewards/{reward}/mean" in m for m in steps)
        # Accuracy and recall are monitored in every variant (weight 0), for the curves.
        assert "eval_rewards/longtrace_outcome/mean" in metrics[-1]
        assert "eval_rewards/longtrace_rubric_recall/mean" in metrics[-1]
        assert (run / f"rl-{variant}-seed0" / "checkpoints" / "final" / "config.json").exists()
    assert (run / "curves.png").stat().st_size > 1000
    report = (run / "report.html").read_text()
    assert "<h2>curves.png</h2><img src='data:image/png" in report
    assert "href='rl-rubric-seed1/report.html'" in report
    assert (run / "rl-rubric-seed1" / "report.html").exists()
    # Each seed has its own warm start (initial weights and SFT order), cached apart.
    starts = [(run / f"warm-start-seed{s}" / "checkpoints" / "final").resolve() for s in (0, 1)]
    assert starts[0] != starts[1]
    weights = [(path / "model.safetensors").read_bytes() for path in starts]
    assert weights[0] != weights[1]
    stats = json.loads((run / "data" / "stats.json").read_text())
    assert stats["questions"] == {"train": 48, "test": 12}


def test_a_rerun_reuses_every_finished_stage(finished, monkeypatch):
    tmp_path, _, run = finished
    before = (run / "evaluation.jsonl").read_text()
    final = run / "rl-rubric-seed1" / "checkpoints" / "final" / "model.safetensors"
    stamp = final.stat().st_mtime_ns
    done = longtrace_here(tmp_path, monkeypatch)
    assert done.exit_code == 0, done.output[-3000:]
    assert "(cache)" in done.stdout  # the warm start came from the cache
    assert (run / "evaluation.jsonl").read_text() == before
    assert final.stat().st_mtime_ns == stamp


def test_a_rerun_with_other_settings_is_refused_and_changes_nothing(finished, monkeypatch):
    tmp_path, _, run = finished
    config = (run / "config.yaml").read_text()
    done = longtrace_here(tmp_path, monkeypatch, "data.n=40", "rl.steps=3")
    assert done.exit_code == 2
    assert "data.n, rl.steps: differ from" in done.stderr and "run_name" in done.stderr
    done = longtrace_here(tmp_path, monkeypatch, "variants={outcome: longtrace_rubric}")
    assert done.exit_code == 2 and "variants.outcome" in done.stderr
    assert (run / "config.yaml").read_text() == config


def test_bad_settings_are_named(tmp_path):
    # Refused before any work starts, so in-process: a subprocess would pay seconds of imports.
    from typer.testing import CliRunner

    from posttrain.cli import app

    for setting, named in [
        ("variants={}", "variants"),
        ("data.eval_settings=[nearby]", "nearby"),
        ("judge=no-such-judge", "judge: unknown model spec 'no-such-judge'"),
    ]:
        flags = [f"--set={item}" for item in [*SMALL, f"runs_root={tmp_path / 'runs'}", setting]]
        result = CliRunner().invoke(app, ["longtrace", "run", *flags])
        assert result.exit_code == 2 and named in result.stderr, (setting, result.output)


def test_the_demo_config_file_states_the_defaults():
    from pathlib import Path

    from posttrain.config import load_config, to_dict
    from posttrain.recipes.longtrace import LongTraceRunConfig

    path = Path(__file__).parents[2] / "configs" / "longtrace" / "tiny.yaml"
    assert to_dict(load_config(LongTraceRunConfig, path)) == to_dict(LongTraceRunConfig())
