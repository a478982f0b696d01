"""IFEval instructions (checked by the official implementation), rule verifiers for rubric
items, and the registered `instruction_following` reward."""

from __future__ import annotations

import pytest

from posttrain.rewards import get_reward
from posttrain.rewards.instructions import (
    check_instruction,
    check_verifier,
    instruction_ids,
    instruction_score,
    verify,
)

APPROX = pytest.approx


def test_rule_verifiers():
    assert verify({"type": "regex", "pattern": "ibuprofen", "present_if": "no_match"}, "rest")
    assert verify({"type": "regex", "pattern": "REST", "ignore_case": True}, "rest")
    kw = {"type": "keywords", "all": ["warm compress", "stretch"], "any": ["rest", "sleep"]}
    assert verify(kw, "Use a Warm  Compress, stretch, then rest.")
    assert not verify(kw, "Use a warm compress and stretches, then rest.")  # whole words only
    assert not verify({"type": "keywords", "any": ["rest"]}, "restless")


def test_check_verifier_names_what_is_wrong():
    check_verifier({"type": "keywords", "any": "rest"})
    for bad, message in [
        ({"type": "magic"}, "unknown verifier type 'magic'"),
        ({"type": "regex"}, "needs a string 'pattern'"),
        ({"type": "regex", "pattern": "("}, "bad regex"),
        ({"type": "regex", "pattern": "x", "present_if": "maybe"}, "present_if"),
        ({"type": "keywords"}, "non-empty 'all' or 'any'"),
        ({"type": "keywords", "all": [1]}, "all must be a string or a non-empty list"),
        ({"type": "keywords", "any": {"a": 1}}, "any must be a list"),
        ({"type": "instruction", "id": "nope"}, "unknown IFEval instruction 'nope'"),
        ({"type": "instruction", "id": "keywords:existence"}, "needs keywords"),
    ]:
        with pytest.raises(ValueError, match=message):
            check_verifier(bad)
        with pytest.raises(ValueError, match=message):
            verify(bad, "text")


# (spec in IFEval's official kwargs, a response that follows it, one that does not)
CASES = [
    (
        {"id": "length_constraints:number_words", "relation": "less than", "num_words": 4},
        "one two three",
        "one two three four",
    ),
    (
        {"id": "length_constraints:number_words", "relation": "at least", "num_words": 3},
        "a b c d",
        "a b",
    ),
    (
        {"id": "length_constraints:number_sentences", "relation": "at least", "num_sentences": 2},
        "Hi. Bye!",
        "Hi.",
    ),
    # IFEval's paragraphs are separated by markdown dividers, not blank lines.
    ({"id": "length_constraints:number_paragraphs", "num_paragraphs": 2}, "a\n***\nb", "a\n\nb"),
    (
        {"id": "detectable_format:number_bullet_lists", "num_bullets": 2},
        "- a\n* b",
        "- a\n- b\n- c",
    ),
    ({"id": "detectable_format:json_format"}, '```json\n{"a": 1}\n```', "{a: 1}"),
    ({"id": "keywords:existence", "keywords": ["rest", "fluids"]}, "Rest and fluids.", "Rest."),
    (
        {"id": "keywords:forbidden_words", "forbidden_words": ["cure"]},
        "It is curable? no",
        "A cure.",
    ),
    ({"id": "punctuation:no_comma"}, "no commas here", "a, b"),
    (
        {"id": "startend:end_checker", "end_phrase": "Any other questions?"},
        "Ok. Any other questions? ",
        "Any other questions? Ok.",
    ),
    (
        {"id": "change_case:english_lowercase"},
        "the forest is quiet and full of tall old trees.",
        "The forest is quiet and full of tall old trees.",
    ),
]


@pytest.mark.parametrize(("spec", "good", "bad"), CASES, ids=[c[0]["id"] for c in CASES])
def test_instruction_checkers(spec, good, bad):
    assert check_instruction(good, spec)
    assert not check_instruction(bad, spec)
    kwargs = {k: v for k, v in spec.items() if k != "id"}
    assert check_instruction(good, {"id": spec["id"], "kwargs": kwargs})


def test_loose_checking_and_the_official_ids():
    spec = {"id": "change_case:english_lowercase"}
    response = "Sure, here it is:\nthe forest is quiet and full of tall old trees."
    assert not check_instruction(response, spec)
    assert check_instruction(response, spec, loose=True)  # the first line dropped
    assert len(instruction_ids()) == 25 and "startend:quotation" in instruction_ids()


def test_instruction_score_combine_modes():
    specs = [
        {"id": "punctuation:no_comma"},
        {"id": "change_case:english_lowercase"},
        {"id": "keywords:existence", "kwargs": {"keywords": ["rest"]}},
    ]
    response = "please rest, then hydrate"  # fails no_comma only
    assert instruction_score(response, specs, "sum") == 2.0
    assert instruction_score(response, specs, "min") == 0.0
    assert instruction_score(response, specs, "average") == APPROX(2 / 3)
    assert instruction_score("please rest", specs, "min") == 1.0
    assert instruction_score("x", [], "min") == 1.0 and instruction_score("x", [], "sum") == 0.0
    with pytest.raises(ValueError, match="combine"):
        instruction_score(response, specs, "product")
    with pytest.raises(ValueError, match="known: .*punctuation:no_comma"):
        instruction_score(response, [{"id": "nope"}])
    with pytest.raises(ValueError, match="needs relation"):
        check_instruction("x", {"id": "length_constraints:number_words", "num_words": 3})
    with pytest.raises(ValueError, match="bad arguments.*'less than', 'at least'"):
        check_instruction(
            "x", {"id": "length_constraints:number_words", "relation": "at most", "num_words": 3}
        )


def test_instruction_following_is_a_registered_reward():
    reward = get_reward("instruction_following")
    specs = [{"id": "punctuation:no_comma"}, {"id": "keywords:existence", "keywords": ["rest"]}]
    scores = reward(
        prompts=["a", "b", "c", "d"],
        completions=["please rest, then hydrate", "please rest", "hydrate", "anything"],
        instructions=[specs, specs, specs, []],
        instruction_combine=["average", "min", "sum", None],
    )
    assert scores == [0.5, 1.0, 1.0, None]
    with pytest.raises(ValueError, match="needs an 'instructions' column"):
        reward(prompts=["a"], completions=["x"])
