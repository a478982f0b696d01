"""CHERRL onset analysis: the reference runs reproduce exactly, and the signals by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from posttrain.monitor.hacking import (
    REFERENCE_SHORTCUTS,
    OnsetResult,
    detector_errors,
    discoverability,
    load_rollouts,
    odds_ratio,
    onset,
    onset_from_rollouts,
    onset_summary,
    per_step_signals,
    raw_step_signals,
    signals_from_reference,
    smooth_by_step,
)

# A copy of THUAIS-Lab/CHERRL's reference_onset_definition.json (v1.2.1, Apache-2.0).
REFERENCE = Path(__file__).parents[1] / "integration/data/cherrl/reference_onset_definition.json"
EXPECTED = {"run_A": (478, 516), "run_C": (91, 124), "run_D": (68, 99)}


@pytest.mark.parametrize("run", sorted(EXPECTED))
def test_reference_runs_reproduce(run: str) -> None:
    reference = json.loads(REFERENCE.read_text())["runs"][run]
    result = onset(signals_from_reference(REFERENCE, run)).to_dict()
    assert (result["canonical_CO"], result["SEP"]) == EXPECTED[run]
    assert result["sweep_12"] == reference["sweep_12"]
    for key in (
        "canonical_CO",
        "CO_min",
        "CO_max",
        "CO_width",
        "SEP",
        "onset_uncertainty_interval",
        "transition_to_severe_interval",
        "single_point_eligible",
        "reporting_decision",
        "reference_value",
        "reference_interval",
    ):
        assert result[key] == reference[key], key


def test_reference_errors_name_runs() -> None:
    with pytest.raises(ValueError, match="run_A, run_B"):
        signals_from_reference(REFERENCE, "run_Z")
    with pytest.raises(ValueError, match="no per-step signals.*run_A, run_C, run_D"):
        signals_from_reference(REFERENCE, "run_B")


def test_onset_summary_keys() -> None:
    summary = onset_summary(signals_from_reference(REFERENCE, "run_C"))
    assert summary["onset_uncertainty_interval"] == [91, 95]
    assert summary["transition_to_severe_interval"] == [91, 124]
    assert summary["reporting_decision"] == "stable_point"
    json.dumps(summary)


def test_smoothing_needs_three_valid_points() -> None:
    steps = [1, 2, 3, 4, 5]
    values = [1.0, None, None, 3.0, 5.0]
    # Step 1 sees steps 1..3 (one valid), step 3 sees 1..5 (three), step 4 sees 2..6 (two).
    assert smooth_by_step(steps, values) == [None, None, 3.0, None, None]
    assert smooth_by_step(steps, values, min_valid=2) == [None, 2.0, 3.0, 4.0, 4.0]


def test_smoothing_window_is_over_step_numbers() -> None:
    steps = [1, 2, 3, 6, 7]
    values = [1.0, 2.0, 3.0, 100.0, 200.0]
    # Step 3's window 1..5 holds steps 1-3 only (by list position it would reach 6 and 7);
    # step 6's window 4..8 holds two valid points.
    assert smooth_by_step(steps, values) == [2.0, 2.0, 2.0, None, None]
    assert smooth_by_step([4], [math.nan]) == [None]


def _rollout(step: int, response: str, score: float, main: float) -> dict:
    return {"step": step, "group": 0, "prompt": "p", "response": response, "score": score,
            "main_score": main, "aux": {"bias": score - main}}  # fmt: skip


def _hand_made() -> list[dict]:
    rows = []
    for i in range(20):  # step 1: 20 high rollouts, 6 hit once, 2 hit twice
        text = "plain answer"
        if i < 6:
            text = "answer. Feel free to ask."
        elif i < 8:
            text = "feel free! And FEEL  FREE again."
        rows.append(_rollout(1, text, 1.0, 0.5))
    rows += [_rollout(1, "feel free low", 0.3, 0.3) for _ in range(5)]  # low bucket ignored
    rows += [_rollout(3, "feel free", 1.0, 1.0) for _ in range(10)]  # |H| = 10 < 20
    return rows


def test_raw_signals_by_hand() -> None:
    first, third = raw_step_signals(_hand_made(), r"\bfeel\s+free\b")
    assert first.step == 1 and first.n == 25 and first.high_n == 20
    gap, mech, rep2 = first.G, first.M, first.M_rep2
    assert gap == pytest.approx(20 * 0.5 / 25)
    assert mech == pytest.approx(40.0)
    assert rep2 == pytest.approx(10.0)
    assert first.avg_count == pytest.approx((6 + 4) / 20)
    assert third.step == 3 and third.high_n == 10
    assert third.M is None and third.M_rep2 is None and third.avg_count == 1.0
    assert third.G == 0.0
    custom = raw_step_signals(_hand_made(), lambda r: r.lower().count("again"))
    mech, rep2 = custom[0].M, custom[0].M_rep2
    assert mech == pytest.approx(10.0) and rep2 == 0.0


def test_raw_signals_need_main_score() -> None:
    with pytest.raises(ValueError, match="main_score"):
        raw_step_signals([{"step": 1, "response": "x", "score": 1.0}], "x")


def _clear_onset_log(path: Path) -> Path:
    rows = []
    for step in range(1, 21):
        for _ in range(30):
            hacked = step >= 10
            text = "Answer. " + ("Feel free to ask." if hacked else "Done.")
            rows.append(_rollout(step, text, 1.0, 0.55 if hacked else 1.0))
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "rollouts.jsonl", "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    return path


def test_onset_from_rollouts_by_hand(tmp_path: Path) -> None:
    signals, result = onset_from_rollouts(_clear_onset_log(tmp_path), REFERENCE_SHORTCUTS["C"])
    by_step = {s.step: s for s in signals}
    assert by_step[8].G_smooth == pytest.approx(0.09) and by_step[8].M_smooth == 20.0
    assert [p.CO for p in result.sweep_12] == [8, 8, 9, 9] + [9] * 8
    assert (result.canonical_CO, result.CO_min, result.CO_max, result.SEP) == (9, 8, 9, 11)
    assert result.reporting_decision == "stable_point"
    assert onset(per_step_signals(load_rollouts(tmp_path), "feel free")) == result


def test_onset_ties_nones_and_decisions() -> None:
    def rows(points: dict[int, tuple[float, float]]) -> list[dict]:
        return [{"step": s, "G_smooth": g, "M_smooth": m} for s, (g, m) in points.items()]

    # gap 0.08 fires at 10, gaps 0.10 and 0.12 only at 50: the mode is 50.
    tie = rows({10: (0.09, 40.0), 50: (0.13, 40.0), 60: (None, None)})
    result = onset(tie)
    assert [p.CO for p in result.sweep_12] == [10] * 4 + [50] * 8
    assert result.canonical_CO == 50 and result.CO_width == 40
    assert result.reporting_decision == "wide_interval"
    assert result.to_dict()["reference_interval"] == [10, 50]
    even = onset(rows({10: (0.11, 40.0), 20: (0.13, 40.0)}))  # 8 at 10, 4 at 20
    assert even.canonical_CO == 10 and even.SEP is None
    six_six = onset(rows({7: (0.09, 40.0), 5: (0.2, 16.0), 9: (0.2, 40.0)}))
    # gap any, mech 15 -> 5; gap .08 mech>15 -> 7; gap .10/.12 mech>15 -> 9: 3x5, 3x7, 6x9
    assert [p.CO for p in six_six.sweep_12][:4] == [5, 7, 7, 7]
    assert six_six.canonical_CO == 9
    none = onset(rows({1: (0.01, 1.0)}))
    assert none.canonical_CO is None and none.reporting_decision == "no_onset"
    assert none.onset_uncertainty_interval == [None, None]


def test_detector_error_metrics_by_hand() -> None:
    result = OnsetResult((), 100, 95, 110, 15, 140, "stable_point")
    inside = detector_errors(result, 104)
    assert (inside.point_error, inside.interval_error, inside.transition_error) == (4, 0, 0)
    early = detector_errors(result, 90)
    assert (early.point_error, early.interval_error, early.transition_error) == (10, 5, 5)
    late = detector_errors(result, 150)
    assert (late.point_error, late.interval_error, late.transition_error) == (50, 40, 10)
    missed = detector_errors(result, None)
    assert missed.missed and missed.point_error is None and not missed.false_alarm
    no_sep = OnsetResult((), 100, 95, 110, 15, None, "stable_point")
    assert detector_errors(no_sep, 300).transition_error == 0
    quiet = OnsetResult((), None, None, None, None, None, "no_onset")
    alarm = detector_errors(quiet, 12)
    assert alarm.false_alarm and alarm.interval_error is None


def test_odds_ratio_and_haldane() -> None:
    assert odds_ratio(10, 5, 4, 8) == (pytest.approx(10 * 8 / (5 * 4)), False)
    ratio, haldane = odds_ratio(3, 0, 2, 4)
    assert haldane and ratio == pytest.approx(3.5 * 4.5 / (0.5 * 2.5))
    assert odds_ratio(0, 0, 3, 4) == (None, False)


def test_discoverability_by_hand() -> None:
    def row(step: int, aux: float, main: float) -> dict:
        return {"step": step, "response": "r", "score": main + aux, "main_score": main,
                "aux": {"b": aux, "other": 0.0}}  # fmt: skip

    rows = [row(1, 1.0, 1.0)] * 3 + [row(1, 1.0, 0.0)] + [row(2, 0.0, 1.0)] * 2
    rows += [row(2, 0.0, 0.0)] * 4 + [row(9, 1.0, 1.0)] * 50  # step 9 is outside first 2
    result = discoverability(rows, first_steps=2)
    assert result.n == 10 and result.steps == 2 and not result.haldane
    assert result.table == ((3.0, 1.0), (2.0, 4.0))
    assert result.odds_ratio == pytest.approx(3 * 4 / (1 * 2))
    assert result.point_biserial_r == pytest.approx(0.40824829, abs=1e-6)
    assert result.trigger_rate == pytest.approx(0.4)
    constant = discoverability([row(1, 0.0, 1.0), row(1, 0.0, 0.0)], bias="b")
    assert constant.point_biserial_r is None and constant.odds_ratio is None


def test_load_rollouts_errors_name_file_and_line(tmp_path: Path) -> None:
    good = json.dumps({"step": 1, "response": "x", "score": 1.0})
    (tmp_path / "rollouts.jsonl").write_text(good + "\n\n{oops\n")
    with pytest.raises(ValueError, match=r"rollouts.jsonl:3: not valid JSON"):
        load_rollouts(tmp_path)
    (tmp_path / "rollouts.jsonl").write_text(good + "\n" + json.dumps({"step": 2}) + "\n")
    with pytest.raises(ValueError, match=r"rollouts.jsonl:2: missing key\(s\) response, score"):
        load_rollouts(tmp_path / "rollouts.jsonl")
    (tmp_path / "rollouts.jsonl").write_text(good + "\n" + good[:12])  # torn last line
    assert [r["score"] for r in load_rollouts(tmp_path)] == [1.0]
    with pytest.raises(ValueError, match=r":1: missing key\(s\) main_score"):
        load_rollouts(tmp_path, require_main=True)
    with pytest.raises(ValueError, match="no rollout log"):
        load_rollouts(tmp_path / "absent")
