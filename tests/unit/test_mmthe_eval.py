"""MM-THEBench evaluation: segmentation, the LLM step judge and voting, metrics, agreement."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from posttrain.data.scenes.steps import REFLECTION_PHRASES
from posttrain.eval.mmthe.agreement import judge_agreement
from posttrain.eval.mmthe.judge import (
    JudgeResult,
    StepJudge,
    image_resolver,
    parse_step_labels,
    vote,
    vote_items,
)
from posttrain.eval.mmthe.metrics import mmthe_metrics
from posttrain.eval.mmthe.segment import (
    Chain,
    is_reflection,
    segment_chain,
    segment_with_judge,
    split_sentences,
)
from posttrain.eval.mmthe.taxonomy import StepLabel
from posttrain.models.chat.images import content_image_urls, content_text, image_part, load_image
from posttrain.models.chat.scripted import ScriptedChat

# --- segmentation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, steps, answer, markers",
    [
        (
            "Step 1: There are 3 red circles.\nStep 2: There are 2 blue squares.\n"
            "Step 3: 3 + 2 = 5.\nAnswer: 5",
            ["There are 3 red circles.", "There are 2 blue squares.", "3 + 2 = 5."],
            "5",
            "step",
        ),
        (  # a reflection inside a marked step becomes a step of its own
            "Step 1: There are 3 red circles. Wait, let me re-check: there are 4 red circles.\n"
            "Step 2: 4 + 2 = 6.\nAnswer: 6",
            [
                "There are 3 red circles.",
                "Wait, let me re-check: there are 4 red circles.",
                "4 + 2 = 6.",
            ],
            "6",
            "step",
        ),
        (  # decimals and "e.g." do not split; an answer-only step stays (a conclusion)
            "1. The apples bar reads 3.5, e.g. above pears.\n2. Pears read 2.\n"
            "3. So the answer is apples.",
            [
                "The apples bar reads 3.5, e.g. above pears.",
                "Pears read 2.",
                "So the answer is apples.",
            ],
            "apples",
            "numbered",
        ),
        (
            "First, I count 3 circles. They are red. Then, I count 2 squares. Finally, 3 + 2 = 5."
            " The answer is 5.",
            [
                "First, I count 3 circles. They are red.",
                "Then, I count 2 squares.",
                "Finally, 3 + 2 = 5. The answer is 5.",
            ],
            "5",
            "ordinal",
        ),
        ("- three circles\n- two squares\n5", ["three circles", "two squares"], "5", "bullets"),
        (
            "There are 3 circles. Hmm, actually there are 4. Final answer: **4**.",
            ["There are 3 circles.", "Hmm, actually there are 4."],
            "4",
            "sentences",
        ),
        (
            "The cube is left of the ball and it is blue",
            ["The cube is left of the ball and it is blue"],
            None,
            "sentences",
        ),
        ("   ", [], None, "empty"),
    ],
)
def test_segment_chain(text, steps, answer, markers):
    chain = segment_chain(text)
    assert (chain.steps, chain.answer, chain.markers) == (steps, answer, markers)
    assert chain.format_ok is (answer is not None)
    assert Chain.from_dict(json.loads(json.dumps(chain.to_dict()))) == chain


def test_sentences_and_reflection_phrases():
    assert split_sentences("It is 3.5 cm, e.g. in Fig. 2. Then stop. ok") == [
        "It is 3.5 cm, e.g. in Fig. 2.",
        "Then stop. ok",
    ]
    for text in (
        "Wait, no.",
        "Step 4: LET ME RE-CHECK the count",
        "Hmm, actually 4",
        "On second thought, 2",
        "Let me double-check: 3",
        "- but wait, there is a fourth",
    ):
        assert is_reflection(text), text
    for phrase in REFLECTION_PHRASES:  # the phrases the scene data writes are all recognised
        assert is_reflection(f"{phrase.capitalize()}: there are 4 red circles."), phrase
    for text in (
        "Waiting lists are long.",
        "The answer needs a re-check.",
        "Actual sizes differ.",
    ):
        assert not is_reflection(text), text


def _counting(replies):
    """A ScriptedChat answering with `replies` in turn, and the number of chat calls."""
    calls = []

    def answer(match, conversation):
        calls.append(content_text(conversation[-1]["content"]))
        return replies[min(len(calls), len(replies)) - 1]

    return ScriptedChat("test-judge", [(r"(?s).*", answer)]), calls


def test_segment_with_judge_reasks_then_falls_back():
    text = "I see 3 circles and 2 squares, so 3 + 2 = 5.\nAnswer: 5"
    model, calls = _counting(
        ["Sure! Steps below.", '```json\n["I see 3 circles.", "3 + 2 = 5."]\n```']
    )
    chain = segment_with_judge(model, text)
    assert (chain.steps, chain.answer, chain.markers) == (
        ["I see 3 circles.", "3 + 2 = 5."],
        "5",
        "judge",
    )
    assert len(calls) == 2 and text.splitlines()[0] in calls[0]

    never, _ = _counting(["no list here"])
    fallback = segment_with_judge(never, text, retries=1)
    assert fallback.markers == "judge-fallback:sentences"
    assert fallback.steps == segment_chain(text).steps and "2 attempts" in fallback.notes[0]


# --- the step judge -----------------------------------------------------------------------------

GOOD = [
    {"step": 1, "label": "correct"},
    {"step": 2, "label": "hallucinated", "category": "Perception", "subcategory": "count"},
]


@pytest.fixture(scope="module")
def png_url():
    return image_part(Image.new("RGB", (16, 16), (200, 30, 30)))["image_url"]["url"]


def _item(item_id, question, **extra):
    return {
        "id": item_id,
        "question": question,
        "answer": "5",
        "steps": [{"text": "There are 3 red circles."}],
        **extra,
    }


def test_step_judge_reasks_records_failures_and_batches(png_url, tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "scene.png")
    replies = {  # per question: the replies in turn (the last one repeats)
        "Q-retry": ["Step 1 looks fine, step 2 miscounts.", json.dumps(GOOD)],
        "Q-bad-category": [
            json.dumps([{"step": 1, "label": "hallucinated", "category": "vision"}])
        ],
        "Q-fenced": [
            'Verdict:\n```json\n{"steps": [{"step": 1, "label": "hallucinated", '
            '"subcategory": "text value", "reason": "misread"}]}\n```'
        ],
    }
    seen: dict[str, int] = {}
    batches: list[int] = []

    def answer(match, conversation):
        question = match.group(1)
        assert len(content_image_urls(conversation[-1]["content"])) == 1
        load_image(content_image_urls(conversation[-1]["content"])[0])  # a real image
        seen[question] = seen.get(question, 0) + 1
        return replies[question][min(seen[question], len(replies[question])) - 1]

    class Counted(ScriptedChat):
        def chat(self, conversations, params=None):
            batches.append(len(conversations))
            return super().chat(conversations, params)

    model = Counted("step-judge", [(r"Question: (\S+)", answer)])
    items = [
        _item("a", "Q-retry", image_url=png_url),
        _item("b", "Q-bad-category", image_url=png_url),
        _item("c", "Q-fenced", image="scene.png"),
        _item("d", "Q-none", image_url=png_url),
        _item("e", "Q-missing", image="nowhere.png"),
    ]
    chains = [
        ["There are 3 red circles.", "There are 4 blue squares."],
        ["x"],
        ["The label reads 7."],
        [],
        ["y"],
    ]
    judge = StepJudge(model, retries=2, resolve_image=image_resolver(tmp_path))
    results = judge.judge_steps(items, chains)

    assert [r.item_id for r in results] == ["a", "b", "c", "d", "e"]
    a, b, c, d, e = results
    assert a.ok and a.attempts == 2
    assert a.labels == [
        StepLabel(0, "correct"),
        StepLabel(1, "hallucinated", "perception", "count"),
    ]
    assert not b.ok and "'b'" in b.error and b.attempts == 3 and b.labels == []
    assert c.labels == [StepLabel(0, "hallucinated", "perception", "text_value", "misread")]
    assert d.ok and d.labels == [] and d.attempts == 0  # nothing to judge: no call
    assert not e.ok and "'e'" in e.error and "nowhere.png" in e.error
    assert batches == [3, 2, 1]  # one chat call per attempt, only the unread items again
    assert (judge.stats.calls, judge.stats.retries, judge.stats.unparsed) == (6, 3, 1)
    assert JudgeResult.from_dict(json.loads(json.dumps(b.to_dict()))) == b


def test_judge_prompt_carries_taxonomy_gold_and_numbered_steps(png_url):
    prompts = []
    model = ScriptedChat(
        "p", [(r"(?s).*", lambda m, c: prompts.append(m.group(0)) or json.dumps(GOOD))]
    )
    StepJudge(model).judge_steps([_item("a", "How many?", image_url=png_url)], [["s one", "s two"]])
    text = prompts[0]
    for expected in (
        "text_value",
        "fabricated",
        "inconsistency",
        "There are 3 red circles.",
        "Step 2: s two",
    ):
        assert expected in text
    with pytest.raises(ValueError, match="'z'.*question"):
        StepJudge(model).judge_steps([{"id": "z", "image_url": png_url}], [["s"]])


@pytest.mark.parametrize(
    "reply, expected",
    [
        (
            '[{"label": "correct"}, {"label": "hallucinated", "category": "reasoning"}]',
            [StepLabel(0, "correct"), StepLabel(1, "hallucinated", "reasoning")],
        ),
        ('[{"step": 1, "label": "correct"}]', None),  # step 2 missing
        (
            '[{"step": 1, "label": "correct"}, {"step": 2, "label": "hallucinated", '
            '"category": "knowledge", "subcategory": "count"}]',
            None,
        ),  # sub-category of another
        (
            '[{"step": 2, "label": "hallucinated", "subcategory": "arithmetic"}, {"step": 1, '
            '"label": "correct", "category": null}, {"step": 9, "label": "correct"}]',
            [StepLabel(0, "correct"), StepLabel(1, "hallucinated", "reasoning", "arithmetic")],
        ),
    ],
)
def test_parse_step_labels(reply, expected):
    assert parse_step_labels(reply, 2) == expected


def test_vote_majority_ties_and_failures():
    h = lambda i, c, s=None: StepLabel(i, "hallucinated", c, s)  # noqa: E731
    ok = lambda i: StepLabel(i, "correct")  # noqa: E731
    judges = [
        JudgeResult(
            "x", [ok(0), h(1, "perception", "count"), ok(2), h(3, "reasoning", "arithmetic")], "j1"
        ),
        JudgeResult(
            "x",
            [
                ok(0),
                h(1, "reasoning", "arithmetic"),
                h(2, "knowledge"),
                h(3, "perception", "count"),
            ],
            "j2",
        ),
        JudgeResult(
            "x", [h(0, "perception"), h(1, "perception"), StepLabel(2, "unverifiable"), ok(3)], "j3"
        ),
        JudgeResult("x", [], "j4", error="item 'x': never parsed"),
    ]
    voted = vote(judges)
    assert [(v.label, v.category, v.subcategory) for v in voted] == [
        ("correct", None, None),
        ("hallucinated", "perception", "count"),
        ("unverifiable", None, None),  # 1 against 1: a tie
        ("hallucinated", "perception", "count"),  # 2 categories tied: taxonomy order
    ]
    assert vote([judges[3]], n_steps=2) == [
        StepLabel(i, "unverifiable", reason="0 hallucinated, 0 correct of 1 judges")
        for i in range(2)
    ]
    items = vote_items([[judges[0]], [judges[3]]])
    assert items[0].ok and items[0].judge == "vote(j1,j4)" and len(items[0].labels) == 4


# --- metrics ------------------------------------------------------------------------------------


def _record(item_id, task, steps, labels, correct, format_ok=True):
    def label(i, spec):
        if spec == "c":
            return StepLabel(i, "correct")
        if spec == "u":
            return StepLabel(i, "unverifiable")
        category, sub = spec.split("/")
        return StepLabel(i, "hallucinated", category, sub)

    chain = Chain(steps, "5" if format_ok else None, format_ok, "step")
    return {
        "item": {"id": item_id, "task": task},
        "chain": chain.to_dict(),
        "labels": [label(i, s).to_dict() for i, s in enumerate(labels)],
        "answer_correct": correct,
    }


@pytest.fixture(scope="module")
def records():
    return [
        _record("r1", "counting", ["3 red.", "2 blue.", "3 + 2 = 5."], ["c", "c", "c"], True),
        _record(
            "r2",
            "counting",
            ["3 red.", "Wait, let me re-check: 4 red.", "4 + 2 = 6."],
            ["c", "perception/count", "c"],
            False,
        ),
        _record(
            "r3",
            "spatial",
            ["The cube is left of the ball."],
            ["perception/spatial"],
            False,
            format_ok=False,
        ),
        _record(
            "r4",
            "spatial",
            ["There are 5 bars.", "Hmm, actually the top bar is 7.", "7 > 3."],
            ["perception/object", "c", "reasoning/comparison"],
            True,
        ),
        _record("r5", "chart_value", ["The bar reads 4.", "4 - 1 = 3."], ["c", "u"], True),
        _record("r6", "knowledge", [], [], False),
    ]


def test_metrics_at_every_level(records):
    m = json.loads(json.dumps(mmthe_metrics(records, resamples=200)))  # JSON-ready
    steps = [
        (r["item"]["id"], x) for r in records for x in r["labels"] if x["label"] != "unverifiable"
    ]
    bad = [x for _, x in steps if x["label"] == "hallucinated"]
    assert (m["items"], m["judged_items"]) == (6, 5)
    assert m["answer_accuracy"]["rate"] == pytest.approx(3 / 6)
    assert m["steps"] == {"total": 12, "decided": len(steps), "unverifiable": 1, "unlabelled": 0}
    assert (
        m["step_hallucination"]["rate"]
        == pytest.approx(len(bad) / len(steps))
        == pytest.approx(4 / 11)
    )
    assert (
        m["by_category"]["perception"]["count"] == 3 and m["by_category"]["knowledge"]["count"] == 0
    )
    assert m["by_subcategory"]["comparison"]["count"] == 1
    assert m["cot_hallucination"]["rate"] == pytest.approx(3 / 5)
    assert [(b["count"], b["total"]) for b in m["by_position"]] == [(1, 4), (2, 4), (1, 3)]
    assert m["by_step_number"]["2"]["total"] == 3
    low, high = m["step_hallucination"]["ci_low"], m["step_hallucination"]["ci_high"]
    assert low < 4 / 11 < high
    crhc = m["correct_answer_hallucinated_chain"]
    assert (crhc["of_correct_answers"]["count"], crhc["of_correct_answers"]["total"]) == (1, 3)
    assert crhc["of_all"]["total"] == 5
    p = m["perception"]
    assert (
        p["wrong_answers_with_perception_error"]["rate"],
        p["correct_answers_with_perception_error"]["rate"],
    ) == (1.0, pytest.approx(1 / 3))
    assert p["wrong_minus_correct"]["difference"] == pytest.approx(2 / 3)
    r = m["reflection"]
    assert r["chains_with_reflection"]["count"] == 2
    assert (r["step_rate_before"]["count"], r["step_rate_before"]["total"]) == (1, 2)
    assert (
        r["step_rate_from_reflection_on"]["count"],
        r["step_rate_from_reflection_on"]["total"],
    ) == (2, 4)
    assert r["after_minus_before_paired"]["difference"] == pytest.approx(0.0)  # +0.5 and -0.5
    assert r["first_hallucination_at_or_after_reflection"]["of_reflective_chains"]["rate"] == 0.5
    assert m["format_invalid"]["count"] == 1
    assert m["format_invalid_by_task"]["spatial"]["rate"] == 0.5
    assert m["format_invalid_spatial_minus_other"]["difference"] == pytest.approx(0.5)


def test_metrics_name_the_item_of_a_bad_label(records):
    broken = dict(records[0], labels=[StepLabel(5, "correct").to_dict()])
    with pytest.raises(ValueError, match="'r1'.*step 5"):
        mmthe_metrics([broken])


# --- agreement ----------------------------------------------------------------------------------


def test_agreement_kappa_against_hand_computed_values():
    judge_marks = {0: "perception", 1: "reasoning", 2: "perception", 8: "perception"}
    rule_marks = {0: "perception", 1: "perception", 7: "reasoning", 8: "perception"}

    def labels(marks, n):
        return [
            StepLabel(i, "hallucinated", marks[i]) if i in marks else StepLabel(i, "correct")
            for i in range(n)
        ]

    judge = {"a": [*labels(judge_marks, 10), StepLabel(10, "unverifiable")]}
    rules = {"a": labels(rule_marks, 12), "c": [StepLabel(0, "correct")]}
    result = judge_agreement(judge, rules)

    def hand_kappa(both_yes, only_first, only_second, n):
        observed = (n - only_first - only_second) / n
        p1, p2 = (both_yes + only_first) / n, (both_yes + only_second) / n
        chance = p1 * p2 + (1 - p1) * (1 - p2)
        return (observed - chance) / (1 - chance)

    assert (result["steps_compared"], result["steps_skipped"], result["items_only_verifier"]) == (
        10,
        2,
        1,
    )
    assert result["binary"]["raw_agreement"] == pytest.approx(0.8)
    assert (
        result["binary"]["kappa"] == pytest.approx(hand_kappa(3, 1, 1, 10)) == pytest.approx(7 / 12)
    )
    assert result["by_category"]["perception"]["kappa"] == pytest.approx(hand_kappa(2, 1, 1, 10))
    assert result["by_category"]["reasoning"]["kappa"] == pytest.approx(-1 / 9)
    knowledge = result["by_category"]["knowledge"]
    assert knowledge["kappa"] is None and "only 'no' on all 10" in knowledge["kappa_undefined"]
    assert result["same_category_when_both_hallucinated"] == {
        "count": 2,
        "total": 3,
        "rate": pytest.approx(2 / 3),
    }
    empty = judge_agreement({"a": [StepLabel(0, "unverifiable")]}, rules)
    assert empty["binary"]["kappa"] is None and empty["binary"]["n"] == 0


def test_failed_judge_names_item_without_crashing_batch(png_url):
    never = ScriptedChat("never", [(r"(?s).*", "I cannot judge this.")])
    results = StepJudge(never, retries=1).judge_steps(
        [_item("id-7", "Q", image_url=png_url), _item("id-8", "Q", image_url=png_url)],
        [["s"], ["t"]],
    )
    assert [
        bool(re.search(rf"'{i}'.* 2 replies", r.error))
        for i, r in zip(("id-7", "id-8"), results, strict=True)
    ] == [True, True]
