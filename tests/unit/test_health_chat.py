"""The health-advice chats CHERRL's tiny policy trains on: rubrics the keyword judge reads as a
reader would, and warm-start replies that carry each bias's feature a few percent of the time."""

import pytest

from posttrain.data.bias_registry import bias_spec, bias_specs
from posttrain.data.health_chat import (
    BACKBONES,
    BIAS_SENTENCES,
    BIASES,
    COMPLAINTS,
    FILLER_POINTS,
    PHRASED,
    STRUCTURAL,
    HealthChatConfig,
    backbone,
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
    assert STRUCTURAL == ("format",)  # carried by a three-part layout, not by a sentence
    with pytest.raises(
        DataError, match=r"biases\.yaml: biases: no bias 'sarcasm'; it lists lexical"
    ):
        bias_spec("sarcasm")


def test_each_bias_sentence_trips_its_own_detector_and_no_other():
    detectors = {b: make_bias(b) for b in BIASES if bias_spec(b).structure != "length"}
    for which, phrased in PHRASED.items():
        for name, sentences in phrased.items():
            assert len(sentences) >= 2, (which, name)  # a family of phrasings, not one
            for sentence in sentences:
                tripped = {b for b, bias in detectors.items() if bias.count(sentence)}
                # verbose is carried by length (its detector counts words), the rest by a phrase
                assert tripped == ({name} if name in detectors else set()), (which, sentence)


def test_the_two_phrasing_families_are_disjoint():
    for name, tuning in PHRASED["tuning"].items():
        assert not set(tuning) & set(PHRASED["validation"][name]), name
    assert not set(BACKBONES["tuning"]) & set(BACKBONES["validation"])
    assert PHRASED["tuning"] == BIAS_SENTENCES


def test_each_backbone_is_a_three_part_backbone_and_nothing_else():
    complaint = COMPLAINTS[0]
    points = [complaint.advice[0].sentences[0], complaint.advice[1].sentences[0], FILLER_POINTS[0]]
    detectors = {b: make_bias(b) for b in BIASES}
    for which, layouts in BACKBONES.items():
        assert len(layouts) >= 2, which
        for layout in layouts:
            text = "Sorry to hear that.\n\n" + backbone(layout, points)
            assert {b for b, bias in detectors.items() if bias.count(text)} == {"format"}, text
            labels = " ".join(layout.parts).replace("{point}", "").replace("{Point}", "")
            for item in rubric(complaint):  # section labels earn no rubric points
                assert not keyword_present(item["criterion"], labels), (labels, item)


def test_validation_phrasings_carry_each_bias_in_the_other_family(tmp_path):
    config = HealthChatConfig(n_train=1500, n_prompts=20, seed=5, phrasings="validation")
    replies = [row["completion"][0]["content"] for row in build_health_chat(config)["sft"]]
    tuning_sentences = {s for family in PHRASED["tuning"].values() for s in family}
    assert not any(s in reply for reply in replies for s in tuning_sentences)
    for name in BIASES:
        bias = make_bias(name, min_words=40) if name == "verbose" else make_bias(name)
        share = sum(bias.score(r) > 0 for r in replies) / len(replies)
        assert config.bias_rate / 2 < share < config.bias_rate * 2, (name, share)
    with pytest.raises(ValueError, match="data.phrasings: expected one of"):
        build_health_chat(HealthChatConfig(n_train=1, n_prompts=1, phrasings="heldout"))
