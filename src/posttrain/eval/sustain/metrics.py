"""SustainScore and constraint satisfaction from the per-item records.

SustainScore is the accuracy, on the instances a model solved without constraints, after
self-evident constraints are inserted: here the mean correctness over all constrained variants
(one per solved item and number of constraints k), also given per k. Satisfaction is the
fraction of inserted constraints the new outputs satisfy, per constraint type and per k;
`all_satisfied` the fraction of variants that satisfy all of theirs. A rate over nothing
(a model that solved nothing) is None, never 0.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from posttrain.eval.core import Record


def rate(values: Sequence[bool]) -> float | None:
    return sum(map(bool, values)) / len(values) if values else None


def _variant_stats(variants: Sequence[Record]) -> dict[str, Any]:
    satisfied = [ok for v in variants for ok in v["satisfied"]]
    by_type: dict[str, list[bool]] = defaultdict(list)
    for v in variants:
        for spec, ok in zip(v["constraints"], v["satisfied"], strict=True):
            by_type[spec["id"]].append(ok)
    return {
        "n_variants": len(variants),
        "sustain_score": rate([v["correct"] for v in variants]),
        "satisfaction": rate(satisfied),
        "all_satisfied": rate([all(v["satisfied"]) for v in variants]),
        "satisfaction_by_type": {
            t: {"n": len(oks), "rate": rate(oks)} for t, oks in sorted(by_type.items())
        },
    }


def _by_k(variants: Sequence[Record], max_k: int) -> dict[str, Any]:
    """The same statistics for the variants with k inserted constraints, k = 1 .. max_k."""
    return {
        str(k): _variant_stats([v for v in variants if v["k"] == k]) for k in range(1, max_k + 1)
    }


def summarise(
    baseline: Sequence[Record], variants: Sequence[Record], max_k: int, domains: Sequence[str]
) -> dict[str, Any]:
    """Per domain and overall: baseline accuracy, SustainScore (pooled and per k), satisfaction."""

    def block(base: Sequence[Record], var: Sequence[Record]) -> dict[str, Any]:
        solved = [b for b in base if b["correct"]]
        return {
            "n_items": len(base),
            "n_solved": len(solved),
            "baseline_accuracy": rate([b["correct"] for b in base]),
            **_variant_stats(var),
            "by_k": _by_k(var, max_k),
        }

    per_domain = {
        d: block(
            [b for b in baseline if b["domain"] == d], [v for v in variants if v["domain"] == d]
        )
        for d in domains
    }
    return {"domains": per_domain, "overall": block(baseline, variants)}
