"""RPC-Bench score formulas on hand-computed examples."""

from __future__ import annotations

import pytest

from posttrain.eval.rpc.scores import claim_scores, headline, score_run


def _judged(category: str, cor: float | None, com: float | None, con: float | None) -> dict:
    ratings = {"Correctness": cor, "Completeness": com, "Conciseness": con}
    return {"category": category, "ratings": ratings}


def test_f1_is_taken_from_the_means_not_averaged_per_item():
    # Item means: Cor (5 + 1) / 2 = 3, Com (1 + 5) / 2 = 3 -> F1 from means = 3 (60%),
    # whereas per-item F1s (5/3 each) would average to 1.667 (33.3%).
    records = [_judged("Method_Mechanics", 5, 1, 4), _judged("Method_Mechanics", 1, 5, 2)]
    scores = score_run([], {"j": records})
    assert scores["correctness"] == pytest.approx(60.0)
    assert scores["completeness"] == pytest.approx(60.0)
    assert scores["f1"] == pytest.approx(60.0)
    # Con mean 3 -> (3/5) * (3/5) * 100 = 36.
    assert scores["conciseness_adjusted"] == pytest.approx(36.0)


def test_headline_formulas():
    out = headline({"Correctness": 4.0, "Completeness": 2.0, "Conciseness": 2.5})
    f1 = 2 * 4 * 2 / 6  # 2.6667
    assert out["f1"] == pytest.approx(f1 * 20)
    assert out["conciseness_adjusted"] == pytest.approx(2.5 / 5 * f1 / 5 * 100)
    assert headline({"Correctness": 0.0, "Completeness": 0.0, "Conciseness": 5.0})["f1"] == 0.0


def test_missing_ratings_count_zero_and_claims_are_not_rated():
    records = [
        _judged("Method_Mechanics", 4, None, 4),  # a dimension never read
        _judged("Experimental_Setup", 2, 2, 2),
        _judged("Claim_Verification", 5, 5, 5),  # ignored by the rating means
    ]
    scores = score_run([], {"j": records})
    assert scores["correctness"] == pytest.approx(60.0)  # (4 + 2) / 2 * 20
    assert scores["completeness"] == pytest.approx(20.0)  # (0 + 2) / 2 * 20
    assert scores["categories"]["Method_Mechanics"]["completeness"] == 0.0
    assert scores["categories"]["Experimental_Setup"]["f1"] == pytest.approx(40.0)


def test_two_judges_are_averaged_mean_by_mean():
    a = [_judged("Method_Mechanics", 4, 2, 3)]
    b = [_judged("Method_Mechanics", 2, 4, 5)]
    scores = score_run([], {"a": a, "b": b})
    assert scores["correctness"] == pytest.approx(60.0)  # (4 + 2) / 2 * 20
    assert scores["f1"] == pytest.approx(60.0)  # from the averaged means 3 and 3
    assert scores["judges"]["a"]["f1"] == pytest.approx(2 * 4 * 2 / 6 * 20)
    assert scores["conciseness_adjusted"] == pytest.approx(4 / 5 * 3 / 5 * 100)


def test_claim_accuracy_leaves_invalid_replies_out_as_rpc_bench_does():
    claims = [
        {"category": "Claim_Verification", "answer": "True", "reference_answer": "True"},
        {"category": "Claim_Verification", "answer": "False", "reference_answer": "True"},
        {"category": "Claim_Verification", "answer": "True", "reference_answer": "True"},
        {
            "category": "Claim_Verification",
            "answer": "",
            "reference_answer": "False",
            "claim_invalid": True,
        },
        {"category": "Method_Mechanics", "answer": "x", "reference_answer": "y"},
    ]
    out = claim_scores(claims)
    assert out["claim_items"] == 4 and out["claim_invalid"] == 1
    assert out["claim_accuracy"] == pytest.approx(200 / 3)
    assert out["claim_accuracy_strict"] == pytest.approx(50.0)
    scores = score_run(claims, {})
    assert scores["categories"]["Claim_Verification"]["accuracy"] == pytest.approx(200 / 3)
    assert "f1" not in scores  # nothing judged


def test_claim_accuracy_over_no_valid_verdict_is_undefined_not_zero():
    rows = [
        {
            "category": "Claim_Verification",
            "answer": "",
            "claim_invalid": True,
            "reference_answer": "True",
        },
    ]
    out = claim_scores(rows)
    assert out["claim_accuracy"] is None and out["claim_accuracy_strict"] == 0.0
    assert claim_scores([])["claim_accuracy"] is None
