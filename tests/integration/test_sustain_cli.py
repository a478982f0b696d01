"""`posttrain sustain run` as a user runs it: scripted solver on all domains, resume, null case."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from posttrain.eval.sustain.scripted import ORACLE_MARK


def sustain(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "posttrain", "sustain", "run", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def _lines(path) -> list[str]:
    return path.read_text().splitlines()


def test_scripted_solver_on_all_domains_then_resume(tmp_path) -> None:
    out = tmp_path / "run"
    args = [
        "--model",
        "scripted:sustain-solver",
        "--domains",
        "math,qa,code",
        "--out",
        str(out),
        "--n",
        "4",
        "--seed",
        "1",
    ]
    first = sustain(*args)
    assert first.returncode == 0, first.stderr
    assert "SustainScore" in first.stdout and "oracle code answers" in first.stdout
    results = json.loads((out / "results.json").read_text())
    assert "oracle code answers" in results["model"]
    # Which sandbox ran the 4 + 12 code programs is recorded and printed.
    backend = results["sandbox"]["backend"]
    assert results["sandbox"]["code_runs_by_sandbox"] == {backend: 16}
    assert f"code ran in the {backend} sandbox" in first.stdout
    for domain in ("math", "qa", "code"):
        block = results["domains"][domain]
        assert block["n_items"] == 4 and block["n_solved"] == 4
        assert block["n_variants"] == 12 and 0.0 <= block["sustain_score"] <= 1.0
        assert set(block["by_k"]) == {"1", "2", "3"}
    baseline, constrained = _lines(out / "baseline.jsonl"), _lines(out / "constrained.jsonl")
    assert len(baseline) == 12 and len(constrained) == 36
    code = [json.loads(line) for line in baseline if '"code"' in line]
    assert all(ORACLE_MARK in r["answer"] and r["model"] == "scripted:sustain-solver" for r in code)
    for name in ("report.html", "sustain_score.png", "satisfaction.png"):
        assert (out / name).stat().st_size > 0
    before = {p: p.stat().st_mtime_ns for p in (out / "baseline.jsonl", out / "constrained.jsonl")}
    second = sustain(*args)
    assert second.returncode == 0, second.stderr
    assert _lines(out / "baseline.jsonl") == baseline
    assert _lines(out / "constrained.jsonl") == constrained
    assert {p: p.stat().st_mtime_ns for p in before} == before  # nothing appended: no calls
    assert json.loads((out / "results.json").read_text()) == results


def test_tiny_local_model_reports_null_and_bad_input_is_named(tmp_path, tiny_model_dir) -> None:
    out = tmp_path / "tiny"
    done = sustain(
        "--model",
        str(tiny_model_dir),
        "--domains",
        "math",
        "--out",
        str(out),
        "--n",
        "2",
        "--max-tokens",
        "8",
    )
    assert done.returncode == 0, done.stderr
    block = json.loads((out / "results.json").read_text())["domains"]["math"]
    assert block["n_solved"] == 0 and block["sustain_score"] is None
    bad = sustain("--domains", "math,poetry", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "unknown domain" in bad.stderr and "poetry" in bad.stderr
