"""`select`: the whole selection stage on one feature matrix, each component switchable.

Order of work: the quality probe filters rows; the kept rows are trimmed to whole batches;
k-means clusters the rows; the difficulty regressor predicts every row's difficulty; the
curriculum orders the kept rows into cluster-first batches with tails mixed between
neighbours. The result is the order of rows an RL run takes as written
(`data.order: as_written`, `PromptStream`), one batch per step when `batch_size` is the
run's `prompts_per_step`.

The features may be SAE codes, raw activations or TF-IDF vectors (the issue's baselines):
nothing here knows which.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from posttrain.data.selection.batches import exchanged_rows, mixing_ratio
from posttrain.data.selection.clusters import agreement, cluster
from posttrain.data.selection.curriculum import ordered_batches
from posttrain.data.selection.difficulty import fit_difficulty
from posttrain.data.selection.inputs import check_features, column_values, labelled_values
from posttrain.data.selection.quality import fit_quality, keep_mask
from posttrain.errors import InputError


@dataclass
class SelectionSettings:
    """What `select` does; each component can be switched off for ablations."""

    batch_size: int = 16
    """Rows per batch: the RL run's `prompts_per_step`."""
    seed: int = 0
    clusters: int | None = 8
    """k of k-means; None: no clustering (all rows one group)."""
    cluster_normalize: bool = False
    """L2-normalise rows before k-means (direction only; usual for TF-IDF)."""
    interleave_clusters: bool = True
    """Merge the clusters' batches by progress (curriculum.py); False: one cluster after
    another."""
    mixing: str | float = "moderate"
    """Tail mixing between neighbouring batches: none / moderate / heavy or p in [0, 1]."""
    curriculum: bool = True
    """Easy to hard within clusters by predicted difficulty; False: seeded shuffle."""
    difficulty_column: str = "difficulty"
    """The labelled subset's difficulty (rows without it are unlabelled)."""
    difficulty_higher_is_easier: bool = False
    """True when the column is a pass rate (the policy's measured success)."""
    difficulty_cv_folds: int = 5
    quality_filter: bool = True
    quality_column: str = "quality_ok"
    """The labelled subset's quality: 1 / true good, 0 / false low quality."""
    quality_column_flags_low: bool = False
    """True when the column marks low quality instead (1 / true: bad)."""
    quality_threshold: float | None = 0.5
    """Drop rows whose probability of good quality is below this ..."""
    quality_drop_share: float | None = None
    """... or drop this share of rows, the lowest scored (set one of the two)."""
    label_budget: int | None = None
    """Use at most this many labelled rows per component (a seeded choice): for ground-truth
    sets where every row carries its labels; None: every labelled row."""
    heldout_share: float = 0.25
    """Share of each labelled subset held out for the report (R^2, Spearman, AUC)."""
    topic_column: str | None = "topic"
    """True labels for cluster purity, when every row has one."""


@dataclass
class Selection:
    order: list[int]
    """Kept row indices in training order (the batches one after another)."""
    batches: list[list[int]]
    cluster_ids: np.ndarray | None
    """Cluster of every input row; None without clustering."""
    difficulty: np.ndarray | None
    """Predicted difficulty of every input row; None without the curriculum."""
    quality: np.ndarray | None
    """Probe's probability of good quality for every input row; None without the filter."""
    report: dict[str, Any] = field(default_factory=dict)


def _labelled(rows, column: str, settings) -> tuple[np.ndarray, np.ndarray]:
    """The rows labelled in `column` and their values, cut to `label_budget` when set."""
    labelled, values = labelled_values(rows, column)
    budget = settings.label_budget
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
            raise InputError(f"{budget!r}: a positive integer or null", key="label_budget")
        if len(labelled) > budget:
            chosen = np.sort(
                np.random.default_rng(settings.seed).choice(len(labelled), budget, replace=False)
            )
            labelled, values = labelled[chosen], values[chosen]
    return labelled, values


