"""Calibration and ranking metrics on hand-made arrays, where every number is known."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from posttrain.eval.calibration import (
    IsotonicThresholds,
    evaluate_predictions,
    evaluate_reward_model,
    expected_calibration_error,
    label_errors,
    margin_accuracy,
    plot_margin_accuracy,
    plot_reliability,
    reliability,
    threshold_metrics,
    threshold_targets,
)
from posttrain.rewards.ordinal import label_distribution


def test_perfectly_calibrated_forecasts_have_zero_ece() -> None:
    probs = [0.25] * 4 + [0.75] * 4
    outcomes = [1, 0, 0, 0, 1, 1, 1, 0]
    assert expected_calibration_error(probs, outcomes) == pytest.approx(0.0, abs=1e-12)
    # Items x thresholds are pooled into one set of binary forecasts.
    grid = np.array(probs).reshape(4, 2)
    assert expected_calibration_error(grid, np.array(outcomes).reshape(4, 2)) == pytest.approx(0)
    assert reliability(probs, outcomes) == [
        {"low": 0.2, "high": 0.3, "n": 4, "confidence": 0.25, "frequency": 0.25},
        {"low": 0.7, "high": 0.8, "n": 4, "confidence": 0.75, "frequency": 0.75},
    ]


def test_ece_of_known_miscalibration() -> None:
    assert expected_calibration_error([0.9] * 4, [1, 0, 1, 0]) == pytest.approx(0.4)
    # Half the forecasts off by 0.4, half by 0.1.
    assert expected_calibration_error([0.1, 0.1, 0.9, 0.9], [1, 0, 1, 1]) == pytest.approx(0.25)
    # 1.0 falls in the last bin, 0.0 in the first; one bin is the gap of the means.
    assert expected_calibration_error([0.0, 1.0], [0, 1]) == pytest.approx(0.0)
    assert expected_calibration_error([0.2, 0.6], [1, 1], bins=1) == pytest.approx(0.6)


def test_label_errors_known_values() -> None:
    errors = label_errors([1, 2, 3, 4], [1, 3, 3, 2])
    assert errors["mse"] == pytest.approx(1.25)
    assert errors["rmse"] == pytest.approx(math.sqrt(1.25))
    assert errors["mae"] == pytest.approx(0.75)


def test_threshold_accuracy_and_brier() -> None:
    probs = [[0.9, 0.6, 0.1], [0.2, 0.1, 0.0]]
    assert threshold_targets([3, 2], 4).tolist() == [[1, 1, 0], [1, 0, 0]]
    metrics = threshold_metrics(probs, [3, 2], 4)
    assert metrics["threshold_accuracy"] == pytest.approx([0.5, 1.0, 1.0])
    assert metrics["threshold_brier"] == pytest.approx([0.325, 0.085, 0.005])
    assert metrics["mean_threshold_accuracy"] == pytest.approx(2.5 / 3)


def test_label_distribution_from_thresholds() -> None:
    assert label_distribution([[0.8, 0.5, 0.2]]) == pytest.approx(np.array([[0.2, 0.3, 0.3, 0.2]]))
    # Crossed thresholds would give P(y=2) = -0.2: clipped, the rest renormalised.
    crossed = label_distribution([[0.3, 0.5, 0.0]])
    assert crossed == pytest.approx(np.array([[0.7, 0.0, 0.5, 0.0]]) / 1.2)


def test_margin_buckets() -> None:
    # Pairs by margin: 0.1 right, 0.5 wrong (labels 3 < 4 but scores 5 > 4.5), 4.4, 4.5, 4.9,
    # 5.0 right.
    result = margin_accuracy([0.0, 0.1, 5.0, 4.5], [1, 2, 3, 4], buckets=2)
    assert result["n_pairs"] == 6
    assert result["accuracy"] == pytest.approx(5 / 6)
    low, high = result["buckets"]
    assert (low["n"], high["n"]) == (3, 3)
    assert low["accuracy"] == pytest.approx(2 / 3) and high["accuracy"] == 1.0
    assert (low["margin_low"], low["margin_high"]) == pytest.approx((0.1, 4.4))
    assert (high["quantile_low"], high["quantile_high"]) == (0.5, 1.0)
    # Only pairs with different labels count; a tied score is worth one half.
    assert margin_accuracy([1.0, 2.0], [2, 2]) == {"n_pairs": 0, "accuracy": None, "buckets": []}
    assert margin_accuracy([1.0, 1.0], [1, 2])["accuracy"] == 0.5
    # Past max_pairs, a seeded sample of pairs.
    rng = np.random.default_rng(0)
    labels = rng.integers(1, 5, size=300)
    scores = labels + rng.normal(size=300)
    sampled = margin_accuracy(scores, labels, buckets=4, max_pairs=5000, seed=1)
    assert sampled == margin_accuracy(scores, labels, buckets=4, max_pairs=5000, seed=1)
    assert 3000 < sampled["n_pairs"] <= 5000
    accuracies = [b["accuracy"] for b in sampled["buckets"]]
    assert accuracies == sorted(accuracies)  # larger margins, more often right


def test_isotonic_mapping_is_monotone() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(1, 5, size=400)
    scores = 2.0 * labels + rng.normal(scale=2.0, size=400)
    mapping = IsotonicThresholds(scores, labels, num_levels=4)
    grid = np.linspace(scores.min() - 5, scores.max() + 5, 500)
    probs = mapping.probabilities(grid)
    assert probs.shape == (500, 3)
    assert np.all(np.diff(probs, axis=0) >= -1e-12)  # non-decreasing in the score
    assert np.all(np.diff(probs, axis=1) <= 1e-12)  # P(y>1) >= P(y>2) >= P(y>3)
    expected = mapping.expected_label(grid)
    assert np.all(np.diff(expected) >= -1e-12)
    assert expected.min() >= 1.0 and expected.max() <= 4.0
    # Fitted on the training set, it is calibrated there by construction.
    targets = threshold_targets(labels, 4)
    assert expected_calibration_error(mapping.probabilities(scores), targets) < 0.02


def _ordinal_predictions(labels: np.ndarray, rng: np.random.Generator) -> list[dict[str, Any]]:
    predictions = []
    for y in labels:
        probs = [float(np.clip((y > k) * 0.8 + 0.1 + rng.normal(0, 0.05), 0, 1)) for k in (1, 2, 3)]
        predictions.append(
            {"score": 1 + sum(probs), "expected_label": 1 + sum(probs), "threshold_probs": probs}
        )
    return predictions


def test_evaluate_predictions_by_source() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(1, 5, size=120)
    ordinal = evaluate_predictions(_ordinal_predictions(labels, rng), labels)
    json.dumps(ordinal, allow_nan=False)  # JSON-serialisable, no NaN
    assert ordinal["probability_source"] == ordinal["expected_label_source"] == "model"
    assert ordinal["mean_threshold_accuracy"] == 1.0 and ordinal["label_accuracy"] == 1.0
    assert ordinal["ece"] == pytest.approx(0.1, abs=0.03)  # 0.9 / 0.1 forecasts, always right
    assert len(ordinal["ece_per_threshold"]) == 3 and ordinal["spearman"] > 0.9
    assert sum(ordinal["label_counts"].values()) == 120
    assert ordinal["rmse"] < ordinal["rmse_predict_mean"]

    scores = (labels + rng.normal(0, 0.3, size=120)).tolist()
    train_labels = rng.integers(1, 5, size=200)
    train_scores = (train_labels + rng.normal(0, 0.3, size=200)).tolist()
    scalar = evaluate_predictions(scores, labels, calibration=(train_scores, train_labels))
    json.dumps(scalar, allow_nan=False)
    assert scalar["probability_source"] == scalar["expected_label_source"] == "isotonic"
    assert scalar["rmse"] < 0.5 and scalar["ece"] < 0.1

    ranking_only = evaluate_predictions(scores, labels)
    assert "ece" not in ranking_only and "rmse" not in ranking_only
    assert ranking_only["pairwise_accuracy"] == scalar["pairwise_accuracy"]


def _row(reply: str, label: int) -> dict[str, Any]:
    return {
        "id": reply,
        "history": [],
        "messages": [
            {"role": "user", "content": "Say something."},
            {"role": "assistant", "content": reply},
        ],
        "label": label,
    }


def test_evaluate_reward_model_with_a_scalar_scorer(tmp_path: Path) -> None:
    class ReplyLength:
        def score(self, prompts: list[Any], responses: list[Any]) -> list[float]:
            return [float(len(r[-1]["content"])) for r in responses]

    train = [_row("x" * (3 * y + i % 3), y) for i, y in enumerate([1, 2, 3, 4] * 10)]
    test = [_row("x" * (3 * y + 1), y) for y in [1, 2, 3, 4] * 3]
    result = evaluate_reward_model(ReplyLength(), test, calibration_rows=train)
    assert result["probability_source"] == "isotonic"
    assert result["rmse"] == pytest.approx(0.0, abs=1e-9)
    assert result["pairwise_accuracy"] == 1.0 and result["ece"] == pytest.approx(0.0, abs=1e-9)
    # Predictions made elsewhere go in as they are.
    again = evaluate_reward_model(
        ReplyLength().score([None] * 12, [r["messages"][-1:] for r in test]),
        test,
        calibration_rows=train,
        calibration_predictions=[float(3 * y + i % 3) for i, y in enumerate([1, 2, 3, 4] * 10)],
    )
    assert again == result

    figures = {"length": result, "other": again}
    for plot, name in ((plot_margin_accuracy, "margins.png"), (plot_reliability, "rel.png")):
        path = plot(figures, tmp_path / name)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"labels must be integers in 1\.\.4"):
        threshold_targets([0, 2], 4)
    with pytest.raises(ValueError, match="lengths differ: expected has 2, labels has 3"):
        label_errors([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="bins must be a positive integer"):
        expected_calibration_error([0.5], [1], bins=0)
    with pytest.raises(ValueError, match="need 3 columns for 4 levels, got 2"):
        threshold_metrics([[0.5, 0.5]], [1], 4)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        expected_calibration_error([1.5], [1])
    with pytest.raises(ValueError, match="2 predictions but 1 labels"):
        evaluate_predictions([1.0, 2.0], [1])
    with pytest.raises(ValueError, match="prediction 1 has no 'score'"):
        evaluate_predictions([{"expected_label": 1.0}], [1])
    with pytest.raises(ValueError, match="needs at least 2"):
        IsotonicThresholds([1.0], [1])
