"""Is one policy better than another? A difference, its 95% CI and a verdict, two ways.

* Over seeds: Welch's t-test (`scipy.stats.ttest_ind(equal_var=False)`) on one score per
  seed and side. Seeds are the independent repeats of the whole pipeline (warm start and
  RL), so this is the test of "would another seed agree"; Welch's form because the two
  sides' seed variances need not be equal. With 2-3 seeds it has little power, and with one
  seed per side it is undefined (reported as None).
* Over questions: a bootstrap over held-out questions, pooled across seeds and paired by
  question and seed. Each question's difference is averaged over the seeds first and the
  questions are resampled whole, since a question's answers under different seeds are not
  independent. This measures how sure the held-out set makes the difference for these
  trained policies; it does not cover seed-to-seed variation. The percentile interval of
  `scipy.stats.bootstrap` is used because per-question differences of 0/1 scores take few
  values, where BCa's acceleration estimate can be undefined.

A difference is called significant at 95% when Welch's p < 0.05, or when the bootstrap
interval excludes 0, each reported on its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def welch(baseline: Sequence[float], treatment: Sequence[float]) -> dict[str, Any]:
    """`treatment - baseline` over per-seed scores: mean difference, 95% CI, p, verdict."""
    a, b = np.asarray(baseline, dtype=float), np.asarray(treatment, dtype=float)
    result: dict[str, Any] = {
        "test": "welch",
        "difference": float(b.mean() - a.mean()) if len(a) and len(b) else None,
        "ci_low": None,
        "ci_high": None,
        "p_value": None,
        "significant": None,
        "n": [len(a), len(b)],
    }
    if len(a) < 2 or len(b) < 2:
        return result  # no variance estimate on a side: the test is undefined
    if a.var(ddof=1) == 0 and b.var(ddof=1) == 0:
        same = result["difference"] == 0  # no spread: the difference is exact
        return {
            **result,
            "ci_low": result["difference"],
            "ci_high": result["difference"],
            "p_value": 1.0 if same else 0.0,
            "significant": not same,
        }
    test = stats.ttest_ind(b, a, equal_var=False)
    low, high = test.confidence_interval(CONFIDENCE)
    return {
        **result,
        "ci_low": float(low),
        "ci_high": float(high),
        "p_value": float(test.pvalue),
        "significant": bool(test.pvalue < 1 - CONFIDENCE),
    }


def paired_bootstrap(
    baseline: Mapping[Any, Sequence[float]],
    treatment: Mapping[Any, Sequence[float]],
    resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, Any]:
    """`treatment - baseline` over questions: `{question: [score per seed]}` on both sides,
    the seeds in the same order. Returns the mean difference, the percentile 95% CI of a
    bootstrap that resamples questions, and whether that interval excludes 0."""
    if set(baseline) != set(treatment):
        raise ValueError("the two sides were scored on different questions")
    if not baseline:
        raise ValueError("no questions to compare")
    per_question = []
    for question in sorted(baseline, key=str):
        a, b = baseline[question], treatment[question]
        if len(a) != len(b) or not a:
            raise ValueError(f"question {question!r}: {len(a)} and {len(b)} seeds to pair")
        per_question.append(float(np.mean(np.asarray(b, float) - np.asarray(a, float))))
    differences = np.asarray(per_question)
    mean = float(differences.mean())
    if np.all(differences == differences[0]):
        low = high = mean  # every resample gives the same mean
    else:
        interval = stats.bootstrap(
            (differences,),
            np.mean,
            confidence_level=CONFIDENCE,
            n_resamples=resamples,
            method="percentile",
            rng=np.random.default_rng(seed),
        ).confidence_interval
        low, high = float(interval.low), float(interval.high)
    return {
        "test": "paired_bootstrap",
        "difference": mean,
        "ci_low": low,
        "ci_high": high,
        "significant": bool(low > 0 or high < 0),
        "n": [len(differences), len(next(iter(baseline.values())))],
    }


def compare_runs(
    baseline: Mapping[Any, Mapping[Any, float]],
    treatment: Mapping[Any, Mapping[Any, float]],
    resamples: int = 10_000,
    seed: int = 0,
) -> dict[str, Any]:
    """Both tests on `{seed: {question: score}}` per side: Welch over the per-seed means and
    the paired bootstrap over the questions every seed of both sides scored."""
    if set(baseline) != set(treatment):
        raise ValueError(f"seeds differ: {sorted(baseline)} against {sorted(treatment)}")
    seeds = sorted(baseline)
    shared = set.intersection(*(set(side[s]) for side in (baseline, treatment) for s in seeds))
    if not shared:
        raise ValueError("no question was scored on both sides under every seed")
    per_question = {
        side_name: {q: [side[s][q] for s in seeds] for q in shared}
        for side_name, side in (("baseline", baseline), ("treatment", treatment))
    }
    return {
        "welch": welch(
            [float(np.mean(list(baseline[s].values()))) for s in seeds],
            [float(np.mean(list(treatment[s].values()))) for s in seeds],
        ),
        "bootstrap": paired_bootstrap(
            per_question["baseline"], per_question["treatment"], resamples, seed
        ),
    }


def describe(result: Mapping[str, Any]) -> str:
    """One line: `+3.0 pts [-1.2, 7.1]` and the verdict; 'n/a' where the test is undefined."""
    if result["ci_low"] is None or result["difference"] is None:
        return "n/a (needs 2 or more seeds per side)"
    points = [100 * result[k] for k in ("difference", "ci_low", "ci_high")]
    text = f"{points[0]:+.1f} pts [{points[1]:+.1f}, {points[2]:+.1f}]"
    if result.get("p_value") is not None and not math.isnan(result["p_value"]):
        text += f" p={result['p_value']:.3f}"
    return text + (" significant" if result["significant"] else " not significant")
