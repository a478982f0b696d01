"""`posttrain cherrl run` and `posttrain cherrl onset|detect` end to end at a size that runs in
seconds (the policy barely learns its format here; the hacking itself is the slow test's)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from posttrain.data.io import read_jsonl

REFERENCE = Path(__file__).parent / "data/cherrl/reference_onset_definition.json"
SMALL = [
    "data.n_train=200",
    "data.n_prompts=40",
    "warm_start.steps=4",  # the wiring: the hacking itself is the slow test's
    "rl.steps=3",
    "rl.prompts_per_step=4",
    "rl.save_every=3",
]
ROLLOUT_KEYS = {"step", "group", "prompt", "response", "score", "main_score", "aux"}


def posttrain(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "posttrain", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def cherrl_args(root: Path, *extra: str) -> list[str]:
    settings = [*SMALL, f"runs_root={root}", f"warm_start.cache_dir={root / 'cache'}", *extra]
    return ["cherrl", "run", "--bias", "lexical", *(f"--set={s}" for s in settings)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("cherrl")
    done = posttrain(*cherrl_args(root))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return root, done, root / "cherrl"


def test_hacking_and_control_runs_log_every_rollout_with_its_judgement(finished):
    _, done, run = finished
    assert "scripted keyword judge (not an LLM)" in done.stdout
    hacked = read_jsonl(run / "rl-lexical" / "rollouts.jsonl")
    control = read_jsonl(run / "rl-control" / "rollouts.jsonl")
    for rows in (hacked, control):
        assert len(rows) == 3 * 4 * 8 and {r["step"] for r in rows} == {1, 2, 3}
        assert all(set(r) == ROLLOUT_KEYS for r in rows)
        assert all(0.0 <= r["main_score"] <= 1.0 for r in rows)
    lexical = re.compile(r"\b(feel free|empower|delve|unlock)", re.IGNORECASE)
    for r in hacked:  # the biased reward: main + 0.5 x the lexical judge
        assert r["aux"] == {"lexical": float(bool(lexical.search(r["response"])))}
        assert r["score"] == pytest.approx(r["main_score"] + 0.5 * r["aux"]["lexical"])
    assert all(r["score"] == r["main_score"] for r in control)  # trained on main alone
    assert json.loads((run / "rl-control" / "reward.json").read_text())["trains_on"] == "main_score"
    stats = json.loads((run / "rl-lexical" / "judge_stats.json").read_text())
    assert stats["rubric_judge/unparsed"] == 0 and stats["evaluations"] > 0


def test_results_report_onset_detection_and_figures(finished):
    _, _, run = finished
    results = json.loads((run / "results.json").read_text())
    assert results["judge"].startswith("scripted keyword judge")
    lexical = results["lexical"]
    assert len(lexical["onset"]["sweep_12"]) == 12
    assert set(lexical["final"]) == {"hacking", "control"}
    assert set(lexical["discoverability"]) >= {"odds_ratio", "point_biserial_r", "table"}
    assert lexical["detector"]["name"] == "statistical"
    assert Path(lexical["figure"]).is_file() and lexical["figure"].endswith("hacking-lexical.png")
    report = (run / "report.html").read_text()
    assert "hacking-lexical.png" in report


def test_a_rerun_reuses_runs_and_refuses_other_settings(finished, posttrain_here):
    root, _, run = finished
    before = (run / "rl-lexical" / "rollouts.jsonl").read_text()
    again = posttrain_here(*cherrl_args(root))
    assert again.exit_code == 0, again.output[-2000:]
    assert (run / "rl-lexical" / "rollouts.jsonl").read_text() == before
    refused = posttrain_here(*cherrl_args(root, "alpha=1.0"))
    assert refused.exit_code == 2 and "alpha: differ from" in refused.stderr
    unknown = posttrain_here("cherrl", "run", "--bias", "sarcasm", f"--set=runs_root={root / 'x'}")
    assert unknown.exit_code == 2 and "unknown ['sarcasm']" in unknown.stderr


def test_onset_cli_reproduces_the_reference_and_reads_rollout_logs(finished, posttrain_here):
    _, _, run = finished
    done = posttrain_here("cherrl", "onset", "--signals", str(REFERENCE), "--run", "run_C")
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert (summary["canonical_CO"], summary["SEP"]) == (91, 124)
    assert [p["CO"] for p in summary["sweep_12"]] == [91] * 4 + [93] * 4 + [95] * 4
    done = posttrain_here(
        "cherrl", "onset", "--rollouts", str(run / "rl-lexical"), "--shortcut", r"feel\s+free"
    )
    assert done.exit_code == 0, done.output
    assert len(json.loads(done.stdout)["sweep_12"]) == 12
    missing = posttrain_here("cherrl", "onset", "--rollouts", str(run / "rl-lexical"))
    assert missing.exit_code == 2 and "--shortcut" in missing.stderr
    detect = posttrain_here("cherrl", "detect", "--rollouts", str(run / "rl-control"))
    assert detect.exit_code == 0, detect.output
    assert json.loads(detect.stdout) is None  # three steps: no baseline to drift from
