"""MM-THEBench's measurements at every level, as plain JSON-ready dicts.

Input: one record per item, `{"item": {...}, "chain": Chain | its dict, "labels": [StepLabel |
its dict, ...], "answer_correct": bool}` (labels from one judge, or `vote`d). Output
(`mmthe_metrics`): answer accuracy; the CoT level (a chain with any hallucinated step); the
step level overall, by category, sub-category, relative position and step number; "correct
answer, hallucinated chain"; and the three findings of the paper:

1. self-reflection introduces hallucinations: the step rate before the first reflection step
   and from it on (the reflection step itself counts as after: it is where the re-checked
   claim is written), paired per chain, and the share of reflective chains whose first
   hallucination is at or after the reflection;
2. perceptual errors lead to wrong or coincidentally correct answers: the share of wrong and
   of correct answers whose chain has a perception error;
3. spatial tasks expose format-invalid outputs: the format-invalid rate by task.

Every rate is `{"rate", "count", "total", "ci_low", "ci_high"}` (Wilson 95% interval, from
scipy); every comparison a difference with a bootstrap 95% interval (paired over chains
through `posttrain.eval.significance.paired_bootstrap`; unpaired groups by scipy's
two-sample bootstrap). Steps labelled "unverifiable", or not labelled, are counted but left
out of the step rates; a chain enters the CoT-level rates only when at least one of its
steps was decided.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from posttrain.eval.mmthe.segment import Chain, is_reflection
from posttrain.eval.mmthe.taxonomy import CATEGORIES, SUBCATEGORIES, StepLabel
from posttrain.eval.significance import CONFIDENCE, paired_bootstrap

__all__ = ["difference", "mmthe_metrics", "rate"]


def rate(count: int, total: int) -> dict[str, Any]:
    """count / total with its Wilson 95% interval (None throughout when total is 0)."""
    if total == 0:
        return {"rate": None, "count": count, "total": 0, "ci_low": None, "ci_high": None}
    interval = stats.binomtest(count, total).proportion_ci(CONFIDENCE, method="wilson")
    return {
        "rate": count / total,
        "count": count,
        "total": total,
        "ci_low": float(interval.low),
        "ci_high": float(interval.high),
    }


def difference(
    baseline: Sequence[float], treatment: Sequence[float], resamples: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """mean(treatment) - mean(baseline) of two independent groups, with the percentile 95%
    interval of a bootstrap resampling each group (scipy); the interval is None when a group
    has fewer than 2 values, and exact when neither group varies."""
    a, b = np.asarray(baseline, float), np.asarray(treatment, float)
    result: dict[str, Any] = {
        "test": "bootstrap",
        "difference": float(b.mean() - a.mean()) if len(a) and len(b) else None,
        "ci_low": None,
        "ci_high": None,
        "significant": None,
        "n": [len(a), len(b)],
    }
    if len(a) < 2 or len(b) < 2:
        return result
    if np.all(a == a[0]) and np.all(b == b[0]):
        low = high = result["difference"]
    else:
        interval = stats.bootstrap(
            (a, b),
            lambda x, y, axis: np.mean(y, axis=axis) - np.mean(x, axis=axis),
            confidence_level=CONFIDENCE,
            n_resamples=resamples,
            method="percentile",
            rng=np.random.default_rng(seed),
        ).confidence_interval
        low, high = float(interval.low), float(interval.high)
    return {**result, "ci_low": low, "ci_high": high, "significant": bool(low > 0 or high < 0)}


# --- one item -----------------------------------------------------------------------------------


@dataclass
class _Row:
    item_id: str
    task: str
    chain: Chain
    labels: list[StepLabel | None]
    answer_correct: bool

    @property
    def decided(self) -> list[StepLabel]:
        return [x for x in self.labels if x is not None and x.label != "unverifiable"]

    @property
    def judged(self) -> bool:
        return bool(self.decided)

    def hallucinated(self, category: str | None = None) -> list[int]:
        return [
            x.index
            for x in self.decided
            if x.label == "hallucinated" and category in (None, x.category)
        ]

    @property
    def first_reflection(self) -> int | None:
        return next((i for i, s in enumerate(self.chain.steps) if is_reflection(s)), None)


def _row(record: Mapping[str, Any], number: int) -> _Row:
    item = record.get("item") or {}
    item_id = str(item.get("id", record.get("item_id", f"#{number}")))
    for key in ("chain", "labels", "answer_correct"):
        if key not in record:
            raise ValueError(f"record {number} (item {item_id!r}) has no {key!r}")
    chain = record["chain"]
    chain = chain if isinstance(chain, Chain) else Chain.from_dict(chain)
    labels: list[StepLabel | None] = [None] * len(chain.steps)
    for raw in record["labels"]:
        label = raw if isinstance(raw, StepLabel) else StepLabel.from_dict(raw)
        if not 0 <= label.index < len(labels):
            raise ValueError(
                f"item {item_id!r}: a label for step {label.index} of {len(labels)} steps"
            )
        if labels[label.index] is not None:
            raise ValueError(f"item {item_id!r}: step {label.index} is labelled twice")
        labels[label.index] = label
    return _Row(
        item_id, str(item.get("task", "unknown")), chain, labels, bool(record["answer_correct"])
    )


# --- the levels ---------------------------------------------------------------------------------


def _step_levels(rows: list[_Row], position_bins: int) -> dict[str, Any]:
    decided = [x for r in rows for x in r.decided]
    bad = [x for x in decided if x.label == "hallucinated"]
    total = sum(len(r.labels) for r in rows)
    unverifiable = sum(1 for r in rows for x in r.labels if x and x.label == "unverifiable")
    edges = np.linspace(0, 1, position_bins + 1)
    positions: list[list[int]] = [[0, 0] for _ in range(position_bins)]
    by_index: dict[str, list[int]] = {}
    for r in rows:
        n = len(r.labels)
        for x in r.decided:
            where = min(int((x.index + 0.5) / n * position_bins), position_bins - 1)
            positions[where][0] += x.label == "hallucinated"
            positions[where][1] += 1
            key = str(x.index + 1) if x.index < 8 else "9+"
            counts = by_index.setdefault(key, [0, 0])
            counts[0] += x.label == "hallucinated"
            counts[1] += 1
    return {
        "steps": {
            "total": total,
            "decided": len(decided),
            "unverifiable": unverifiable,
            "unlabelled": total - len(decided) - unverifiable,
        },
        "step_hallucination": rate(len(bad), len(decided)),
        "by_category": {
            c: rate(sum(x.category == c for x in bad), len(decided)) for c in CATEGORIES
        },
        "category_share": {
            c: rate(sum(x.category == c for x in bad), len(bad)) for c in CATEGORIES
        },
        "by_subcategory": {
            s: rate(sum(x.subcategory == s for x in bad), len(decided)) for s in SUBCATEGORIES
        },
        "hallucinated_without_subcategory": sum(x.subcategory is None for x in bad),
        "by_position": [
            {"bin": f"{edges[i]:.0%}-{edges[i + 1]:.0%}", **rate(*positions[i])}
            for i in range(position_bins)
        ],
        "by_step_number": {k: rate(*v) for k, v in sorted(by_index.items(), key=_step_key)},
    }


def _step_key(entry: tuple[str, Any]) -> int:
    return 9 if entry[0] == "9+" else int(entry[0])


def _reflection(rows: list[_Row], resamples: int, seed: int) -> dict[str, Any]:
    """Finding 1: what follows a self-reflection step."""
    judged = [r for r in rows if r.judged]
    reflective = [r for r in judged if r.first_reflection is not None]
    plain = [r for r in judged if r.first_reflection is None]
    before, after = [0, 0], [0, 0]
    paired_before, paired_after = {}, {}
    first_after = 0
    for r in reflective:
        start = r.first_reflection
        sides = (
            [x for x in r.decided if x.index < start],
            [x for x in r.decided if x.index >= start],
        )
        for side, counts in zip(sides, (before, after), strict=True):
            counts[0] += sum(x.label == "hallucinated" for x in side)
            counts[1] += len(side)
        if all(sides):
            paired_before[r.item_id] = [np.mean([x.label == "hallucinated" for x in sides[0]])]
            paired_after[r.item_id] = [np.mean([x.label == "hallucinated" for x in sides[1]])]
        hallucinated = r.hallucinated()
        first_after += bool(hallucinated) and min(hallucinated) >= start
    with_hallucination = sum(bool(r.hallucinated()) for r in reflective)
    return {
        "chains_with_reflection": rate(len(reflective), len(judged)),
        "step_rate_before": rate(*before),
        "step_rate_from_reflection_on": rate(*after),
        "after_minus_before_paired": (
            paired_bootstrap(paired_before, paired_after, resamples, seed)
            if paired_before
            else None
        ),
        "first_hallucination_at_or_after_reflection": {
            "of_reflective_chains": rate(first_after, len(reflective)),
            "of_reflective_hallucinated_chains": rate(first_after, with_hallucination),
        },
        "cot_rate_with_minus_without_reflection": difference(
            [bool(r.hallucinated()) for r in plain],
            [bool(r.hallucinated()) for r in reflective],
            resamples,
            seed,
        ),
    }


def _perception(rows: list[_Row], resamples: int, seed: int) -> dict[str, Any]:
    """Finding 2: perception errors and the answers they end in."""
    judged = [r for r in rows if r.judged]
    wrong = [bool(r.hallucinated("perception")) for r in judged if not r.answer_correct]
    right = [bool(r.hallucinated("perception")) for r in judged if r.answer_correct]
    with_error = [r for r in judged if r.hallucinated("perception")]
    return {
        "wrong_answers_with_perception_error": rate(sum(wrong), len(wrong)),
        "correct_answers_with_perception_error": rate(sum(right), len(right)),
        "wrong_minus_correct": difference(right, wrong, resamples, seed),
        "perception_error_chains_answered_wrong": rate(
            sum(not r.answer_correct for r in with_error), len(with_error)
        ),
    }


def _format(rows: list[_Row], resamples: int, seed: int) -> dict[str, Any]:
    """Finding 3: format-invalid outputs by task, spatial against the other tasks."""
    tasks = sorted({r.task for r in rows})
    by_task = {
        t: rate(
            sum(not r.chain.format_ok for r in rows if r.task == t), sum(r.task == t for r in rows)
        )
        for t in tasks
    }
    spatial = [not r.chain.format_ok for r in rows if r.task == "spatial"]
    other = [not r.chain.format_ok for r in rows if r.task != "spatial"]
    return {
        "format_invalid": rate(sum(not r.chain.format_ok for r in rows), len(rows)),
        "format_invalid_by_task": by_task,
        "format_invalid_spatial_minus_other": difference(other, spatial, resamples, seed),
    }


def mmthe_metrics(
    records: Iterable[Mapping[str, Any]],
    *,
    position_bins: int = 3,
    resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Every level's measurements of one model under one judge (see the module docstring)."""
    if position_bins < 1:
        raise ValueError(f"position_bins must be >= 1, got {position_bins}")
    rows = [_row(record, number) for number, record in enumerate(records)]
    judged = [r for r in rows if r.judged]
    right = [r for r in judged if r.answer_correct]
    bad_chain_right = sum(bool(r.hallucinated()) for r in right)
    return {
        "items": len(rows),
        "judged_items": len(judged),
        "answer_accuracy": rate(sum(r.answer_correct for r in rows), len(rows)),
        "cot_hallucination": rate(sum(bool(r.hallucinated()) for r in judged), len(judged)),
        "cot_by_category": {
            c: rate(sum(bool(r.hallucinated(c)) for r in judged), len(judged)) for c in CATEGORIES
        },
        **_step_levels(rows, position_bins),
        "correct_answer_hallucinated_chain": {
            "of_correct_answers": rate(bad_chain_right, len(right)),
            "of_all": rate(bad_chain_right, len(judged)),
        },
        "perception": _perception(rows, resamples, seed),
        "reflection": _reflection(rows, resamples, seed),
        **_format(rows, resamples, seed),
    }
