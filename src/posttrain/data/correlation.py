"""Spearman's rank correlation, the one implementation every layer uses.

Labels are checked against a held-out quality (`posttrain.data.feedback.agreement`) and
reward-model scores against labels (`posttrain.eval.calibration`) with the same statistic; it
lives at the data layer so that both may import it (data may not import eval). The number is
scipy's `spearmanr` (average ranks for ties); this wrapper only says where it is undefined.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _values(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has non-finite values")
    return array


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float | None:
    """Spearman's rho of paired values; None where a rank correlation is undefined (fewer than
    two pairs, or either side constant) instead of scipy's NaN and warning. Sides of different
    lengths, or with non-finite values, are a ValueError."""
    a, b = _values(x, "x"), _values(y, "y")
    if len(a) != len(b):
        raise ValueError(f"lengths differ: {len(a)} and {len(b)}")
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    from scipy.stats import spearmanr  # scipy is slow to import; only callers pay for it

    return float(spearmanr(a, b).statistic)
