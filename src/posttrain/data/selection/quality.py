"""A linear quality probe: logistic regression on features, fitted on a small labelled subset,
scoring every row; and the filter that drops the rows it scores lowest.

SAERL (Tsinghua, 2026; issue 24) filters low-quality samples with a linear probe on SAE
activations. We use scikit-learn's LogisticRegression (balanced class weights: injected bad
items are the rare class) behind a StandardScaler. A stratified part of the labelled rows is
held out first: the probe's ROC AUC on it is the report; the scores of all rows then come
from a refit on every labelled row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from posttrain.errors import InputError

MIN_PER_CLASS = 4
"""Labelled rows of each class (good, low quality) at least: 2 to fit, 2 held out."""


@dataclass
class QualityFit:
    scores: np.ndarray
    """Probability that each row is of good quality."""
    report: dict


def _probe(seed: int, strength: float):
    from sklearn.linear_model import LogisticRegression  # slow import; only callers pay
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    classifier = LogisticRegression(
        C=strength, class_weight="balanced", max_iter=2000, random_state=seed
    )
    return make_pipeline(StandardScaler(), classifier)


def fit_quality(
    features: np.ndarray,
    labelled: np.ndarray,
    good: np.ndarray,
    *,
    heldout_share: float = 0.25,
    seed: int = 0,
    strength: float = 1.0,
    option: str = "quality",
) -> QualityFit:
    """Fit the probe on rows `labelled` with `good` (1: good, 0: low quality), report ROC AUC
    on a stratified held-out part, score every row. Too few labelled rows of either class is
    an InputError naming `option` and the counts."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    labelled = np.asarray(labelled)
    good = np.asarray(good, dtype=np.float64)
    if not np.isin(good, (0.0, 1.0)).all():
        raise InputError("quality labels must be 0/1 or true/false", key=option)
    counts = {"good": int((good == 1).sum()), "low": int((good == 0).sum())}
    if min(counts.values()) < MIN_PER_CLASS:
        raise InputError(
            f"{counts['good']} good and {counts['low']} low-quality labelled rows; the quality "
            f"probe needs at least {MIN_PER_CLASS} of each (half to fit, half held out)",
            key=option,
        )
    if not 0 < heldout_share < 1:
        raise InputError(
            f"{heldout_share!r}: a share strictly between 0 and 1", key="heldout_share"
        )
    positions = np.arange(len(labelled))
    heldout_count = max(2 * 2, int(round(heldout_share * len(labelled))))
    fit, heldout = train_test_split(
        positions, test_size=heldout_count, stratify=good, random_state=seed
    )
    probe = _probe(seed, strength).fit(features[labelled[fit]], good[fit])
    held_scores = probe.predict_proba(features[labelled[heldout]])[:, 1]
    report = {
        "labelled": int(len(labelled)),
        "labelled_low": counts["low"],
        "fit_rows": int(len(fit)),
        "heldout_rows": int(len(heldout)),
        "auc": float(roc_auc_score(good[heldout], held_scores)),
    }
    final = _probe(seed, strength).fit(features[labelled], good)
    return QualityFit(scores=final.predict_proba(features)[:, 1], report=report)


def keep_mask(
    scores: np.ndarray, threshold: float | None = None, drop_share: float | None = None
) -> np.ndarray:
    """Rows kept: those scored at least `threshold`, or all but the lowest `drop_share` of
    rows (ties broken by row index, so the count is exact). Exactly one of the two is set."""
    if (threshold is None) == (drop_share is None):
        raise InputError(
            "set exactly one of quality_threshold and quality_drop_share", key="quality_threshold"
        )
    if threshold is not None:
        if not 0 <= threshold <= 1:
            raise InputError(f"{threshold!r}: a probability in [0, 1]", key="quality_threshold")
        return scores >= threshold
    if not 0 <= drop_share < 1:
        raise InputError(f"{drop_share!r}: a share in [0, 1)", key="quality_drop_share")
    dropped = int(round(drop_share * len(scores)))
    keep = np.ones(len(scores), dtype=bool)
    keep[np.argsort(scores, kind="stable")[:dropped]] = False
    return keep
