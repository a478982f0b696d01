"""The offline keyword judge `scripted:rubric-keywords` (also on real HealthBench rows) and the
`rubric_main` reward on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.data.healthbench import load_healthbench, rubric_items
from posttrain.data.io import DataError
from posttrain.models.chat.spec import load_chat
from posttrain.rewards import get_reward, keyword_judge
from posttrain.rewards.judge import RubricJudge, judge_prompt
from posttrain.rewards.keyword_judge import (
    JUDGE_LABEL,
    content_stems,
    keyword_present,
    rubric_main_reward,
)

APPROX = pytest.approx
RUBRIC = [
    {"criterion": "Says the potassium level is normal.", "points": 6},
    {"criterion": "Explains muscle strain as the likely cause.", "points": 4},
    {"criterion": "Recommends potassium supplements.", "points": -5},
]


def test_keyword_rule():
    assert content_stems("Recommends warm compresses and stretching.") == {
        "warm",
        "compress",
        "stretch",
    }
    assert keyword_present("Recommends warm compresses and stretching.", "A warm compress helps.")
    # 2 of 3 stems = 0.67 >= 0.6
    assert keyword_present("Recommends warm compresses and stretching.", "Stretch when warm.")
    assert not keyword_present("Recommends warm compresses, stretching and hydration.", "Be warm.")
    assert not keyword_present("Mentions the user.", "the user")  # no content stems: not present
    assert keyword_present("Fails to mention that calcium is normal.", "Rest well.")
    assert not keyword_present("Fails to mention that calcium is normal.", "Calcium: normal.")
    with pytest.raises(ValueError):
        keyword_present("x", "x", threshold=0)


def test_keyword_script_answers_like_an_llm():
    chat = load_chat("scripted:rubric-keywords")
    assert "scripted" in chat.name and "not an LLM" in JUDGE_LABEL
    items = rubric_items(RUBRIC)
    reply = chat.chat(
        [[{"role": "user", "content": judge_prompt("q", "Potassium is normal.", items)}]]
    )
    assert json.loads(reply[0].text) == {"1": "PRESENT", "2": "NOT_PRESENT", "3": "NOT_PRESENT"}
    judge = RubricJudge(chat)
    met = judge.judge("q", "Potassium is normal; muscle strain is the likely cause.", RUBRIC)
    assert met == [True, True, False]
    assert judge.judge("q", "Take potassium supplements.", RUBRIC)[2] is True


def test_rubric_main_reward_registered():
    assert get_reward("rubric_main") is rubric_main_reward
    scores = rubric_main_reward(
        ["q", "q", "q"],
        [
            "Potassium is normal; muscle strain is the likely cause.",
            [{"role": "assistant", "content": "Take potassium supplements."}],
            "x",
        ],
        rubrics=[RUBRIC, RUBRIC, None],
    )
    assert scores == [APPROX(1.0), 0.0, None]
    from_reward_model = rubric_main_reward(
        ["q"], ["Potassium is normal."], reward_model=[{"rubrics": RUBRIC}]
    )
    assert from_reward_model == [APPROX(0.6)]
    with pytest.raises(ValueError, match="rubrics"):
        rubric_main_reward(["q"], ["a"])


def test_word_tables_come_from_the_shipped_yaml():
    stopwords, generic = keyword_judge._words("stopwords"), keyword_judge._words("generic")
    assert {"the", "and", "of", "no", "on", "off"} <= stopwords  # YAML booleans stay words
    assert {"recommends", "mentions", "response"} <= generic
    assert not (stopwords | generic) & {"potassium", "strain", "compress"}


def test_a_word_the_judge_cannot_read_is_an_error_naming_file_and_key(monkeypatch):
    monkeypatch.setattr(keyword_judge, "table", lambda name, key, expected: "the Fever")
    keyword_judge._words.cache_clear()
    try:
        with pytest.raises(DataError, match=r"keyword_judge\.yaml: stopwords: .*'Fever'"):
            keyword_judge._words("stopwords")
    finally:
        keyword_judge._words.cache_clear()


DATA = Path(__file__).parents[1] / "integration/data/cherrl"
HEALTHBENCH_HEAD = DATA / "healthbench_val.head8.parquet"
"""The first 8 rows of CHERRL's healthbench_val.parquet (HealthBench, verl rubric format)."""


def test_load_healthbench_reads_the_real_rows_and_judges_them():
    rows = load_healthbench(HEALTHBENCH_HEAD)
    assert len(rows) == 8 and len({r["id"] for r in rows}) == 8
    assert rows[0]["prompt"][0]["role"] == "user" and rows[0]["prompt"][-1]["role"] == "user"
    points = [item["points"] for r in rows for item in r["rubrics"]]
    assert min(points) < 0 < max(points)
    judge = RubricJudge(load_chat("scripted:rubric-keywords"))
    first = rows[0]
    items = rubric_items(first["rubrics"])
    reply = "Potassium 3.9 and calcium 9.6 are normal, so muscle strain is the likely cause."
    (met,) = judge.judge_many([(first["prompt"], reply, items)])
    assert len(met) == len(items) and met[0]  # the first criterion: labs normal, strain
    assert judge.stats.unparsed == 0
