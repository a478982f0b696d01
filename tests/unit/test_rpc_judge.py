"""Judge replies: fenced JSON, LaTeX backslashes, regex fallbacks, retries, the lexical proxy."""

from __future__ import annotations

import pytest

from posttrain.eval.rpc.judge import (
    DIMENSIONS,
    LEXICAL,
    LEXICAL_LABEL,
    RPCJudge,
    escape_backslashes,
    judge_conversation,
    lexical_ratings,
    parse_rating,
)
from posttrain.models.chat.scripted import ScriptedChat
from posttrain.models.chat.spec import load_chat

ITEM = {
    "id": "p1",
    "part_idx": 1,
    "category": "Method_Mechanics",
    "title": "Sparse Widgets",
    "abstract": "We study widgets.",
    "question": "What halves memory?",
    "reference_answer": "The sparse optimizer halves memory use.",
}


@pytest.mark.parametrize(
    ("reply", "key", "rating"),
    [
        (
            '```json\n{"Correctness": {"rating": "4.60", "rationale": "ok"}}\n```',
            "Correctness",
            4.6,
        ),
        ('{"Completeness": {"rating": 3}}', "Completeness", 3.0),
        # LaTeX: \alpha and \mathcal are not JSON escapes and would make json.loads fail.
        (
            '```json\n{"Correctness": {"rating": "2.50", "rationale": "uses $\\alpha$ and '
            '\\mathcal{L}"}}\n```',
            "Correctness",
            2.5,
        ),
        # Broken JSON (unclosed string): the structured regex still finds the rating.
        ('{"Conciseness": {"rating": "3.75", "rationale": "cut off', "Conciseness", 3.75),
        ("Correctness rating: 4.2 because it matches.", "Correctness", 4.2),
        ('{"correctness": {"Rating": "1.10"}}', "Correctness", 1.1),
        ('{"Correctness": {"rating": "7.00"}}', "Correctness", None),  # out of range
        ("I cannot rate this.", "Correctness", None),
        ('{"Completeness": {"rating": "4.00"}}', "Correctness", None),  # another dimension
        ("", "Correctness", None),
        (None, "Correctness", None),
    ],
)
def test_parse_rating(reply, key, rating):
    assert parse_rating(reply, key) == rating


def test_escape_backslashes_keeps_valid_escapes():
    assert escape_backslashes(r'"a\"b\\c\n \alpha \u00e9"') == r'"a\"b\\c\n \\alpha \u00e9"'


def test_prompts_ask_for_one_dimension_as_json():
    for dim in DIMENSIONS:
        system, user = judge_conversation(ITEM, "It halves memory.", dim)
        assert f'{{"{dim}": {{"rating"' in system["content"]
        assert all(other not in system["content"] for other in DIMENSIONS if other != dim)
        assert "<predicted_answer>It halves memory.</predicted_answer>" in user["content"]
        assert "<reference_answer>The sparse optimizer" in user["content"]


def _dimension(conversation) -> str:
    return next(d for d in DIMENSIONS if f'{{"{d}"' in conversation[0]["content"])


def test_messy_judge_is_retried_until_readable():
    seen: dict[str, int] = {}

    def messy(conversation) -> str:
        dim = _dimension(conversation)
        seen[dim] = seen.get(dim, 0) + 1
        if dim == "Correctness" and seen[dim] == 1:
            return "Let me think about it..."  # unreadable the first time
        if dim == "Completeness":
            return (
                '```json\n{"Completeness": {"rating": "3.20", "rationale": "misses $\\beta$"}}\n```'
            )
        return '{"' + dim + '": {"rating": "4.00", "rationale": "fine"'  # truncated JSON

    judge = RPCJudge(ScriptedChat("messy", default=messy), max_retries=2)
    [record] = judge.judge_batch([(ITEM, "It halves memory.")])
    assert record["ratings"] == {"Correctness": 4.0, "Completeness": 3.2, "Conciseness": 4.0}
    assert record["retries"] == 1 and record["failed"] == []
    assert judge.stats.retries == 1 and judge.stats.calls == 4 and judge.stats.unparsed == 0
    assert record["score"][1].startswith("```json") and record["judge"] == "scripted:messy"


def test_a_judge_never_readable_fails_the_dimension():
    judge = RPCJudge(ScriptedChat("mute", default="no idea"), max_retries=1)
    [record, empty] = judge.judge_batch([(ITEM, "Something."), (ITEM, "  ")])
    assert record["ratings"] == dict.fromkeys(DIMENSIONS)
    assert record["failed"] == list(DIMENSIONS) and record["retries"] == 3
    assert judge.stats.unparsed == 3 and judge.stats.calls == 6  # the empty answer is not sent
    assert empty["failed"] == [] and empty["ratings"] == dict.fromkeys(DIMENSIONS)


def test_lexical_ratings_by_hand():
    # reference words: sparse optimizer halves memory use (5); predicted: optimizer halves
    # memory quickly (4); shared 3 -> precision 3/4, recall 3/5, length ratio min(1, 5/4).
    ratings = lexical_ratings(ITEM["reference_answer"], "The optimizer halves memory quickly")
    assert ratings == {"Correctness": 3.75, "Completeness": 3.0, "Conciseness": 5.0}
    assert lexical_ratings("x b c", "b c d e f g")["Conciseness"] == 2.5
    assert lexical_ratings("x", "") == {d: 0.0 for d in DIMENSIONS}


def test_lexical_judge_answers_the_real_prompts_through_the_parser():
    judge = RPCJudge(load_chat(LEXICAL))
    [record] = judge.judge_batch([(ITEM, "The optimizer halves memory quickly")])
    assert record["ratings"] == {"Correctness": 3.75, "Completeness": 3.0, "Conciseness": 5.0}
    assert record["judge_label"] == LEXICAL_LABEL
    assert all(LEXICAL_LABEL in reply for reply in record["score"])
