"""StoryRMB-format benchmark: tie credit, per-dimension accuracy, resume, judges, best-of-n."""

import json
import re

import pytest

from posttrain.data.io import DataError, write_jsonl
from posttrain.eval.best_of_n import best_of_n_quality
from posttrain.eval.rm_bench import evaluate_scorer, load_instances, tie_credit
from posttrain.eval.set_scorers import (
    JudgeScorer,
    LengthScorer,
    Pointwise,
    RandomScorer,
    load_scorer,
    parse_choice,
    parse_rating,
)
from posttrain.models.chat.scripted import ScriptedChat


class KeywordScorer:
    """Prefers responses that say "good"; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def score(self, prompts, responses):
        self.calls += 1
        return [float(r.count("good")) for r in responses]


def _instances(n: int = 6) -> list[dict]:
    dims = ["coherence", "fluency"]
    return [
        {
            "id": f"i{k}",
            "prompt": f"Write about hero {k}.",
            "chosen": "a good good story",
            "rejected": ["a good tale", "a plain tale", "no"],
            "dimension": dims[k % 2],
        }
        for k in range(n)
    ]


def test_tie_credit_follows_rewardbench2():
    assert tie_credit([2.0, 1.0, 0.5, 0.1]) == 1.0
    assert tie_credit([1.0, 2.0, 0.5, 0.1]) == 0.0
    assert tie_credit([2.0, 2.0, 0.5, 0.1]) == 0.5
    assert tie_credit([1.0, 1.0, 1.0, 1.0]) == 0.25  # cannot tell them apart: chance
    assert tie_credit([1.0, 2.0, 2.0, 0.0]) == 0.0  # tied at the top without the chosen


def test_accuracy_per_dimension_and_random_baseline(tmp_path):
    instances = _instances()
    instances[1]["chosen"] = "plain"  # a fluency instance the scorer gets wrong
    results = evaluate_scorer(Pointwise(KeywordScorer(), "kw"), instances, tmp_path)
    assert results["n"] == 6 and results["accuracy"] == pytest.approx(5 / 6)
    assert results["random_baseline"] == 0.25
    assert results["per_dimension"]["coherence"] == {
        "n": 3,
        "accuracy": 1.0,
        "random_baseline": 0.25,
    }
    assert results["per_dimension"]["fluency"]["accuracy"] == pytest.approx(2 / 3)
    assert json.loads((tmp_path / "results.json").read_text()) == results
    assert results["pairwise_per_dimension"] == {}  # no per-rejected labels given
    # Any number of rejected: the baseline follows each instance's candidate count.
    two = [{**instances[0], "rejected": ["x"]}, {**instances[2], "id": "j"}]
    assert evaluate_scorer(LengthScorer(), two)["random_baseline"] == pytest.approx(0.375)


def test_pairwise_breakdown_by_the_flaw_of_each_rejected_response():
    instances = _instances(2)
    for instance in instances:
        instance["dimensions"] = ["fluency", "coherence", "coherence"]
        instance["routes"] = ["repetition", "shuffle", "drop_resolution"]
    instances[0]["rejected"][0] = "good good good"  # beats the chosen "a good good story"
    instances[1]["rejected"][1] = "a good good story"  # ties it
    results = evaluate_scorer(Pointwise(KeywordScorer(), "kw"), instances)
    assert results["pairwise_per_dimension"] == {
        "coherence": {"n": 4, "accuracy": (1 + 1 + 0.5 + 1) / 4},
        "fluency": {"n": 2, "accuracy": 0.5},
    }
    assert results["pairwise_per_route"]["shuffle"] == {"n": 2, "accuracy": 0.75}


def test_a_rerun_resumes_from_the_scores_written(tmp_path):
    instances = _instances(10)
    scorer = KeywordScorer()
    evaluate_scorer(Pointwise(scorer, "kw"), instances[:7], tmp_path, chunk_size=3)
    assert scorer.calls == 3
    lines = (tmp_path / "scores.jsonl").read_text().splitlines()
    assert len(lines) == 7
    results = evaluate_scorer(Pointwise(scorer, "kw"), instances, tmp_path, chunk_size=3)
    assert scorer.calls == 4  # only the 3 missing instances were scored
    assert results["n"] == 10 and results["accuracy"] == 1.0


def test_a_rerun_after_a_kill_mid_append_rescores_only_the_torn_instance(tmp_path):
    instances = _instances(4)
    evaluate_scorer(Pointwise(KeywordScorer(), "kw"), instances[:3], tmp_path, chunk_size=3)
    scores = tmp_path / "scores.jsonl"
    lines = scores.read_text().splitlines()
    scores.write_text("\n".join(lines[:2]) + "\n" + lines[2][:20])  # the kill tore line 3
    scorer = KeywordScorer()
    results = evaluate_scorer(Pointwise(scorer, "kw"), instances, tmp_path, chunk_size=3)
    assert scorer.calls == 1 and results["n"] == 4  # instances 3 and 4, in one chunk
    assert [json.loads(line)["id"] for line in scores.read_text().splitlines()] == [
        "i0",
        "i1",
        "i2",
        "i3",
    ]


def test_random_scorer_earns_chance_and_length_is_a_scorer():
    instances = [dict(i, id=f"r{k}") for k in range(100) for i in _instances(4)]
    accuracy = evaluate_scorer(RandomScorer(seed=1), instances)["accuracy"]
    assert 0.19 < accuracy < 0.31
    assert evaluate_scorer(LengthScorer(), _instances())["accuracy"] == 1.0


def test_bad_instances_name_file_and_row(tmp_path):
    path = tmp_path / "bench.jsonl"
    write_jsonl(path, [_instances(1)[0], {"id": "b", "prompt": "p", "chosen": "c"}])
    with pytest.raises(DataError, match=r"bench.jsonl: instance 2 lacks 'rejected'"):
        load_instances(path)
    write_jsonl(path, [{**_instances(1)[0], "rejected": []}])
    with pytest.raises(DataError, match="non-empty list"):
        load_instances(path)
    write_jsonl(path, [{**_instances(1)[0], "dimensions": ["fluency"]}])
    with pytest.raises(DataError, match="one label per rejected"):
        load_instances(path)
    write_jsonl(path, _instances(1) * 2)
    with pytest.raises(DataError, match="repeats instance 1"):
        load_instances(path)


def test_judge_replies_are_parsed_robustly():
    assert parse_rating("Score: 7") == 7
    assert parse_rating("**Score:** 8/10 because ...") == 8
    assert parse_rating("<think>Score: 2</think>\nscore = 9") == 9
    assert parse_rating("9") == 9
    assert parse_rating("Score: 11") is None and parse_rating("great story") is None
    assert parse_choice("Best: 3", k=4) == 2
    assert parse_choice("The best story is #2.\nBest: **4**", k=4) == 3
    assert parse_choice("Best: 5", k=4) is None and parse_choice("hmm", k=4) is None


def _rating_judge() -> ScriptedChat:
    def rate(match: re.Match, conversation) -> str:
        return f"Score: {min(10, 1 + 3 * match[1].count('good'))}"

    return ScriptedChat("rater", [(r"Response:\n(.*)\n\nReply", rate)])


def test_pointwise_judge_scores_through_a_chat_model():
    judge = JudgeScorer(_rating_judge())
    results = evaluate_scorer(judge, _instances())
    assert results["accuracy"] == 1.0 and results["scorer"] == "judge-pointwise:scripted:rater"
    assert judge.unparsed == 0 and judge.requests == 6 * 4


def _pick_good(match: re.Match, conversation) -> str:
    stories = re.findall(r"Story (\d+):\n(.*)", conversation[-1]["content"])
    return "Best: " + max(stories, key=lambda s: s[1].count("good"))[0]


def _picker() -> JudgeScorer:
    return JudgeScorer(ScriptedChat("picker", [(r"(?s)Story 1:.*", _pick_good)]), mode="listwise")


def test_listwise_judge_sees_shuffled_candidates_and_retries():
    judge = _picker()
    assert evaluate_scorer(judge, _instances())["accuracy"] == 1.0
    # Unreadable replies are asked again, then leave a full tie: exactly chance credit.
    mute = JudgeScorer(ScriptedChat("mute", default="I like them all"), "listwise", retries=2)
    assert evaluate_scorer(mute, _instances())["accuracy"] == 0.25
    assert mute.requests == 6 * 3 and mute.unparsed == 6


def test_load_scorer_specs(tmp_path):
    assert load_scorer("length").name == "length"
    assert load_scorer("random:3").name == "random:3"
    assert load_scorer("judge-listwise:scripted:echo").mode == "listwise"
    with pytest.raises(ValueError, match="no such directory"):
        load_scorer(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="seed must be an integer"):
        load_scorer("random:x")


def test_a_users_scorer_class_loads_by_import_path():
    assert load_scorer("posttrain.eval.set_scorers:VocabularyScorer").name == "vocabulary"
    with pytest.raises(ValueError, match="without score_sets"):
        load_scorer("collections:Counter")  # builds, but is no scorer


def test_best_of_n_beats_random_with_an_informative_scorer():
    pools = [
        {
            "prompt": f"p{k}",
            "candidates": [
                {"text": "plain", "flawed": True, "route": "shuffle"},
                {"text": "plain too", "flawed": True, "route": "repetition"},
                {"text": "good", "flawed": False, "route": None},
                {"text": "x", "flawed": True, "route": "shuffle"},
            ],
        }
        for k in range(5)
    ]
    out = best_of_n_quality(Pointwise(KeywordScorer(), "kw"), pools, ns=[1, 2, 4])
    assert out["n=1"]["selected_unflawed"] == 0.0 and out["n=1"]["random_unflawed"] == 0.0
    assert out["n=4"]["selected_unflawed"] == 1.0 and out["n=4"]["random_unflawed"] == 0.25
    # With no good candidate among the first two, ties go to the first: a shuffle flaw.
    assert out["n=2"]["picked_flaws"] == {"shuffle": 5}
    with pytest.raises(ValueError, match="1..4"):
        best_of_n_quality(LengthScorer(), pools, ns=[8])
    # A listwise judge sees only the first n candidates, so it is asked once per n.
    judge = _picker()
    assert best_of_n_quality(judge, pools, ns=[2, 4])["n=4"]["selected_unflawed"] == 1.0
    assert judge.requests == 2 * len(pools)


def _rb2(id_: str, subset: str, chosen: list[str], rejected: list[str]) -> dict:
    """A row in RewardBench 2's published layout (allenai/reward-bench-2)."""
    return {
        "id": id_,
        "prompt": f"Question {id_}?",
        "chosen": chosen,
        "rejected": rejected,
        "num_correct": len(chosen),
        "num_incorrect": len(rejected),
        "total_completions": len(chosen) + len(rejected),
        "models": ["m"] * (len(chosen) + len(rejected)),
        "subset": subset,
        "additional_metadata": {"source": "test"},
    }


