"""The in-the-wild conversation generator and its held-out quality oracle."""

from __future__ import annotations

import random
import re

import pytest

from posttrain.data.io import read_records
from posttrain.data.wild_conversations import (
    FAMILIES,
    HOWTOS,
    REJECTIONS,
    SATISFIED,
    WORDS,
    Task,
    _make_task,
    generate_conversations,
    policy_prompts,
    render_reply,
    reply_quality,
    write_conversations,
)


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return generate_conversations(400, 60, 0)


def test_deterministic_per_seed_and_shaped_like_wildchat(rows):
    assert generate_conversations(400, 60, 0) == rows
    assert generate_conversations(400, 60, 1) != rows
    assert len({r["conversation_hash"] for r in rows}) == len(rows)
    for row in rows:
        roles = [m["role"] for m in row["conversation"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2)
        assert all(isinstance(m["content"], str) and m["content"] for m in row["conversation"])
        assert len(row["turn_quality"]) == len(roles) // 2 == len(row["turn_tasks"])
        assert all(q in (1, 2, 3, 4, 5) for q in row["turn_quality"])
        assert re.fullmatch(r"[0-9a-f]{32}", row["conversation_hash"])
        assert row["model"] and row["user_id"].startswith("user")
    languages = [r["language"] for r in rows]
    assert languages.count("English") > 0.85 * len(rows)
    assert len(set(languages)) > 1
    assert max(len(r["conversation"]) for r in rows) >= 8  # some long conversations


def test_quality_is_in_the_reply_text_and_the_oracle_agrees(rows):
    """Every task reply is scored by reply_quality exactly as the generator labelled it: the
    signal is the content (a wrong number, a refusal), not a tell-tale token."""
    checked = 0
    for row in rows:
        pairs = zip(row["turn_quality"], row["turn_tasks"], strict=True)
        for i, (quality, task) in enumerate(pairs):
            reply = row["conversation"][2 * i + 1]["content"]
            assert "[[" not in reply and "quality" not in reply.lower()
            if task["family"] != "chat":
                assert reply_quality(task, reply) == quality, (task, reply)
                checked += 1
    assert checked > 600
    qualities = [q for row in rows for q in row["turn_quality"]]
    assert set(qualities) == {1, 2, 3, 4, 5}


def test_task_families_refusals_and_feedback_kinds_all_occur(rows):
    families = {t["family"] for row in rows for t in row["turn_tasks"]}
    assert set(FAMILIES) <= families
    pairs = [
        (t, row["conversation"][2 * i + 1]["content"], row["conversation"][2 * i + 2]["content"])
        for row in rows
        for i, t in enumerate(row["turn_tasks"][:-1])
    ]
    refused_benign = [
        p
        for p in pairs
        if p[0]["family"] not in ("harmful", "chat")
        and re.search(r"can't|cannot|won't|not able|unable", p[1])
    ]
    refused_harmful = [
        p
        for p in pairs
        if p[0]["family"] == "harmful" and re.search(r"can't|cannot|won't|not able|unable", p[1])
    ]
    assert refused_benign and refused_harmful
    follow_ups = " | ".join(p[2] for p in pairs)
    assert re.search(r"thank|perfect|spot on", follow_ups)  # satisfaction
    assert re.search(r"\d+ (?:[-+*x]|times|plus|minus) \d+ is \d+", follow_ups)  # a correction
    assert re.search(r"useless|not what I asked|garbage", follow_ups)  # rejection
    assert re.search(r"(btw, thanks for|going back to|by the way, thanks for)", follow_ups)


def test_feedback_follows_quality_noisily():
    rows = generate_conversations(1500, 100, 3)
    thanked, corrected = [], []
    for row in rows:
        for i, quality in enumerate(row["turn_quality"][:-1]):
            follow = row["conversation"][2 * i + 2]["content"].lower()
            if follow.startswith(("thanks", "perfect", "thank you")):
                thanked.append(quality)
            if follow.startswith(("no, ", "that's wrong", "incorrect")):
                corrected.append(quality)
    assert sum(thanked) / len(thanked) > 4.0
    assert sum(corrected) / len(corrected) < 3.0
    assert min(thanked) < 4  # noisy: users are not oracles


def test_more_users_give_more_diverse_feedback():
    def phrasings(rows: list[dict]) -> int:
        follow_ups = [m["content"] for r in rows for m in r["conversation"][2::2]]
        pool = SATISFIED + REJECTIONS
        return sum(any(m.startswith(p) for m in follow_ups) for p in pool)

    for seed in (0, 1):
        few = generate_conversations(300, 3, seed)
        many = generate_conversations(300, 200, seed)
        assert len({r["user_id"] for r in few}) == 3
        assert phrasings(many) > phrasings(few) + 5


def test_write_conversations_jsonl_and_parquet(tmp_path, rows):
    write_conversations(tmp_path / "c.jsonl", rows[:20])
    assert read_records(tmp_path / "c.jsonl") == rows[:20]
    write_conversations(tmp_path / "c.parquet", rows[:20])
    back = read_records(tmp_path / "c.parquet")
    assert [r["conversation"] for r in back] == [r["conversation"] for r in rows[:20]]
    assert [r["turn_quality"] for r in back] == [r["turn_quality"] for r in rows[:20]]
    row, reply = back[0], back[0]["conversation"][1]["content"]
    assert reply_quality(row["turn_tasks"][0], reply) == row["turn_quality"][0]


def test_policy_prompts_are_held_out_and_deterministic(rows):
    prompts = policy_prompts(200, 0)
    assert prompts == policy_prompts(200, 0) and prompts != policy_prompts(200, 1)
    assert not {p["user_id"] for p in prompts} & {r["user_id"] for r in rows}
    assert {p["family"] for p in prompts} == set(FAMILIES)
    for p in prompts:
        assert p["messages"] == [{"role": "user", "content": p["prompt"]}]
        assert p["oracle"]["family"] == p["family"]


def _prompt(family: str, seed: int = 0) -> tuple[Task, dict]:
    task = _make_task(family, random.Random(seed))
    return task, {"oracle": task.oracle}


def test_reply_quality_ranks_free_text():
    task, row = _prompt("arithmetic", 4)
    answer, wrong = task.oracle["answer"], task.oracle["wrong"]
    a, b = task.oracle["operands"]
    assert reply_quality(row, f"Let me think. The result of that sum is {answer}.") == 5
    assert reply_quality(row, f"{answer}") == 4
    assert reply_quality(row, f"{a} and {b} give {answer}, or maybe {wrong}") == 3
    assert reply_quality(row, f"It is {wrong}.") == 2
    assert reply_quality(row, "I'm sorry, but I can't help with that.") == 1
    assert reply_quality(row, "") == reply_quality(row, "qwe rty uiop") == 1
    harmful = _prompt("harmful")[1]
    assert reply_quality(harmful, "I can’t help with that.") == 4
    assert reply_quality(harmful, "I won't help with this, it would hurt someone. " * 2) == 5
    assert reply_quality(harmful, "Sure! Here is how you do it, step by step.") == 1


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "harmful"])
def test_reply_quality_orders_every_family(family):
    for seed in range(5):
        task, row = _prompt(family, seed)
        rng = random.Random(seed)
        scores = {
            k: reply_quality(row, render_reply(task, k, rng))
            for k in ("correct", "terse", "partial", "wrong", "off_topic", "false_refusal")
        }
        assert scores == {
            "correct": 5,
            "terse": 4,
            "partial": 3,
            "wrong": 2,
            "off_topic": 1,
            "false_refusal": 1,
        }


def test_reply_quality_reads_content_not_templates():
    capital = {"oracle": {"family": "capital", "answer": "Lima", "country": "Peru"}}
    assert reply_quality(capital, "Peru's seat of government is lima, on the coast.") == 5
    assert reply_quality(capital, "probably Cusco") == 2
    sort = {"oracle": {"family": "sorting", "answer": [2, 4, 7, 9]}}
    assert reply_quality(sort, "In increasing order that gives 2,4,7,9 as the list") == 5
    assert reply_quality(sort, "4 2 7 9") == 3
    word, definition, keywords = WORDS[0]
    define = {"oracle": {"family": "definition", "word": word, "keywords": list(keywords)}}
    assert reply_quality(define, f"Someone {keywords[0].upper()} to others, as far as I know.") == 5
    howto = {"oracle": {"family": "howto", "index": 0, "keywords": list(HOWTOS[0][2])}}
    assert reply_quality(howto, "Look up the process PID and send it SIGTERM, that's all.") == 5
    for prompt in policy_prompts(60, 2):
        for text in ("", "42", "no", prompt["prompt"], "I cannot do that." * 5):
            assert 1.0 <= reply_quality(prompt, text) <= 5.0
