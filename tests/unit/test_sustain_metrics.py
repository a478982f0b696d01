"""SustainScore and satisfaction on a hand-computed example, and the undefined case."""

from __future__ import annotations

import pytest

from posttrain.eval.sustain.metrics import summarise

W = {"id": "length_constraints:number_words"}
C = {"id": "punctuation:no_comma"}


def test_hand_computed_example() -> None:
    baseline = [
        {"key": "a", "domain": "math", "correct": True},
        {"key": "b", "domain": "math", "correct": True},
        {"key": "c", "domain": "math", "correct": False},
        {"key": "d", "domain": "qa", "correct": True},
    ]
    variants = [
        {"domain": "math", "k": 1, "correct": True, "constraints": [W], "satisfied": [True]},
        {
            "domain": "math",
            "k": 2,
            "correct": False,
            "constraints": [W, C],
            "satisfied": [False, True],
        },
        {"domain": "math", "k": 1, "correct": False, "constraints": [C], "satisfied": [True]},
        {"domain": "qa", "k": 1, "correct": True, "constraints": [C], "satisfied": [False]},
    ]
    out = summarise(baseline, variants, max_k=2, domains=["math", "qa"])
    math = out["domains"]["math"]
    assert (math["n_items"], math["n_solved"]) == (3, 2)
    assert math["baseline_accuracy"] == pytest.approx(2 / 3)
    assert math["sustain_score"] == pytest.approx(1 / 3)  # 1 of 3 variants still correct
    assert math["by_k"]["1"]["sustain_score"] == pytest.approx(0.5)
    assert math["by_k"]["2"]["sustain_score"] == 0.0
    assert math["satisfaction"] == pytest.approx(3 / 4)
    assert math["all_satisfied"] == pytest.approx(2 / 3)
    assert math["satisfaction_by_type"][C["id"]] == {"n": 2, "rate": 1.0}
    assert math["satisfaction_by_type"][W["id"]] == {"n": 2, "rate": 0.5}
    overall = out["overall"]
    assert overall["sustain_score"] == pytest.approx(2 / 4)
    assert overall["satisfaction_by_type"][C["id"]] == {"n": 3, "rate": pytest.approx(2 / 3)}
    assert overall["by_k"]["1"]["satisfaction"] == pytest.approx(2 / 3)


def test_nothing_solved_gives_null_not_zero() -> None:
    out = summarise([{"key": "a", "domain": "code", "correct": False}], [], 3, ["code"])
    block = out["domains"]["code"]
    assert block["n_solved"] == 0 and block["baseline_accuracy"] == 0.0
    assert block["sustain_score"] is None and block["satisfaction"] is None
    assert all(v["sustain_score"] is None for v in block["by_k"].values())