def _quality(features, rows, settings, report) -> tuple[np.ndarray, np.ndarray]:
    labelled, values = _labelled(rows, settings.quality_column, settings)
    if not len(labelled):
        raise InputError(
            "no row has this column: label a subset, or set quality_filter: false",
            key=settings.quality_column,
        )
    good = 1.0 - values if settings.quality_column_flags_low else values
    fitted = fit_quality(
        features,
        labelled,
        good,
        heldout_share=settings.heldout_share,
        seed=settings.seed,
        option=settings.quality_column,
    )
    keep = keep_mask(fitted.scores, settings.quality_threshold, settings.quality_drop_share)
    report.update({f"quality_{key}": value for key, value in fitted.report.items()})
    report["quality_dropped"] = int((~keep).sum())
    return fitted.scores, keep


def _trim_to_batches(kept: np.ndarray, scores: np.ndarray | None, settings) -> np.ndarray:
    """The kept rows less `len % batch_size` of them: the lowest-scored by the quality probe
    when it ran, else a seeded random choice, so that every batch is whole."""
    size = settings.batch_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InputError(f"{size!r}: a positive integer", key="batch_size")
    if len(kept) < size:
        raise InputError(f"{size}: only {len(kept)} rows are kept", key="batch_size")
    extra = len(kept) % size
    if not extra:
        return kept
    if scores is not None:
        dropped = kept[np.argsort(scores[kept], kind="stable")[:extra]]
    else:
        dropped = np.random.default_rng(settings.seed).choice(kept, extra, replace=False)
    return np.setdiff1d(kept, dropped)


def _difficulty(features, rows, settings, report) -> np.ndarray:
    labelled, values = _labelled(rows, settings.difficulty_column, settings)
    if not len(labelled):
        raise InputError(
            "no row has this column: label a subset, or set curriculum: false",
            key=settings.difficulty_column,
        )
    labels = -values if settings.difficulty_higher_is_easier else values
    fitted = fit_difficulty(
        features,
        labelled,
        labels,
        folds=settings.difficulty_cv_folds,
        heldout_share=settings.heldout_share,
        seed=settings.seed,
        option=settings.difficulty_column,
    )
    report.update({f"difficulty_{key}": value for key, value in fitted.report.items()})
    return fitted.predicted


def select(
    features: Any, rows: Sequence[dict[str, Any]], settings: SelectionSettings | None = None
) -> Selection:
    """Filter, cluster, order and batch `rows` from their `features` (`[len(rows), d]`)."""
    settings = settings or SelectionSettings()
    matrix = check_features(features, len(rows))
    p = mixing_ratio(settings.mixing)
    report: dict[str, Any] = {"rows": len(rows), "features_dim": int(matrix.shape[1])}

    scores = None
    kept = np.arange(len(rows))
    if settings.quality_filter:
        scores, keep = _quality(matrix, rows, settings, report)
        kept = kept[keep]
    kept = _trim_to_batches(kept, scores, settings)
    report["dropped_to_fill_batches"] = int(
        len(rows) - report.get("quality_dropped", 0) - len(kept)
    )

    cluster_ids = None
    if settings.clusters is not None:
        clustering = cluster(matrix, settings.clusters, settings.seed, settings.cluster_normalize)
        cluster_ids = clustering.ids
        report.update(
            {
                "clusters": settings.clusters,
                "silhouette": clustering.silhouette,
                "cluster_sizes": clustering.sizes,
            }
        )
        topics = column_values(rows, settings.topic_column) if settings.topic_column else None
        if topics is not None:
            report.update(agreement(cluster_ids, topics))

    difficulty = _difficulty(matrix, rows, settings, report) if settings.curriculum else None

    groups = cluster_ids if cluster_ids is not None else np.zeros(len(rows), dtype=np.int64)
    batches = ordered_batches(
        kept,
        groups,
        difficulty,
        settings.batch_size,
        interleave_clusters=settings.interleave_clusters,
        mixing=p,
        seed=settings.seed,
    )
    report.update(
        {
            "kept": int(len(kept)),
            "batches": len(batches),
            "mixing_p": p,
            "mixing_rows_exchanged": exchanged_rows(settings.batch_size, p),
            "settings": asdict(settings),
        }
    )
    order = [row for batch in batches for row in batch]
    return Selection(
        order=order,
        batches=batches,
        cluster_ids=cluster_ids,
        difficulty=difficulty,
        quality=scores,
        report=report,
    )


def ordered_rows(rows: Sequence[dict[str, Any]], selection: Selection) -> list[dict[str, Any]]:
    """The selected rows in training order: the file an `as_written` RL run reads."""
    return [rows[index] for index in selection.order]
