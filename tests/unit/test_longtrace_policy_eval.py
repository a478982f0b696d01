"""Held-out LongTraceRL evaluation: the same scoring as the rewards, summarised by hop."""

import pytest

from posttrain.eval.longtrace_policy import evaluate_policy, mean_over_seeds, summarise
from posttrain.models.chat.scripted import ScriptedChat


def _row(question: str, label: str, rubrics: list[str], hops: int) -> dict:
    return {
        "id": question,
        "input_messages": [{"role": "user", "content": f"Documents: ...\n\nQuestion: {question}"}],
        "label": label,
        "metadata": {
            "extra_reward_info": {
                "question": question,
                "rubrics": rubrics,
                "aliases": [],
                "hops": hops,
                "distractor_setting": "tiered",
            }
        },
    }


ROWS = [
    _row("q1", "Pakrafamar", ["Sami"], 2),
    _row("q2", "Zapuland", ["Sumu"], 2),
    _row("q3", "Neru Debofi", ["Krufaga", "Bimu Foundation"], 3),
]
ANSWERS = {
    "q1": "Sami -> Pakrafamar\nAnswer: Pakrafamar",  # right, full chain
    "q2": "Answer: Zapuland",  # right, chain skipped
    "q3": "Krufaga -> Bimu Foundation -> Kevi\nAnswer: Kevi",  # right chain, wrong answer
}


def _scripted() -> ScriptedChat:
    return ScriptedChat("longtrace", [(r"Question: (q\d)$", lambda m, c: ANSWERS[m[1]])])


def test_accuracy_and_recall_among_correct_by_hop():
    summary, records = evaluate_policy(_scripted(), ROWS)
    assert [r["correct"] for r in records] == [True, True, False]
    assert [r["rubric_recall"] for r in records] == [1.0, 0.0, 1.0]
    assert summary["all"] == {
        "n": 3,
        "accuracy": pytest.approx(2 / 3),
        "rubric_recall_correct": 0.5,
    }
    assert summary["hops=2"]["accuracy"] == 1.0
    # q3 names its whole chain but answers wrong: it does not count towards recall.
    assert summary["hops=3"] == {"n": 1, "accuracy": 0.0, "rubric_recall_correct": None}
    assert list(summary) == ["all", "hops=2", "hops=3"]


def test_ill_formed_answers_are_wrong():
    wrong_only = summarise([{"hops": 2, "correct": False, "rubric_recall": 1.0}])
    assert wrong_only["all"]["rubric_recall_correct"] is None
    chat = ScriptedChat("thinks-twice", default="</think></think>Answer: Pakrafamar")
    summary, _ = evaluate_policy(chat, ROWS[:1])
    assert summary["all"]["accuracy"] == 0.0


def test_mean_over_seeds_reports_spread():
    a = {"all": {"n": 10, "accuracy": 0.2, "rubric_recall_correct": 0.5}}
    b = {"all": {"n": 10, "accuracy": 0.4, "rubric_recall_correct": None}}
    merged = mean_over_seeds([a, b])["all"]
    assert merged["accuracy"] == pytest.approx(0.3)
    assert merged["accuracy_std"] == pytest.approx(0.1414, abs=1e-4)
    assert merged["rubric_recall_correct"] == 0.5 and merged["rubric_recall_correct_std"] is None
    assert merged["seeds"] == 2


def test_no_rows_is_an_error():
    with pytest.raises(ValueError, match="no rows"):
        evaluate_policy(ScriptedChat("silent"), [])
