"""Welch's t-test over seeds and the paired question bootstrap (posttrain.eval.significance)."""

from __future__ import annotations

import random

import pytest
from scipy import stats

from posttrain.eval.significance import describe, paired_bootstrap, welch


def test_welch_matches_scipy_on_known_data():
    baseline, treatment = [0.52, 0.58, 0.55], [0.61, 0.66, 0.70]
    result = welch(baseline, treatment)
    reference = stats.ttest_ind(treatment, baseline, equal_var=False)
    assert result["p_value"] == pytest.approx(reference.pvalue)
    difference = 1.97 / 3 - 0.55
    assert result["difference"] == pytest.approx(difference)
    # Welch-Satterthwaite interval written out by hand: d -/+ t(df) * se.
    va, vb = stats.tvar(baseline) / 3, stats.tvar(treatment) / 3
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    half = stats.t.ppf(0.975, df) * (va + vb) ** 0.5
    assert result["ci_low"] == pytest.approx(difference - half)
    assert result["ci_high"] == pytest.approx(difference + half)
    assert result["significant"] is bool(reference.pvalue < 0.05)


def test_welch_is_undefined_with_one_seed_and_exact_without_spread():
    one = welch([0.5], [0.6])
    assert one["difference"] == pytest.approx(0.1) and one["p_value"] is None
    assert one["significant"] is None and describe(one).startswith("n/a")
    flat = welch([0.5, 0.5], [0.6, 0.6])
    assert flat["significant"] is True and flat["ci_low"] == pytest.approx(0.1)
    assert welch([0.5, 0.5], [0.5, 0.5])["significant"] is False


def _scores(rate: float, questions: int, seeds: int, rng: random.Random) -> dict:
    return {q: [float(rng.random() < rate) for _ in range(seeds)] for q in range(questions)}


def test_bootstrap_finds_a_big_effect_and_covers_it():
    rng = random.Random(0)
    baseline, treatment = _scores(0.3, 200, 3, rng), _scores(0.6, 200, 3, rng)
    result = paired_bootstrap(baseline, treatment, resamples=2000, seed=1)
    assert result["significant"] and result["ci_low"] > 0
    assert result["ci_low"] < 0.3 < result["ci_high"]  # the true difference is covered
    assert result["n"] == [200, 3]
    again = paired_bootstrap(baseline, treatment, resamples=2000, seed=1)
    assert again == result  # seeded


def test_bootstrap_includes_zero_without_an_effect():
    rng = random.Random(2)
    baseline, treatment = _scores(0.5, 200, 3, rng), _scores(0.5, 200, 3, rng)
    result = paired_bootstrap(baseline, treatment, resamples=2000, seed=1)
    assert result["ci_low"] < 0 < result["ci_high"] and not result["significant"]
    assert "not significant" in describe(result)


def test_bootstrap_pairs_by_question_and_refuses_mismatches():
    same = {"q1": [1.0, 0.0], "q2": [0.0, 0.0]}
    result = paired_bootstrap(same, same)
    assert result["difference"] == 0 and result["ci_low"] == result["ci_high"] == 0
    assert not result["significant"]
    with pytest.raises(ValueError, match="different questions"):
        paired_bootstrap(same, {"q1": [1.0, 0.0]})
    with pytest.raises(ValueError, match="q2"):
        paired_bootstrap(same, {"q1": [1.0, 0.0], "q2": [1.0]})
