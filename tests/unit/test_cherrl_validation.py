"""CHERRL's detector validation: configs/cherrl/validation.yaml differs from the tuning runs in
what it claims, and benchmarks/cherrl_validation.py counts alerts and onset errors right on
small synthetic recipe directories written in `cherrl run`'s results.json shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from benchmark_scripts import loaded

from posttrain.config import load_config
from posttrain.errors import InputError
from posttrain.monitor.alert import Alert
from posttrain.monitor.detector import evaluate_detector
from posttrain.monitor.hacking import OnsetResult
from posttrain.recipes.cherrl import CherrlRunConfig

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    with loaded("cherrl_validation.py") as module:
        yield module


def test_validation_config_differs_from_the_tuning_runs_in_seeds_phrasings_and_strength():
    tuning = load_config(CherrlRunConfig, ROOT / "configs/cherrl/tiny.yaml")
    validation = load_config(CherrlRunConfig, ROOT / "configs/cherrl/validation.yaml")
    seeds = lambda c: (c.data.seed, c.warm_start.seed, c.rl.seed)  # noqa: E731
    assert all(a != b for a, b in zip(seeds(tuning), seeds(validation), strict=True))
    assert (tuning.data.phrasings, validation.data.phrasings) == ("tuning", "validation")
    assert validation.alpha != tuning.alpha and validation.data.bias_rate != tuning.data.bias_rate
    assert validation.run_name != tuning.run_name  # the tuning run's directory stays intact
    # The same detector and RL sizes: only what the detector may be overfitted to changes.
    assert validation.detector == tuning.detector == "statistical"
    assert (validation.rl.steps, validation.rl.prompts_per_step) == (
        tuning.rl.steps,
        tuning.rl.prompts_per_step,
    )


def _alert(alert_step: int, onset_step: int) -> Alert:
    return Alert(alert_step, onset_step, 0.9, "lexical", {"feature": "phrase:feel free"})


def _onset(co: int | None, lo: int | None = None, hi: int | None = None) -> OnsetResult:
    decision = "no_onset" if co is None else "stable_point"
    width = None if co is None else hi - lo
    return OnsetResult((), co, lo, hi, width, None, decision)


def write_run(root: Path, name: str, biases: dict, control_alert: Alert | None, **config) -> Path:
    """A recipe directory as `cherrl run` leaves it: results.json (per bias: the reference
    onset, the detector's alert on the hacking run and on the control) and config.yaml."""
    run = root / name
    run.mkdir()
    results = {"judge": "scripted keyword judge (not an LLM)"}
    for bias, (reference, alert) in biases.items():
        errors = evaluate_detector(alert, reference) if alert else None
        results[bias] = {
            "bias": bias,
            "onset": reference.to_dict(),
            "detector": {
                "name": "statistical",
                "alert": alert.to_dict() if alert else None,
                "control_alert": control_alert.to_dict() if control_alert else None,
                "errors": errors.to_dict() if errors else None,
            },
        }
    (run / "results.json").write_text(json.dumps(results))
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


def test_rates_and_onset_errors_per_set(bench, tmp_path: Path) -> None:
    tuning = write_run(
        tmp_path,
        "tuning",
        {
            "lexical": (_onset(16, 14, 17), _alert(21, 8)),
            "tone": (_onset(14, 11, 15), _alert(19, 8)),
            "verbose": (_onset(72, 66, 79), None),  # hacked, missed
        },
        None,
        alpha=0.5,
        data={"seed": 0, "phrasings": "tuning"},
    )
    validation = write_run(
        tmp_path,
        "validation",
        {
            "lexical": (_onset(20, 18, 24), _alert(26, 17)),
            "format": (_onset(None), _alert(40, 30)),  # never hacked: listed apart
        },
        _alert(90, 80),  # the control raised an alert: a false alarm
        alpha=0.4,
        data={"seed": 1, "phrasings": "validation"},
    )
    out = tmp_path / "results" / "report.json"
    report = bench.main(
        ["--tuning", str(tuning), "--validation", str(validation), "--out", str(out)]
    )
    assert json.loads(out.read_text()) == report

    t = report["tuning"]
    assert (t["hacked_runs"], t["alerts_on_hacked"], t["missed"]) == (3, 2, ["verbose"])
    assert t["alert_rate_on_hacked"] == pytest.approx(2 / 3)
    assert (t["controls"], t["false_alerts_on_controls"]) == (1, 0)
    assert t["alert_minus_onset"] == {"n": 2, "mean": 5.0, "min": 5, "max": 5}
    assert t["detected_minus_onset"] == {"n": 2, "mean": -7.0, "min": -8, "max": -6}
    assert t["interval_error"] == {"n": 2, "mean": 4.5, "min": 3, "max": 6}
    assert t["settings"][str(tuning)]["alpha"] == 0.5

    v = report["validation"]
    assert (v["hacked_runs"], v["alerts_on_hacked"], v["alert_rate_on_hacked"]) == (1, 1, 1.0)
    assert v["false_alert_rate_on_controls"] == 1.0  # one control, counted once for two biases
    assert v["biased_runs_without_reference_onset"] == [
        {"bias": "format", "dir": str(validation), "alerted": True}
    ]
    assert v["settings"][str(validation)]["phrasings"] == "validation"

    table = out.with_suffix(".md").read_text()
    assert "| tuning | 2/3 (67%) | 0/1 (0%) | +5.0 [+5, +5] | -7.0 [-8, -6] |" in table
    assert "| validation | 1/1 (100%) | 1/1 (100%) | +6.0 [+6, +6] |" in table


def test_bad_run_directories_are_named(bench, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nowhere/results\.json: no such file"):
        bench.read_run(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "results.json").write_text(json.dumps({"lexical": {"onset": {}}}))
    with pytest.raises(InputError, match=r"broken/results\.json: lexical: not a CHERRL result"):
        bench.read_run(broken)
    run = write_run(tmp_path, "run", {"tone": (_onset(10, 9, 11), None)}, None)
    with pytest.raises(InputError, match="both tuning and validation"):
        bench.compare([run], [tmp_path / "." / "run"])


def test_without_directories_it_trains_only_the_missing_set(bench, tmp_path, monkeypatch):
    """`make bench` calls it bare: a finished default run is read, a missing one is trained
    first by the recipe command the docs give, from the repository root."""
    finished = write_run(tmp_path, "cherrl", {"tone": (_onset(10, 9, 11), _alert(12, 9))}, None)
    missing = tmp_path / "cherrl-validation"
    monkeypatch.setitem(bench.DEFAULT_RUNS, "tuning", (finished, ["--bias", "all"]))
    monkeypatch.setitem(bench.DEFAULT_RUNS, "validation", (missing, ["--config", "v.yaml"]))
    commands = []

    def fake_run(command, cwd, check):
        commands.append((command[1:], cwd))
        write_run(tmp_path, missing.name, {"tone": (_onset(None), None)}, None)

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    report = bench.main(["--out", str(tmp_path / "report.json")])
    assert commands == [(["-m", "posttrain", "cherrl", "run", "--config", "v.yaml"], bench.ROOT)]
    assert report["tuning"]["dirs"] == [str(finished)]
    assert report["validation"]["biased_runs_without_reference_onset"][0]["bias"] == "tone"
