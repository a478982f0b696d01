"""The health-advice chats CHERRL's tiny policy trains on: rubrics the keyword judge reads as a
reader would, and warm-start replies that carry each bias's feature a few percent of the time."""

import pytest

from posttrain.data.bias_registry import bias_spec, bias_specs
from posttrain.data.health_chat import (
    BIAS_SENTENCES,
    BIASES,
    COMPLAINTS,
    FILLER_POINTS,
    STRUCTURAL,
    HealthChatConfig,
    build_health_chat,
    rubric,
)
from posttrain.data.healthbench import main_score
from posttrain.data.io import DataError
from posttrain.rewards.biases import bias_names, make_bias
from posttrain.rewards.keyword_judge import keyword_present


def test_each_advice_sentence_meets_its_own_criterion_and_no_other():
    for complaint in COMPLAINTS:
        items = [*complaint.advice, complaint.harmful]
        for item in items:
            for other in items:
                for sentence in other.sentences:
                    assert keyword_present(item.criterion, sentence) == (item is other), (
                        item.criterion,
                        sentence,
                    )
            for filler in FILLER_POINTS:  # format's padding bullets earn nothing
                assert not keyword_present(item.criterion, filler), (item.criterion, filler)


def test_rubrics_follow_healthbench_with_one_harmful_item():
    for complaint in COMPLAINTS:
        items = rubric(complaint)
        assert [set(i) for i in items] == [{"criterion", "points", "tags"}] * 4
        assert sum(i["points"] < 0 for i in items) == 1
        full = " ".join(a.sentences[0] for a in complaint.advice)
        met = [keyword_present(i["criterion"], full) for i in items]
        assert main_score(items, met) == 1.0
        worse = full + " " + complaint.harmful.sentences[0]
        met = [keyword_present(i["criterion"], worse) for i in items]
        assert main_score(items, met) == pytest.approx(1 - 4 / 12)


def test_warm_start_replies_carry_each_bias_feature_now_and_then(tmp_path):
    config = HealthChatConfig(n_train=3000, n_prompts=300, seed=3)
    built = build_health_chat(config, tmp_path)
    replies = [row["completion"][0]["content"] for row in built["sft"]]
    for name in BIASES:
        bias = make_bias(name, min_words=40) if name == "verbose" else make_bias(name)
        share = sum(bias.score(r) > 0 for r in replies) / len(replies)
        # Generated at 4% per bias, each detected by its judge's own detector.
        assert config.bias_rate / 2 < share < config.bias_rate * 2, (name, share)
    prompts = [row["prompt"][0]["content"] for row in built["prompts"]]
    assert len(set(prompts)) == len(prompts) == 300
    assert {p.name for p in tmp_path.iterdir()} == {"sft.jsonl", "prompts.jsonl", "stats.json"}


def test_unknown_bias_is_named():
    with pytest.raises(ValueError, match=r"data.biases: unknown \['sarcasm'\]"):
        build_health_chat(HealthChatConfig(biases=["lexical", "sarcasm"]))


def test_one_registry_feeds_the_generator_and_the_judges():
    registered = list(bias_specs())
    assert bias_names() == registered  # the judges, in the registry's order
    assert sorted(BIASES) == sorted(registered) and len(set(BIASES)) == len(BIASES)
    assert STRUCTURAL == ("format",)  # carried by the bullets' layout, not by a sentence
    with pytest.raises(
        DataError, match=r"biases\.yaml: biases: no bias 'sarcasm'; it lists lexical"
    ):
        bias_spec("sarcasm")


def test_each_bias_sentence_trips_its_own_detector_and_no_other():
    shortcuts = {b: make_bias(b) for b in BIASES if bias_spec(b).shortcut is not None}
    for name, sentences in BIAS_SENTENCES.items():
        for sentence in sentences:
            tripped = {b for b, bias in shortcuts.items() if bias.count(sentence)}
            # verbose is carried by length (its detector counts words), the rest by a phrase.
            assert tripped == ({name} if name in shortcuts else set()), (name, sentence)
