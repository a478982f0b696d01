"""Calibration and ranking metrics for reward models of ordinal labels (WildReward's evaluation).

Pure functions on arrays: errors of the expected label against y in 1..K, per-threshold
accuracy and Brier score of P(y > k), expected calibration error (ECE) with equal-width bins,
Spearman correlation (`posttrain.data.correlation`), and pairwise accuracy as a function of
the score margin.

A scalar-only model (Bradley–Terry, or the MSE regression baseline) has no threshold
probabilities. Its scores are mapped to them by isotonic regression fitted on the TRAINING
set (one increasing fit of 1[y > k] on the score per threshold, `IsotonicThresholds`); its
expected label is then 1 + sum_k P(y > k). So every model is compared on the same footing,
an expected label in 1..K and K-1 probabilities, and the ordinal models are scored on their
own probabilities with no calibration fitted at all: that is the claim under test.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posttrain.data.correlation import spearman
from posttrain.rewards.ordinal import label_distribution, row_label, row_pair

ArrayLike = Sequence[float] | np.ndarray


def _array(values: Any, name: str, ndim: int = 1) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has non-finite values")
    return array


def _labels(labels: Any, num_levels: int) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be 1-dimensional, got shape {array.shape}")
    if array.size and (
        not np.all(np.equal(np.mod(array, 1), 0)) or array.min() < 1 or array.max() > num_levels
    ):
        raise ValueError(f"labels must be integers in 1..{num_levels}")
    return array.astype(np.int64)


def _same_length(**arrays: np.ndarray) -> None:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError("lengths differ: " + ", ".join(f"{k} has {v}" for k, v in lengths.items()))


def _threshold_probs(probs: Any, num_levels: int) -> np.ndarray:
    array = _array(probs, "threshold probabilities", ndim=2)
    if array.shape[1] != num_levels - 1:
        raise ValueError(
            f"threshold probabilities need {num_levels - 1} columns for {num_levels} levels, "
            f"got {array.shape[1]}"
        )
    if array.size and (array.min() < 0 or array.max() > 1):
        raise ValueError("threshold probabilities must lie in [0, 1]")
    return array


def threshold_targets(labels: Any, num_levels: int) -> np.ndarray:
    """[y > 1, ..., y > K-1] per item as 0/1 floats, shape (n, K-1)."""
    y = _labels(labels, num_levels)
    return (y[:, None] > np.arange(1, num_levels)[None, :]).astype(np.float64)


def label_errors(expected: ArrayLike, labels: ArrayLike) -> dict[str, float]:
    """MSE, RMSE and MAE of the expected label against the true label."""
    e, y = _array(expected, "expected labels"), _array(labels, "labels")
    _same_length(expected=e, labels=y)
    if not len(e):
        raise ValueError("no items to evaluate")
    mse = float(np.mean((e - y) ** 2))
    return {"mse": mse, "rmse": math.sqrt(mse), "mae": float(np.mean(np.abs(e - y)))}


def threshold_metrics(probs: Any, labels: Any, num_levels: int) -> dict[str, Any]:
    """Per threshold k: accuracy of "P(y > k) >= 0.5" against y > k, and the Brier score."""
    p = _threshold_probs(probs, num_levels)
    targets = threshold_targets(labels, num_levels)
    _same_length(probs=p, labels=targets)
    accuracy = np.mean((p >= 0.5) == (targets > 0.5), axis=0)
    brier = np.mean((p - targets) ** 2, axis=0)
    return {
        "threshold_accuracy": [float(a) for a in accuracy],
        "threshold_brier": [float(b) for b in brier],
        "mean_threshold_accuracy": float(np.mean(accuracy)),
        "mean_brier": float(np.mean(brier)),
    }


def reliability(probs: ArrayLike, outcomes: ArrayLike, bins: int = 10) -> list[dict[str, Any]]:
    """Equal-width bins over [0, 1] (1.0 falls in the last): count, mean probability and
    observed frequency per non-empty bin, the points of a reliability diagram."""
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    p = _array(np.ravel(probs), "probabilities")
    o = _array(np.ravel(outcomes), "outcomes")
    _same_length(probabilities=p, outcomes=o)
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError("probabilities must lie in [0, 1]")
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    rows = []
    for b in range(bins):
        inside = index == b
        if inside.any():
            rows.append(
                {
                    "low": b / bins,
                    "high": (b + 1) / bins,
                    "n": int(inside.sum()),
                    "confidence": float(p[inside].mean()),
                    "frequency": float(o[inside].mean()),
                }
            )
    return rows


def expected_calibration_error(probs: ArrayLike, outcomes: ArrayLike, bins: int = 10) -> float:
    """ECE = sum over bins of (bin share) x |mean probability - observed frequency|.

    2-D inputs (items x thresholds) are pooled: every P(y > k) is one binary forecast.
    """
    table = reliability(probs, outcomes, bins)
    total = sum(row["n"] for row in table)
    if not total:
        raise ValueError("no probabilities to evaluate")
    return float(sum(row["n"] * abs(row["confidence"] - row["frequency"]) for row in table) / total)


def margin_accuracy(
    scores: ArrayLike,
    labels: ArrayLike,
    buckets: int = 5,
    max_pairs: int = 1_000_000,
    seed: int = 0,
) -> dict[str, Any]:
    """Pairwise accuracy ("higher score = higher label") by score margin.

    Over all pairs of items with different labels (a seeded uniform sample of `max_pairs` when
    there are more), pairs are sorted by |score difference| and cut into `buckets` buckets of
    equal count (quantiles of the margin), so buckets compare across models whose scores live
    on different scales. A tied score counts one half. A calibrated, useful model is right
    more often the larger its margin.
    """
    if isinstance(buckets, bool) or not isinstance(buckets, int) or buckets < 1:
        raise ValueError(f"buckets must be a positive integer, got {buckets!r}")
    s, y = _array(scores, "scores"), _array(labels, "labels")
    _same_length(scores=s, labels=y)
    n = len(s)
    if n * (n - 1) // 2 <= max_pairs:
        i, j = np.triu_indices(n, k=1)
    else:
        rng = np.random.default_rng(seed)
        i, j = rng.integers(0, n, size=(2, max_pairs))
    keep = y[i] != y[j]
    i, j = i[keep], j[keep]
    if not len(i):
        return {"n_pairs": 0, "accuracy": None, "buckets": []}
    gap = s[i] - s[j]
    correct = np.where(gap == 0, 0.5, (np.sign(gap) == np.sign(y[i] - y[j])).astype(np.float64))
    margin = np.abs(gap)
    order = np.argsort(margin, kind="stable")
    table = []
    chunks = np.array_split(order, min(buckets, len(order)))
    for b, chunk in enumerate(chunks):
        table.append(
            {
                "bucket": b,
                "quantile_low": b / len(chunks),
                "quantile_high": (b + 1) / len(chunks),
                "margin_low": float(margin[chunk].min()),
                "margin_high": float(margin[chunk].max()),
                "mean_margin": float(margin[chunk].mean()),
                "n": int(len(chunk)),
                "accuracy": float(correct[chunk].mean()),
            }
        )
    return {"n_pairs": int(len(i)), "accuracy": float(correct.mean()), "buckets": table}


class IsotonicThresholds:
    """Maps a scalar score to P(y > k), one increasing isotonic fit per threshold.

    Fitted on the training set's scores and labels; scores outside the fitted range get the
    end values. Each P(y > k) is non-decreasing in the score, and the probabilities are kept
    non-increasing in k (isotonic regression preserves the order of nested targets; a running
    minimum guards rounding), so the expected label 1 + sum_k P(y > k) is monotone too.
    """

    def __init__(self, scores: ArrayLike, labels: ArrayLike, num_levels: int = 4) -> None:
        from sklearn.isotonic import IsotonicRegression

        s = _array(scores, "calibration scores")
        targets = threshold_targets(labels, num_levels)
        _same_length(scores=s, labels=targets)
        if len(s) < 2:
            raise ValueError("isotonic calibration needs at least 2 scored items")
        self.num_levels = num_levels
        self.fits = [
            IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(
                s, targets[:, k]
            )
            for k in range(num_levels - 1)
        ]

    def probabilities(self, scores: ArrayLike) -> np.ndarray:
        """P(y > k) per item, shape (n, K-1)."""
        s = _array(scores, "scores")
        p = np.stack([fit.predict(s) for fit in self.fits], axis=1).reshape(len(s), -1)
        return np.clip(np.minimum.accumulate(p, axis=1), 0.0, 1.0)

    def expected_label(self, scores: ArrayLike) -> np.ndarray:
        """1 + sum_k P(y > k): the score as an expected label in 1..K."""
        return 1 + self.probabilities(scores).sum(axis=1)


def _as_predictions(values: Sequence[Any]) -> list[dict[str, Any]]:
    out = []
    for number, value in enumerate(values, start=1):
        if isinstance(value, Mapping):
            if "score" not in value:
                raise ValueError(f"prediction {number} has no 'score'")
            out.append(dict(value))
        elif isinstance(value, int | float | np.floating | np.integer) and not isinstance(
            value, bool
        ):
            out.append({"score": float(value)})
        else:
            raise ValueError(f"prediction {number} is neither a score nor a dict: {value!r:.60}")
    return out


def evaluate_predictions(
    predictions: Sequence[Any],
    labels: ArrayLike,
    num_levels: int = 4,
    calibration: tuple[ArrayLike, ArrayLike] | None = None,
    bins: int = 10,
    margin_buckets: int = 5,
    max_pairs: int = 1_000_000,
    seed: int = 0,
) -> dict[str, Any]:
    """All metrics for one model's predictions (JSON-serialisable).

    `predictions`: scores, or dicts with `score` and optionally `expected_label` and
    `threshold_probs` (as `OrdinalRewardModel.predict` gives). Without threshold
    probabilities, `calibration` = (training scores, training labels) fits
    `IsotonicThresholds`; without either, only the ranking metrics (and, given expected
    labels, the errors) are reported. `*_source` keys say where each number came from.
    """
    preds = _as_predictions(predictions)
    y = _labels(labels, num_levels)
    if len(preds) != len(y):
        raise ValueError(f"lengths differ: {len(preds)} predictions but {len(y)} labels")
    if not len(y):
        raise ValueError("no items to evaluate")
    scores = _array([p["score"] for p in preds], "scores")
    result: dict[str, Any] = {
        "n": len(y),
        "num_levels": num_levels,
        "label_counts": {str(k): int((y == k).sum()) for k in range(1, num_levels + 1)},
        "spearman": spearman(scores, y),
    }
    margins = margin_accuracy(scores, y, margin_buckets, max_pairs, seed)
    result["pairwise_accuracy"] = margins["accuracy"]
    result["margin_accuracy"] = margins

    probs, probability_source = None, None
    if all(p.get("threshold_probs") is not None for p in preds):
        probs = _threshold_probs([p["threshold_probs"] for p in preds], num_levels)
        probability_source = "model"
    elif calibration is not None:
        probs = IsotonicThresholds(*calibration, num_levels=num_levels).probabilities(scores)
        probability_source = "isotonic"

    expected, expected_source = None, None
    if all(p.get("expected_label") is not None for p in preds):
        expected = _array([p["expected_label"] for p in preds], "expected labels")
        expected_source = "model"
    elif probs is not None:
        expected, expected_source = 1 + probs.sum(axis=1), probability_source
    if expected is not None:
        result.update(label_errors(expected, y))
        result["rmse_predict_mean"] = float(np.std(y))  # a constant guess at the test mean
        result["expected_label_source"] = expected_source
    if probs is not None:
        targets = threshold_targets(y, num_levels)
        result.update(threshold_metrics(probs, y, num_levels))
        result["ece"] = expected_calibration_error(probs, targets, bins)
        result["ece_per_threshold"] = [
            expected_calibration_error(probs[:, k], targets[:, k], bins)
            for k in range(num_levels - 1)
        ]
        result["reliability"] = reliability(probs, targets, bins)
        most_likely = label_distribution(probs).argmax(axis=1) + 1
        result["label_accuracy"] = float(np.mean(most_likely == y))
        result["probability_source"] = probability_source
    return result


def evaluate_reward_model(
    scorer_or_predictions: Any,
    test_rows: Sequence[Mapping[str, Any]],
    num_levels: int = 4,
    calibration_rows: Sequence[Mapping[str, Any]] | None = None,
    calibration_predictions: Sequence[Any] | None = None,
    bins: int = 10,
    margin_buckets: int = 5,
    max_pairs: int = 1_000_000,
    seed: int = 0,
) -> dict[str, Any]:
    """`evaluate_predictions` for one model on labelled rows (`posttrain.rewards.ordinal`
    layout).

    `scorer_or_predictions`: an `OrdinalRewardModel` (its `predict`), any `Scorer` (e.g. a
    Bradley–Terry model wrapped in `WholeConversationScorer`), or predictions already made
    for `test_rows`. A model without threshold probabilities is calibrated on
    `calibration_rows` (the training rows, scored here) or `calibration_predictions`.
    """
    labels = [row_label(r, num_levels) for r in test_rows]

    def predict(rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        model = scorer_or_predictions
        if hasattr(model, "predict"):
            return list(model.predict(rows))
        if hasattr(model, "score"):
            pairs = [row_pair(r) for r in rows]
            return list(model.score([p for p, _ in pairs], [r for _, r in pairs]))
        raise TypeError(f"expected a model with predict() or score(), got {model!r:.60}")

    is_model = hasattr(scorer_or_predictions, "predict") or hasattr(scorer_or_predictions, "score")
    predictions = predict(test_rows) if is_model else list(scorer_or_predictions)
    calibration = None
    has_probs = all(
        isinstance(p, Mapping) and p.get("threshold_probs") is not None for p in predictions
    )
    if not has_probs:
        cal = None
        if calibration_predictions is not None:
            cal = _as_predictions(calibration_predictions)
        elif calibration_rows is not None and is_model:
            cal = _as_predictions(predict(calibration_rows))
        if cal is not None:
            if calibration_rows is None or len(cal) != len(calibration_rows):
                raise ValueError("calibration_predictions need their calibration_rows (labels)")
            cal_labels = [row_label(r, num_levels) for r in calibration_rows]
            calibration = ([p["score"] for p in cal], cal_labels)
    return evaluate_predictions(
        predictions, labels, num_levels, calibration, bins, margin_buckets, max_pairs, seed
    )


def _margin_table(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    if "margin_accuracy" in result:
        result = result["margin_accuracy"]
    if "buckets" not in result:
        raise ValueError("expected a margin_accuracy result or an evaluation holding one")
    return list(result["buckets"])


def plot_margin_accuracy(
    results_by_model: Mapping[str, Mapping[str, Any]], path: str | Path
) -> Path:
    """One line per model: pairwise accuracy against the score-margin quantile (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for name, result in results_by_model.items():
        table = _margin_table(result)
        x = [100 * (b["quantile_low"] + b["quantile_high"]) / 2 for b in table]
        axes.plot(x, [b["accuracy"] for b in table], marker="o", label=name)
    axes.axhline(0.5, color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("score margin |s_i - s_j|, percentile within each model")
    axes.set_ylabel("pairwise accuracy")
    axes.set_ylim(0.0, 1.02)
    axes.set_title("Pairs of test items with different labels")
    axes.legend(loc="lower right")
    figure.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out


def plot_reliability(results_by_model: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path:
    """Reliability diagram of the threshold probabilities, one line per model (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 5))
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    for name, result in results_by_model.items():
        table = result.get("reliability") or []
        if table:
            ece = result.get("ece")
            label = f"{name} (ECE {ece:.3f})" if ece is not None else name
            axes.plot(
                [b["confidence"] for b in table],
                [b["frequency"] for b in table],
                marker="o",
                label=label,
            )
    axes.set_xlabel("predicted P(y > k)")
    axes.set_ylabel("observed frequency")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.legend()
    figure.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out
