"""Answer rules (True/False, 3,000 characters) and the extractive scripted answerer."""

from __future__ import annotations

import pytest

from posttrain.eval.rpc.answer import (
    EXTRACTIVE,
    MAX_ANSWER_CHARS,
    claim_verdict,
    conversation,
    extract_answer,
    finish_answer,
    normalise_claim,
)
from posttrain.models.chat.spec import load_chat

CONTEXT = (
    "Title: Sparse Widgets\n\nAbstract: We train widgets with a sparse optimizer. "
    "The optimizer halves memory use. Results hold on three datasets."
)


@pytest.mark.parametrize(
    ("raw", "verdict"),
    [
        ("True", "True"),
        ("false", "False"),
        ("**True.**", "True"),
        ("Answer: FALSE\n", "False"),
        ("True or False? It depends.", None),
        ("Unclear", None),
        ("untrue", None),
    ],
)
def test_normalise_claim(raw, verdict):
    assert normalise_claim(raw) == verdict


def test_finish_answer_caps_open_answers_and_flags_invalid_claims():
    open_item = {"category": "Method_Mechanics"}
    long = "x" * (MAX_ANSWER_CHARS + 50)
    record = finish_answer(open_item, long)
    assert len(record["answer"]) == MAX_ANSWER_CHARS and record["raw_answer"] == long
    assert finish_answer(open_item, "short") == {"answer": "short"}
    claim = {"category": "Claim_Verification"}
    assert finish_answer(claim, "True") == {"answer": "True", "claim_invalid": False}
    assert finish_answer(claim, "It is true.") == {
        "answer": "True",
        "claim_invalid": False,
        "raw_answer": "It is true.",
    }
    assert finish_answer(claim, "maybe") == {
        "answer": "",
        "claim_invalid": True,
        "raw_answer": "maybe",
    }


def test_extractive_answer_picks_overlapping_sentences_in_order():
    answer = extract_answer("How much memory does the sparse optimizer use?", CONTEXT, top=1)
    assert answer == "The optimizer halves memory use."
    two = extract_answer("Which optimizer and how much memory?", CONTEXT)
    assert two == "We train widgets with a sparse optimizer. The optimizer halves memory use."
    assert extract_answer("Zebra?", CONTEXT) == "Sparse Widgets"


def test_claim_verdict_by_support():
    assert claim_verdict("The sparse optimizer halves memory.", CONTEXT) == "True"
    assert claim_verdict("Quantum annealing beats transformers.", CONTEXT) == "False"


def test_scripted_answerer_answers_the_real_prompts():
    model = load_chat(EXTRACTIVE)
    assert model.name == EXTRACTIVE
    items = [
        {
            "category": "Method_Mechanics",
            "question": "What does the optimizer halve?",
            "context": CONTEXT,
        },
        {
            "category": "Claim_Verification",
            "question": "Widgets use a sparse optimizer.",
            "context": CONTEXT,
        },
    ]
    texts = [r.text for r in model.chat([conversation(i) for i in items])]
    assert "halves memory" in texts[0]
    assert texts[1] == "True"
