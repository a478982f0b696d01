"""The synthetic story world: premises, good stories, rejected routes, datasets, the oracle."""

from __future__ import annotations

import json
import random
import re
import statistics
import subprocess
import sys

import pytest

from posttrain.data.io import read_jsonl
from posttrain.data.stories import (
    ROUTES,
    Premise,
    StoryWorldConfig,
    benchmark_instances,
    build_story_data,
    candidate_pool,
    distinct_words,
    flaws,
    make_premises,
    preference_pairs,
    reject,
    word_count,
    write_story,
)
from posttrain.eval.rm_bench import evaluate_scorer
from posttrain.eval.set_scorers import LengthScorer, VocabularyScorer


@pytest.fixture(scope="module")
def premises() -> list[Premise]:
    return make_premises(300, 0)


def _mentions(text: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", text) is not None


def test_premises_are_seeded_distinct_and_prompted(premises):
    assert make_premises(300, 0) == premises
    assert make_premises(300, 1) != premises
    assert len({p.id for p in premises}) == 300
    names = [p.character for p in premises] + [p.companion for p in premises]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[A-Z][a-z]{2,}", name) for name in names)
    p = premises[0]
    prompt = p.prompt()
    for part in (p.character, p.goal, p.obstacle, p.setting, p.companion):
        assert part in prompt


def test_good_stories_have_beginning_conflict_resolution(premises):
    rng = random.Random(0)
    lengths = []
    for p in premises[:150]:
        story = write_story(p, rng)
        assert 5 <= len(story.sentences) <= 10
        assert story.text == " ".join(story.sentences)
        assert story.parts[0] == "beginning" and story.parts[-1] == "resolution"
        assert "conflict" in story.parts and story.parts == sorted(story.parts, key=_part_order)
        assert _mentions(story.text, p.character) and p.goal in story.text
        assert len(set(story.sentences)) == len(story.sentences)
        assert flaws(story.text, p) == []
        lengths.append(word_count(story.text))
    assert statistics.pstdev(lengths) > 8  # length varies, so it cannot mark the good one


def _part_order(part: str) -> int:
    return ("beginning", "conflict", "resolution").index(part)


@pytest.mark.parametrize("route", list(ROUTES))
def test_every_route_degrades_and_carries_its_dimension(premises, route):
    rng = random.Random(1)
    for p in premises[:40]:
        story = write_story(p, rng)
        bad = reject(story, route, rng)
        assert bad.route == route and bad.dimension == ROUTES[route]
        assert bad.text != story.text and bad.text == " ".join(bad.sentences)
        assert route in flaws(bad.text, p), (bad.note, bad.text)


def test_routes_do_not_change_the_length_distribution(premises):
    rng = random.Random(2)
    chosen, by_route = [], {route: [] for route in ROUTES}
    for p in premises[:200]:
        story = write_story(p, rng)
        chosen.append(word_count(story.text))
        for route in ROUTES:
            by_route[route].append(word_count(reject(story, route, rng).text))
    for route, lengths in by_route.items():
        assert abs(statistics.mean(lengths) - statistics.mean(chosen)) < 5, route


def test_mismatch_is_a_good_story_for_another_premise(premises):
    rng = random.Random(3)
    p, other = premises[0], premises[1]
    bad = reject(write_story(p, rng), "mismatch", rng, other_premise=other)
    assert not _mentions(bad.text, p.character)
    assert _mentions(bad.text, other.character) and other.goal in bad.text
    assert flaws(bad.text, other) == []
    with pytest.raises(ValueError, match="other_premise"):
        reject(write_story(p, rng), "mismatch", rng, other_premise=p)


def test_contradiction_states_a_fact_inconsistent_with_the_story(premises):
    settings = {p.setting for p in make_premises(800, 5)}
    goals = {p.goal for p in make_premises(800, 5)}
    rng = random.Random(4)
    kinds = set()
    for p in premises[:80]:
        bad = reject(write_story(p, rng), "contradiction", rng)
        sentences = bad.sentences
        other_settings = [s for s in settings - {p.setting} if s in bad.text]
        other_goals = [g for g in goals - {p.goal} if g in bad.text]
        dead = [i for i, s in enumerate(sentences) if "died" in s and _mentions(s, p.companion)]
        gone = [i for i, s in enumerate(sentences) if "gone for good" in s]
        if other_settings:  # the story still opens in the premise's setting
            assert p.setting in bad.text
            kinds.add("setting")
        elif other_goals:  # the goal stated first is not the one reached
            assert p.goal in bad.text
            kinds.add("goal")
        elif dead:  # a dead companion helps later on
            assert any(_mentions(s, p.companion) for s in sentences[dead[0] + 1 :])
            kinds.add("dead")
        else:  # an obstacle said to be gone for good still blocks the way
            assert gone and any("still blocked" in s for s in sentences[gone[0] + 1 :])
            kinds.add("obstacle")
    assert kinds == {"setting", "goal", "dead", "obstacle"}


def test_name_swap_and_repetition_and_drop_resolution(premises):
    rng = random.Random(5)
    for p in premises[:30]:
        story = write_story(p, rng)
        swapped = reject(story, "name_swap", rng)
        assert _mentions(swapped.text, p.character)
        words = set(re.findall(r"[A-Z][a-z]+", swapped.text)) - set(
            re.findall(r"[A-Z][a-z]+", story.text)
        )
        assert words, "a new name appears mid-story"
        repeated = reject(story, "repetition", rng)
        assert len(set(repeated.sentences)) < len(repeated.sentences) or "repeated in" in (
            repeated.note
        )
        dropped = reject(story, "drop_resolution", rng)
        resolution = [x.text for x in story.lines if x.part == 2]
        assert not set(resolution) & set(dropped.sentences)


def test_renames_avoid_reserved_names(premises):
    story = write_story(premises[0], 9)
    old = set(re.findall(r"[A-Z][a-z]+", story.text))

    def new_names(reserved):
        bad = reject(story, "name_swap", random.Random(9), reserved_names=reserved)
        return set(re.findall(r"[A-Z][a-z]+", bad.text)) - old

    first = new_names(())
    assert len(first) == 1
    assert new_names(first) and not new_names(first) & first


class _Reversed:
    """A scorer turned around: the lowest score wins ("shorter wins", "plainer wins")."""

    def __init__(self, scorer) -> None:
        self.scorer = scorer
        self.name = f"reversed-{scorer.name}"

    def score_sets(self, prompts: list[str], candidates: list[list[str]]) -> list[list[float]]:
        return [[-s for s in scores] for scores in self.scorer.score_sets(prompts, candidates)]


def _accuracy(scorer, instances) -> float:
    return evaluate_scorer(scorer, instances)["accuracy"]


def _pair_instances(pairs: list[dict]) -> list[dict]:
    """Pairs as one-rejected benchmark instances."""
    return [
        {
            "id": f"pair-{i}",
            "prompt": r["prompt"],
            "chosen": r["chosen"],
            "rejected": [r["rejected"]],
        }
        for i, r in enumerate(pairs)
    ]


def test_length_and_vocabulary_heuristics_are_near_chance(premises):
    bench = benchmark_instances(premises, 0)
    assert len(bench) == 300
    # the chosen's length rank is balanced, so the length heuristic is chance up to the rare
    # target a story cannot reach; distinct words follow length
    assert 0.22 <= _accuracy(LengthScorer(), bench) <= 0.28
    assert 0.22 <= _accuracy(_Reversed(LengthScorer()), bench) <= 0.28  # nor shortest
    assert 0.19 <= _accuracy(VocabularyScorer(), bench) <= 0.31
    assert 0.19 <= _accuracy(_Reversed(VocabularyScorer()), bench) <= 0.31
    pairs = _pair_instances(preference_pairs(premises[:100], 0, per_premise=4))
    assert 0.46 <= _accuracy(LengthScorer(), pairs) <= 0.54
    assert 0.44 <= _accuracy(VocabularyScorer(), pairs) <= 0.56


def test_word_measures_are_the_heuristic_scorers(premises):
    texts = [write_story(p, 11).text for p in premises[:20]] + ["Don't re-read it, twice-told"]
    assert LengthScorer().score_sets([""], [texts]) == [[float(word_count(t)) for t in texts]]
    assert VocabularyScorer().score_sets([""], [texts]) == [
        [float(distinct_words(t)) for t in texts]
    ]


def test_the_data_stage_does_not_import_eval():
    code = (
        "import sys, posttrain.data.stories; "
        "print(sorted(m for m in sys.modules if m.startswith('posttrain.eval')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_stories_are_fitted_to_a_requested_length(premises):
    rng = random.Random(10)
    for p in premises[:30]:
        story = write_story(p, rng, target_words=95)
        assert abs(word_count(story.text) - 95) <= 3
        for route in ROUTES:
            bad = reject(story, route, rng, target_words=110)
            assert abs(word_count(bad.text) - 110) <= 6, (route, bad.note)


def test_pairs_and_instances_have_the_documented_format(premises):
    pairs = preference_pairs(premises[:20], random.Random(6), per_premise=7)
    assert len(pairs) == 140
    keys = {"prompt", "chosen", "rejected", "route", "dimension", "premise_id"}
    assert all(set(row) == keys and all(isinstance(v, str) for v in row.values()) for row in pairs)
    assert {row["route"] for row in pairs} == set(ROUTES)  # 7 per premise: every route once
    assert all(row["dimension"] == ROUTES[row["route"]] for row in pairs)
    bench = benchmark_instances(premises[:50], 7, n_rejected=3)
    for row in bench:
        assert {"id", "prompt", "chosen", "rejected", "dimension", "routes", "dimensions"} <= set(
            row
        )
        assert len(row["rejected"]) == 3 and len(set(row["routes"])) == 3
        assert row["dimensions"] == [ROUTES[r] for r in row["routes"]]
        assert row["dimension"] in row["dimensions"]
        assert row["dimensions"].count(row["dimension"]) == max(
            row["dimensions"].count(d) for d in row["dimensions"]
        )
        assert row["chosen"] not in row["rejected"]


def test_build_writes_disjoint_splits_and_is_deterministic(tmp_path):
    stats = build_story_data(tmp_path / "a", 60, 30, 3, seed=0)
    pairs = read_jsonl(tmp_path / "a" / "pairs.train.jsonl")
    bench = read_jsonl(tmp_path / "a" / "bench.test.jsonl")
    assert len(pairs) == stats["pairs"] == 180 and len(bench) == stats["bench_instances"] == 30
    assert json.loads((tmp_path / "a" / "stats.json").read_text()) == stats
    pair_keys = {"prompt", "chosen", "rejected", "route", "dimension", "premise_id"}
    assert all(set(row) == pair_keys for row in pairs)
    bench_keys = {"id", "prompt", "chosen", "rejected", "dimension", "routes", "dimensions"}
    assert all(bench_keys <= set(row) and len(row["rejected"]) == 3 for row in bench)
    assert sum(stats["pairs_per_route"].values()) == 180
    assert stats["chance"] == 0.25 and "mean_words" in stats
    assert not [key for key in stats if "heuristic" in key]  # measured by posttrain.eval
    premises = make_premises(90, 0)
    train, test = premises[:60], premises[60:]
    assert {r["premise_id"] for r in pairs} == {p.id for p in train}
    assert {r["premise_id"] for r in bench} == {p.id for p in test}
    train_text = " ".join(r["chosen"] + " " + r["rejected"] for r in pairs)
    assert not any(_mentions(train_text, p.character) for p in test)

    build_story_data(tmp_path / "b", 60, 30, 3, seed=0)
    build_story_data(tmp_path / "c", 60, 30, 3, seed=1)
    for name in ("pairs.train.jsonl", "bench.test.jsonl", "stats.json"):
        same = (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        assert same, name
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "c" / name).read_bytes()


def test_candidate_pool_labels_match_the_oracle(premises):
    pool = candidate_pool(premises[0], 40, 8)
    assert pool == candidate_pool(premises[0], 40, 8)
    assert {c["flawed"] for c in pool} == {True, False}
    for p in premises[:20]:
        for c in candidate_pool(p, 10, random.Random(p.id)):
            found = flaws(c["text"], p)
            assert bool(found) == c["flawed"], (c, found)
            if c["flawed"]:
                assert c["route"] in found and c["dimension"] == ROUTES[c["route"]]
            else:
                assert c["route"] is None and c["dimension"] is None
    assert all(not c["flawed"] for c in candidate_pool(premises[0], 5, 0, flawed_rate=0.0))


def test_bad_arguments_name_the_argument(premises, tmp_path):
    story = write_story(premises[0], 0)
    with pytest.raises(ValueError, match="route.*'rewrite'"):
        reject(story, "rewrite", 0)
    with pytest.raises(ValueError, match="n_rejected.*0"):
        benchmark_instances(premises[:5], 0, n_rejected=0)
    with pytest.raises(ValueError, match="n_test_premises.*1"):
        build_story_data(tmp_path, 10, 1, 2, seed=0)
    with pytest.raises(ValueError, match="per_premise.*0"):
        preference_pairs(premises[:5], 0, per_premise=0)
    with pytest.raises(ValueError, match="n must be"):
        make_premises(0, 0)
    with pytest.raises(ValueError, match="route"):
        StoryWorldConfig(routes=("mismatch", "typo"))
    with pytest.raises(ValueError, match="premises"):
        preference_pairs(premises[:1], 0, per_premise=7)
