"""Best-of-n selection with any set scorer, judged by a held-out oracle.

Each pool holds candidates for one prompt, and each candidate carries an oracle label the
scorer never sees (`flawed`, known to the generator that wrote it, or to a human). The
quality of a selection rule is the fraction of prompts whose pick is unflawed; choosing at
random earns, in expectation, the pool's unflawed fraction. Measuring at several n shows
whether a scorer turns more samples into better picks, as StoryReward's best-of-n does.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

from posttrain.eval.set_scorers import SetScorer, best_index


def select_best(scorer: SetScorer, prompts: list[str], candidates: list[list[str]]) -> list[int]:
    """The index of the top-scored candidate of each set (ties go to the earliest)."""
    return [best_index(scores) for scores in scorer.score_sets(prompts, candidates)]


def best_of_n_quality(
    scorer: SetScorer, pools: list[dict[str, Any]], ns: list[int]
) -> dict[str, dict[str, Any]]:
    """For each n, pick among each pool's first n candidates; unflawed rate of the picks
    against the expected rate of a random pick, and which flaws got picked.

    An independent scorer's score of a candidate does not depend on the others, so every
    pool is scored once in full and sliced per n; a listwise one (an LLM judge choosing
    one) is asked again for each n.
    """
    if not pools:
        raise ValueError("no pools to select from")
    smallest = min(len(pool["candidates"]) for pool in pools)
    if not ns or min(ns) < 1 or max(ns) > smallest:
        raise ValueError(f"ns must lie in 1..{smallest} (the smallest pool), got {ns}")
    prompts = [pool["prompt"] for pool in pools]
    texts = [[c["text"] for c in pool["candidates"]] for pool in pools]
    full = scorer.score_sets(prompts, texts) if scorer.independent else None
    out = {}
    for n in ns:
        sets = [pool["candidates"][:n] for pool in pools]
        if full is None:
            scores = scorer.score_sets(prompts, [t[:n] for t in texts])
        else:
            scores = [s[:n] for s in full]
        chosen = [s[best_index(sc)] for s, sc in zip(sets, scores, strict=True)]
        out[f"n={n}"] = {
            "n": n,
            "prompts": len(pools),
            "selected_unflawed": statistics.fmean(not c["flawed"] for c in chosen),
            "random_unflawed": statistics.fmean(
                statistics.fmean(not c["flawed"] for c in s) for s in sets
            ),
            "picked_flaws": dict(Counter(c["route"] for c in chosen if c["flawed"])),
        }
    return out
