"""RPC-Bench's scores, computed as its own `eval.py` computes them.

For each judge, over the judged non-claim items: the mean Correctness, Completeness and
Conciseness ratings (0–5; a rating never read counts 0). Several judges are averaged
mean by mean. Then, **from those means** (not per item, then averaged — RPC-Bench's scorer
takes the harmonic mean of the two averages):

- ``correctness`` = Cor × 20 and ``completeness`` = Com × 20 (percent);
- ``f1`` = 2·Cor·Com / (Cor + Com) × 20 (0 when both are 0);
- ``conciseness_adjusted`` = (Con / 5) · (F1 / 5) · 100, with F1 on the 0–5 scale.

The same, per category. ``Claim_Verification`` is scored by accuracy; as in RPC-Bench, a
reply that was neither True nor False is left out of ``claim_accuracy`` (and counted in
``claim_invalid``); ``claim_accuracy_strict`` counts it as wrong.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from posttrain.eval.rpc.data import CLAIM
from posttrain.eval.rpc.judge import DIMENSIONS

Means = dict[str, float]  # dimension -> mean rating 0–5


def mean_ratings(judgments: Iterable[Mapping[str, Any]]) -> tuple[Means, dict[str, Means], int]:
    """Overall and per-category mean ratings of one judge's records, and their count."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for record in judgments:
        if record["category"] == CLAIM:
            continue
        ratings = record.get("ratings") or {}
        for group in ("overall", record["category"]):
            row = totals[group]
            for i, dim in enumerate(DIMENSIONS):
                row[i] += float(ratings.get(dim) or 0.0)
            row[3] += 1
    means = {
        group: {dim: row[i] / row[3] for i, dim in enumerate(DIMENSIONS)}
        for group, row in totals.items()
    }
    overall = means.pop("overall", dict.fromkeys(DIMENSIONS, 0.0))
    return overall, means, int(totals["overall"][3]) if "overall" in totals else 0


def average_means(per_judge: Sequence[Means]) -> Means:
    """Dimension by dimension, the average of several judges' means."""
    return {dim: sum(m[dim] for m in per_judge) / len(per_judge) for dim in DIMENSIONS}


def headline(means: Means) -> dict[str, float]:
    """Percent scores from mean ratings (see the module docstring for the formulas)."""
    cor, com, con = means["Correctness"], means["Completeness"], means["Conciseness"]
    f1 = 2 * cor * com / (cor + com) if cor + com > 0 else 0.0
    return {
        "correctness": cor * 20,
        "completeness": com * 20,
        "conciseness": con * 20,
        "f1": f1 * 20,
        "conciseness_adjusted": (con / 5) * (f1 / 5) * 100,
    }


def claim_scores(answers: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Accuracy of True/False answers against the references."""
    claims = [a for a in answers if a["category"] == CLAIM]
    valid = [a for a in claims if not a.get("claim_invalid") and a["answer"] in ("True", "False")]
    right = sum(a["answer"] == a["reference_answer"] for a in valid)
    return {
        "claim_items": len(claims),
        "claim_invalid": len(claims) - len(valid),
        # None, not 0: an accuracy over no valid verdict is undefined
        "claim_accuracy": 100 * right / len(valid) if valid else None,
        "claim_accuracy_strict": 100 * right / len(claims) if claims else None,
    }


def score_run(
    answers: Sequence[Mapping[str, Any]], judgments: Mapping[str, Sequence[Mapping[str, Any]]]
) -> dict[str, Any]:
    """Scores of one answering model: ``judgments`` maps a judge name to its records."""
    per_judge: dict[str, dict[str, Any]] = {}
    overall_means, category_means = [], defaultdict(list)
    for name, records in judgments.items():
        overall, by_category, count = mean_ratings(records)
        per_judge[name] = {"items": count, **headline(overall)}
        overall_means.append(overall)
        for category, means in by_category.items():
            category_means[category].append(means)
    result: dict[str, Any] = {}
    if overall_means:
        result.update(headline(average_means(overall_means)))
    result.update(claim_scores(answers))
    categories: dict[str, dict[str, Any]] = {}
    for category in sorted(category_means):
        # A category one judge lacks is averaged over the judges that have it, as RPC-Bench does.
        items = sum(1 for a in answers if a["category"] == category)
        categories[category] = {"items": items, **headline(average_means(category_means[category]))}
    claims = claim_scores(answers)
    if claims["claim_items"]:
        categories[CLAIM] = {
            "items": claims["claim_items"],
            "accuracy": claims["claim_accuracy"],
            "accuracy_strict": claims["claim_accuracy_strict"],
            "invalid": claims["claim_invalid"],
        }
    result["answered"] = len(answers)
    result["judges"] = per_judge
    result["categories"] = categories
    return result
