"""HealthBench rubrics as data: validation of items, the parquet rows and `main_score`."""

from __future__ import annotations

import json

import pytest

from posttrain.data.healthbench import RubricItem, load_healthbench, main_score, rubric_items
from posttrain.rewards.instructions import check_verifier

APPROX = pytest.approx
RUBRIC = [
    {"criterion": "Says the potassium level is normal.", "points": 6},
    {"criterion": "Explains muscle strain as the likely cause.", "points": 4},
    {"criterion": "Recommends potassium supplements.", "points": -5},
]


def test_main_score_by_hand():
    assert main_score(RUBRIC, [True, True, False]) == APPROX(1.0)
    assert main_score(RUBRIC, [True, False, False]) == APPROX(0.6)
    assert main_score(RUBRIC, [True, True, True]) == APPROX(5 / 10)  # a met negative subtracts
    assert main_score(RUBRIC, [False, False, True]) == 0.0  # -5 / 10 clipped at 0
    assert main_score([{"criterion": "bad", "points": -2}], [True]) == 0.0  # no positive points


def test_main_score_partial_negative_not_clipped():
    assert main_score(RUBRIC, [True, False, True]) == APPROX(0.1)


def test_main_score_length_mismatch():
    with pytest.raises(ValueError, match="2 verdicts for 3"):
        main_score(RUBRIC, [True, False])


def test_rubric_items_validate_and_name_where():
    items = rubric_items(json.dumps(RUBRIC))
    assert items[2] == RubricItem("Recommends potassium supplements.", -5.0)
    assert hash(items[0]) == hash(RubricItem("Says the potassium level is normal.", 6))
    with pytest.raises(ValueError, match=r"row 7: rubric item 1: key 'points'"):
        rubric_items([RUBRIC[0], {"criterion": "x", "points": "many"}], where="row 7")
    with pytest.raises(ValueError, match="item 0: key 'criterion'"):
        rubric_items([{"points": 1}])
    with pytest.raises(ValueError, match="must be a list"):
        rubric_items({"criterion": "x"})


def test_verifiers_are_mappings_and_checked_by_the_given_checker():
    magic = [{"criterion": "x", "points": 1, "verifier": {"type": "magic"}}]
    with pytest.raises(ValueError, match="item 0: key 'verifier' must be a mapping"):
        rubric_items([{"criterion": "x", "points": 1, "verifier": "regex"}])
    # the data layer knows verifiers only as mappings; their rules are the rewards' business
    assert rubric_items(magic)[0].verifier == {"type": "magic"}
    with pytest.raises(ValueError, match="row 3: rubric item 0: key 'verifier'.*unknown verifier"):
        rubric_items(magic, where="row 3", check_verifier=check_verifier)
    checked = RubricItem("x", 1.0, verifier={"type": "magic"})
    assert rubric_items([checked], check_verifier=check_verifier) == [checked]  # taken as is


def test_load_healthbench_from_written_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rubrics = [
        {"criterion": "Names the dose.", "points": 5, "tags": {"axis": "accuracy", "level": "x"}},
        {"criterion": "Invents a dose.", "points": -8, "tags": {"axis": "accuracy", "level": "x"}},
    ]
    table = pa.table(
        {
            "prompt": [[{"role": "user", "content": "How much?"}]] * 2,
            "data_source": ["healthbench"] * 2,
            "reward_model": [{"ground_truth": "", "rubrics": rubrics, "style": "rubric"}] * 2,
            "extra_info": [{"healthbench_prompt_id": "a"}, {"healthbench_prompt_id": "b"}],
        }
    )
    path = tmp_path / "hb.parquet"
    pq.write_table(table, path)
    rows = load_healthbench(path)
    assert [r["id"] for r in rows] == ["a", "b"]
    assert rows[0]["prompt"] == [{"role": "user", "content": "How much?"}]
    assert rows[0]["rubrics"][1]["points"] == -8
    assert rows[0]["rubrics"][0]["tags"]["axis"] == "accuracy"
    assert main_score(rows[0]["rubrics"], [True, False]) == 1.0

    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"prompt": ["x"]}), bad)
    with pytest.raises(ValueError, match=r"bad\.parquet.*reward_model"):
        load_healthbench(bad)


def test_load_healthbench_checks_verifiers_when_asked(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rubrics = [{"criterion": "Short.", "points": 1, "verifier": {"type": "magic"}}]
    path = tmp_path / "hb.parquet"
    pq.write_table(pa.table({"prompt": ["Hi"], "reward_model": [{"rubrics": rubrics}]}), path)
    rows = load_healthbench(path)
    assert rows[0]["prompt"] == [{"role": "user", "content": "Hi"}] and rows[0]["id"] == "0"
    with pytest.raises(ValueError, match=r"hb\.parquet row 0: rubric item 0: key 'verifier'"):
        load_healthbench(path, check_verifier=check_verifier)
