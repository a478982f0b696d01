"""Datasets of the story world: preference pairs, benchmark instances, best-of-n pools."""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from posttrain.data.io import write_jsonl
from posttrain.data.stories.rejections import reject
from posttrain.data.stories.world import (
    DEFAULT_CONFIG,
    Premise,
    StoryWorldConfig,
    as_rng,
    make_premises,
    word_count,
)
from posttrain.data.stories.writing import write_story


def candidate_pool(
    premise: Premise,
    n: int,
    rng: random.Random | int,
    flawed_rate: float | None = None,
    config: StoryWorldConfig | None = None,
) -> list[dict[str, Any]]:
    """`n` candidate stories for one premise, each good (freshly worded) or, with probability
    `flawed_rate`, a rejected variant; best-of-n quality is the share of unflawed picks
    (`oracle.flaws` tells them apart)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    rng, cfg = as_rng(rng), config or DEFAULT_CONFIG
    rate = cfg.flawed_rate if flawed_rate is None else flawed_rate
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"flawed_rate must be in [0, 1], got {rate}")
    pool = []
    for _ in range(n):
        story = write_story(premise, rng, cfg)
        if rng.random() < rate:
            bad = reject(story, rng.choice(cfg.routes), rng, config=cfg)
            pool.append(
                {"text": bad.text, "flawed": True, "route": bad.route, "dimension": bad.dimension}
            )
        else:
            pool.append({"text": story.text, "flawed": False, "route": None, "dimension": None})
    return pool


def _ranked_targets(
    rng: random.Random, cfg: StoryWorldConfig, n: int, ranks: list[int]
) -> tuple[int, list[int]]:
    """Word-count targets for one chosen and n-1 rejected stories, all different where the
    range allows. The chosen's rank comes from a shuffled cycle over 0..n-1 (`ranks`, shared
    across a dataset), so it gets the longest target in exactly one row in n: "longer wins"
    and "shorter wins" score chance by construction, not only in expectation."""
    if not ranks:
        ranks.extend(range(n))
        rng.shuffle(ranks)
    span = range(cfg.min_words, cfg.max_words + 1)
    values = sorted(rng.sample(span, n) if len(span) >= n else rng.choices(span, k=n))
    chosen = values.pop(n - 1 - ranks.pop())  # rank 0 is the longest
    rng.shuffle(values)
    return chosen, values


def _names(premises: Sequence[Premise]) -> set[str]:
    return {name for p in premises for name in (p.character, p.companion)}


def _pick_other(premises: Sequence[Premise], i: int, rng: random.Random) -> Premise:
    """Another premise from the same list, preferring one with another goal and setting."""
    if len(premises) < 2:
        raise ValueError(
            f"premises must hold at least 2 premises for mismatch, got {len(premises)}"
        )
    for _ in range(20):
        j = rng.randrange(len(premises) - 1)
        other = premises[j + (j >= i)]
        if other.goal != premises[i].goal and other.setting != premises[i].setting:
            break
    return other


def preference_pairs(
    premises: Sequence[Premise],
    rng: random.Random | int,
    per_premise: int = 4,
    config: StoryWorldConfig | None = None,
    reserved_names: Collection[str] = (),
) -> list[dict[str, str]]:
    """StoryReward-style pairs in TRL's prompt/chosen/rejected format, routes balanced per
    premise (a shuffled cycle through the configured routes). Renames avoid every name in
    `premises` and `reserved_names`."""
    if per_premise < 1:
        raise ValueError(f"per_premise must be at least 1, got {per_premise}")
    rng, cfg = as_rng(rng), config or DEFAULT_CONFIG
    taken = _names(premises) | set(reserved_names)
    rows = []
    routes: list[str] = []
    ranks: list[int] = []
    for i, premise in enumerate(premises):
        for _ in range(per_premise):
            if not routes:
                routes = list(cfg.routes)
                rng.shuffle(routes)
            route = routes.pop()
            target, (other_target,) = _ranked_targets(rng, cfg, 2, ranks)
            story = write_story(premise, rng, cfg, target)
            other = _pick_other(premises, i, rng) if route == "mismatch" else None
            bad = reject(story, route, rng, other, cfg, taken, other_target)
            rows.append(
                {
                    "prompt": premise.prompt(),
                    "chosen": story.text,
                    "rejected": bad.text,
                    "route": route,
                    "dimension": bad.dimension,
                    "premise_id": premise.id,
                }
            )
    return rows


def benchmark_instances(
    premises: Sequence[Premise],
    seed: random.Random | int,
    n_rejected: int = 3,
    config: StoryWorldConfig | None = None,
    reserved_names: Collection[str] = (),
) -> list[dict[str, Any]]:
    """StoryRMB-style instances, one per premise: a chosen story and `n_rejected` rejected
    ones from different routes (where there are enough); `dimension` is the most common
    (ties: the earliest). Renames avoid every name in `premises` and `reserved_names`."""
    if n_rejected < 1:
        raise ValueError(f"n_rejected must be at least 1, got {n_rejected}")
    rng, cfg = as_rng(seed), config or DEFAULT_CONFIG
    taken = _names(premises) | set(reserved_names)
    rows = []
    ranks: list[int] = []
    for i, premise in enumerate(premises):
        routes = []
        while len(routes) < n_rejected:
            routes += rng.sample(cfg.routes, min(len(cfg.routes), n_rejected - len(routes)))
        target, targets = _ranked_targets(rng, cfg, 1 + n_rejected, ranks)
        story = write_story(premise, rng, cfg, target)
        others = [_pick_other(premises, i, rng) if r == "mismatch" else None for r in routes]
        rejected = [
            reject(story, r, rng, o, cfg, taken, t)
            for r, o, t in zip(routes, others, targets, strict=True)
        ]
        dimensions = [r.dimension for r in rejected]
        rows.append(
            {
                "id": f"storyrmb-{premise.id}",
                "prompt": premise.prompt(),
                "chosen": story.text,
                "rejected": [r.text for r in rejected],
                "dimension": Counter(dimensions).most_common(1)[0][0],
                "routes": routes,
                "dimensions": dimensions,
                "premise_id": premise.id,
            }
        )
    return rows


def _mean(values: Sequence[float]) -> float:
    return round(sum(values) / len(values), 2) if values else 0.0


def build_story_data(
    out_dir: str | Path,
    n_train_premises: int | None = None,
    n_test_premises: int | None = None,
    pairs_per_premise: int | None = None,
    seed: int | None = None,
    config: StoryWorldConfig | None = None,
) -> dict[str, Any]:
    """Write pairs.train.jsonl (train premises), bench.test.jsonl and pools.test.jsonl
    (disjoint test premises) and stats.json; return the stats. Arguments left None come
    from `config`.

    A pool is `{id, prompt, candidates: [{text, flawed, route, dimension}, ...]}`: the
    best-of-n candidates for one test premise with the generator's flaw labels, which a
    scorer must not see (they are the held-out oracle).

    How far the length and vocabulary heuristics get is a benchmark measurement, not a
    property of the data: `posttrain.eval.rm_bench.evaluate_scorer` with the `length` and
    `vocabulary` scorers of `posttrain.eval.set_scorers` measures it.
    """
    cfg = config or DEFAULT_CONFIG
    n_train = cfg.n_train_premises if n_train_premises is None else n_train_premises
    n_test = cfg.n_test_premises if n_test_premises is None else n_test_premises
    per = cfg.pairs_per_premise if pairs_per_premise is None else pairs_per_premise
    seed = cfg.seed if seed is None else seed
    # Mismatch stories come from another premise of the same split, so each needs two.
    for name, value in (("n_train_premises", n_train), ("n_test_premises", n_test)):
        if value < 2:
            raise ValueError(f"{name} must be at least 2 for a disjoint split, got {value}")
    premises = make_premises(n_train + n_test, seed)
    train, test = premises[:n_train], premises[n_train:]
    assert not {p.id for p in train} & {p.id for p in test}, "premise ids shared across splits"
    assert not _names(train) & _names(test), "character names shared across splits"
    everyone = _names(premises)  # renames in one split never borrow a name from the other
    pairs = preference_pairs(train, random.Random(f"story-pairs:{seed}"), per, cfg, everyone)
    bench = benchmark_instances(
        test, random.Random(f"story-bench:{seed}"), cfg.n_rejected, cfg, everyone
    )
    pool_rng = random.Random(f"story-pools:{seed}")
    pools = [
        {
            "id": p.id,
            "prompt": p.prompt(),
            "candidates": candidate_pool(p, cfg.pool_size, pool_rng, config=cfg),
        }
        for p in test
    ]
    out = Path(out_dir)
    write_jsonl(out / "pairs.train.jsonl", pairs)
    write_jsonl(out / "bench.test.jsonl", bench)
    write_jsonl(out / "pools.test.jsonl", pools)
    by_route: dict[str, list[int]] = {}
    for row in pairs:
        by_route.setdefault(row["route"], []).append(word_count(row["rejected"]))
    stats = {
        "seed": seed,
        "n_train_premises": n_train,
        "n_test_premises": n_test,
        "pairs": len(pairs),
        "bench_instances": len(bench),
        "pairs_per_route": dict(Counter(r["route"] for r in pairs)),
        "pairs_per_dimension": dict(Counter(r["dimension"] for r in pairs)),
        "bench_rejected_per_route": dict(Counter(x for r in bench for x in r["routes"])),
        "bench_per_dimension": dict(Counter(r["dimension"] for r in bench)),
        "mean_words": {
            "pairs_chosen": _mean([word_count(r["chosen"]) for r in pairs]),
            "pairs_rejected": _mean([word_count(r["rejected"]) for r in pairs]),
            "bench_chosen": _mean([word_count(r["chosen"]) for r in bench]),
            "bench_rejected": _mean([word_count(x) for r in bench for x in r["rejected"]]),
        },
        "mean_rejected_words_by_route": {k: _mean(v) for k, v in sorted(by_route.items())},
        "chance": round(1 / (1 + cfg.n_rejected), 4),
        "pools": len(pools),
        "pool_unflawed_rate": round(
            statistics.fmean(not c["flawed"] for pool in pools for c in pool["candidates"]), 4
        ),
    }
    (out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    return stats
