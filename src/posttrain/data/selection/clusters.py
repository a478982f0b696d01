"""k-means clusters of a feature matrix, their silhouette, and purity against true labels.

SAERL (Tsinghua, 2026; issue 24) clusters samples with k-means in SAE space to ground
diversity; we use scikit-learn's KMeans and silhouette_score rather than our own copies.
Purity is written here because scikit-learn has none: it is the share of rows whose
cluster's most common true label is their own (Manning et al., Introduction to Information
Retrieval, ch. 16.3), reported next to scikit-learn's adjusted Rand index.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from posttrain.errors import InputError

SILHOUETTE_SAMPLE = 2000
"""Rows the silhouette is computed on at most: it costs O(n^2), so larger sets are sampled."""


@dataclass
class Clustering:
    ids: np.ndarray
    """Cluster id (0..k-1) of every row."""
    silhouette: float | None
    """Mean silhouette in [-1, 1]; None where undefined (every row in one cluster)."""

    @property
    def sizes(self) -> list[int]:
        return np.bincount(self.ids).tolist()


def cluster(features: np.ndarray, k: int, seed: int = 0, normalize: bool = False) -> Clustering:
    """k-means with `k` clusters (n_init=10, seeded). `normalize` L2-normalises rows first, so
    that distance follows direction only (the usual choice for TF-IDF)."""
    from sklearn.cluster import KMeans  # scikit-learn is slow to import; only callers pay
    from sklearn.metrics import silhouette_score

    n = len(features)
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= n:
        raise InputError(
            f"{k!r}: k-means needs an integer k from 2 to the row count ({n})", key="clusters"
        )
    if normalize:
        norms = np.linalg.norm(features, axis=1, keepdims=True)
        features = features / np.where(norms == 0, 1.0, norms)
    ids = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(features)
    found = len(np.unique(ids))
    silhouette = None
    if 2 <= found < n:
        sample = min(n, SILHOUETTE_SAMPLE)
        silhouette = float(silhouette_score(features, ids, sample_size=sample, random_state=seed))
    return Clustering(ids=ids.astype(np.int64), silhouette=silhouette)


def purity(cluster_ids: Sequence[int] | np.ndarray, true_labels: Sequence[Any]) -> float:
    """Share of rows that carry their cluster's most common true label (1.0: every cluster
    holds one label; it rises with k, so compare it at equal k)."""
    ids = list(np.asarray(cluster_ids).tolist())
    if len(ids) != len(true_labels) or not ids:
        raise ValueError(
            f"purity needs one true label per row: {len(ids)} ids, {len(true_labels)} labels"
        )
    by_cluster: dict[int, Counter] = {}
    for cluster_id, label in zip(ids, true_labels, strict=True):
        by_cluster.setdefault(cluster_id, Counter())[label] += 1
    majority = sum(counts.most_common(1)[0][1] for counts in by_cluster.values())
    return majority / len(ids)


def agreement(cluster_ids: np.ndarray, true_labels: Sequence[Any]) -> dict[str, float]:
    """Purity and the adjusted Rand index (chance-corrected, 0 for random clusters) against
    the true labels."""
    from sklearn.metrics import adjusted_rand_score

    labels = [str(label) for label in true_labels]
    return {
        "purity": purity(cluster_ids, labels),
        "adjusted_rand": float(adjusted_rand_score(labels, np.asarray(cluster_ids))),
    }
