"""How far an LLM judge agrees with the rule verifier, step by step (Cohen's kappa).

Only steps that both labelled correct or hallucinated are compared (an "unverifiable"
step, or one a side did not label, is skipped and counted). Kappa is scikit-learn's
`cohen_kappa_score`: on the binary label (hallucinated or not), and per top-level category
one-vs-rest (hallucinated in that category, or not). Kappa is undefined when both sides
used a single, same class throughout (chance agreement is 1): it is then None with the
reason, never a crash or a NaN. Raw agreement and the confusion counts come with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sklearn.metrics import cohen_kappa_score

from posttrain.eval.mmthe.taxonomy import CATEGORIES, StepLabel

__all__ = ["judge_agreement", "kappa"]

Labels = Mapping[str, Sequence[StepLabel]]
DECIDED = ("correct", "hallucinated")


def kappa(first: Sequence[bool], second: Sequence[bool]) -> dict[str, Any]:
    """Cohen's kappa of two raters' yes/no calls on the same steps, with raw agreement and
    the 2x2 counts; `kappa` is None (with `kappa_undefined`) when it cannot be computed."""
    if len(first) != len(second):
        raise ValueError(f"{len(first)} and {len(second)} calls to compare")
    n = len(first)
    both_yes = sum(a and b for a, b in zip(first, second, strict=True))
    both_no = sum(not a and not b for a, b in zip(first, second, strict=True))
    result: dict[str, Any] = {
        "n": n,
        "both_yes": both_yes,
        "both_no": both_no,
        "only_first": sum(a and not b for a, b in zip(first, second, strict=True)),
        "only_second": sum(b and not a for a, b in zip(first, second, strict=True)),
        "raw_agreement": (both_yes + both_no) / n if n else None,
        "kappa": None,
        "kappa_undefined": None,
    }
    if n == 0:
        result["kappa_undefined"] = "no step was decided by both"
    elif len(set(first) | set(second)) < 2:
        only = "yes" if first[0] else "no"
        result["kappa_undefined"] = f"both said only {only!r} on all {n} steps"
    else:
        result["kappa"] = float(cohen_kappa_score(list(first), list(second)))
    return result


def judge_agreement(judge: Labels, verifier: Labels) -> dict[str, Any]:
    """The judge (first) against the rule verifier (second), on the items both labelled
    (`{item_id: [StepLabel, ...]}` each): binary kappa, per-category one-vs-rest kappa, the
    share of steps both called hallucinated where they name the same category, and counts of
    what was skipped."""
    shared = [item for item in judge if item in verifier]
    pairs: list[tuple[StepLabel, StepLabel]] = []
    skipped = 0
    for item in shared:
        theirs = {x.index: x for x in verifier[item]}
        for mine in judge[item]:
            other = theirs.get(mine.index)
            if other is not None and mine.label in DECIDED and other.label in DECIDED:
                pairs.append((mine, other))
            else:
                skipped += 1
        skipped += len(set(theirs) - {x.index for x in judge[item]})
    both_bad = [(a, b) for a, b in pairs if a.label == b.label == "hallucinated"]
    same_category = sum(a.category == b.category for a, b in both_bad)
    return {
        "items": len(shared),
        "items_only_judge": len(set(judge) - set(verifier)),
        "items_only_verifier": len(set(verifier) - set(judge)),
        "steps_compared": len(pairs),
        "steps_skipped": skipped,
        "binary": kappa(
            [a.label == "hallucinated" for a, _ in pairs],
            [b.label == "hallucinated" for _, b in pairs],
        ),
        "by_category": {
            category: kappa(
                [a.category == category for a, _ in pairs],
                [b.category == category for _, b in pairs],
            )
            for category in CATEGORIES
        },
        "same_category_when_both_hallucinated": {
            "count": same_category,
            "total": len(both_bad),
            "rate": same_category / len(both_bad) if both_bad else None,
        },
    }
