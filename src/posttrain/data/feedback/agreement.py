"""How well labels agree with a held-out quality (the generator's `turn_quality`).

This is what tells whether a labeler (the rule script, or an LLM) is any good: the
Spearman correlation of label and quality (`posttrain.data.correlation`), the mean quality
per label, and a confusion table of label by quality.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from posttrain.data.correlation import spearman


def agreement(labels: Sequence[int], qualities: Sequence[float]) -> dict[str, Any]:
    """`{"n", "spearman", "mean_quality_by_label", "confusion": {label: {quality: count}}}`."""
    pairs = [(int(label), q) for label, q in zip(labels, qualities, strict=True)]
    confusion: dict[str, dict[str, int]] = {}
    for (label, quality), count in sorted(Counter(pairs).items()):
        confusion.setdefault(str(label), {})[str(quality)] = count
    means = {}
    for label in sorted({label for label, _ in pairs}):
        values = [q for lab, q in pairs if lab == label]
        means[str(label)] = round(float(np.mean(values)), 3)
    rho = spearman([p[0] for p in pairs], [p[1] for p in pairs])
    return {
        "n": len(pairs),
        "spearman": None if rho is None else round(rho, 4),
        "mean_quality_by_label": means,
        "confusion": confusion,
    }