# Scores are the count of "good" (KeywordScorer); the expected values are worked by hand
# from RewardBench 2's rules in the comments.
REWARDBENCH2 = [
    _rb2("1", "Factuality", ["good good"], ["good", "x", "y"]),  # [2,1,0,0]: 1
    _rb2("2", "Factuality", ["good"], ["good", "x", "y"]),  # [1,1,0,0]: tied at the top, 1/2
    _rb2("3", "Math", ["x"], ["good", "y", "z"]),  # [0,1,0,0]: 0
    _rb2("ref:7", "Ties", ["good good good"], ["good", "x"]),  # [3,1,0]: accurate, gap 2
    # [3,4,1,0]: accurate, gap 3-1=2, spread 4-3=1 -> preferred, hard (min gap 2 > 1), tanh(1)
    _rb2("tied:7", "Ties", ["good good good", "good good good good"], ["good", "x"]),
    _rb2("ref:8", "Ties", ["good"], ["good", "x"]),  # [1,1,0]: a tie is a miss here, gap 0
    # [1,2,0,0]: accurate, gap 1, spread 1 -> not preferred (1 > 1 fails), hard gap 0, tanh(-1)
    _rb2("tied:8", "Ties", ["good", "good good"], ["x", "y"]),
]


def test_rewardbench2_rows_score_per_subset_with_its_rules(tmp_path):
    import math

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(REWARDBENCH2), path)
    instances = load_instances(path)
    results = evaluate_scorer(Pointwise(KeywordScorer(), "kw"), instances, tmp_path / "out")
    subsets = results["per_subset"]
    assert set(subsets) == {"Factuality", "Math", "Ties"}
    assert subsets["Factuality"]["score"] == subsets["Factuality"]["accuracy"] == 0.75
    assert subsets["Factuality"]["random_baseline"] == 0.25
    assert subsets["Math"]["score"] == 0.0
    ties = subsets["Ties"]
    assert ties["accuracy"] == 0.75  # 3 of the 4 prompts strictly right
    assert ties["ref_accuracy"] == 0.5 and ties["tied_accuracy"] == 1.0
    assert ties["correctness_preferred"] == 0.5 and ties["correctness_preferred_hard"] == 0.5
    assert ties["correctness_margin_score"] == pytest.approx(0.0)  # tanh(1) and tanh(-1)
    assert ties["score"] == pytest.approx(0.3 * 1.0 + 0.3 * 0.5 + 0.2 * 0.5 + 0.2 * 0.5)
    # Random scores put all correct answers first with chance 1 / C(n, correct).
    assert ties["random_baseline"] == pytest.approx((1 / 3 + 1 / 6 + 1 / 3 + 1 / 6) / 4)
    assert results["mean_subset_score"] == pytest.approx((0.75 + 0.0 + 0.65) / 3)
    assert results["accuracy"] == pytest.approx(4.5 / 7)
    # One Ties pair alone: both margins favour correctness, so the margin term adds tanh(1).
    alone = evaluate_scorer(Pointwise(KeywordScorer(), "kw"), instances[3:5])
    assert alone["per_subset"]["Ties"]["score"] == pytest.approx(1.0 + 0.01 * math.tanh(1))
    # StoryRMB rows carry no subset, so their results have no per-subset block.
    assert "per_subset" not in evaluate_scorer(LengthScorer(), _instances())


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (_rb2("4", "Math", ["a", "b"], ["c"]), "2 chosen responses; only RewardBench 2's Ties"),
        (_rb2("9", "Ties", ["a", "b"], ["c"]), "Ties-subset id must read ref:N or tied:N"),
        ({**_rb2("5", "Math", ["a"], ["c"]), "num_correct": 2}, "num_correct is 2 but"),
        (_rb2("6", "Math", [], ["c"]), "'chosen' must be a non-empty list of strings"),
        (_rb2("6", "Math", ["a"], [3]), "'rejected' must be a non-empty list of strings"),
    ],
)
def test_bad_rewardbench2_rows_name_file_and_row(tmp_path, row, message):
    path = write_jsonl(tmp_path / "rb2.jsonl", [REWARDBENCH2[0], row])
    with pytest.raises(DataError, match=message) as caught:
        load_instances(path)
    assert str(caught.value).startswith(f"{path}: instance 2")
