"""Real math RL data (DeepMath-103K's published columns, plain prompt/answer) -> prompt rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.data.io import DataError, read_jsonl
from posttrain.data.math_rl_data import MathColumns, load_math_rl_rows

DATA = Path(__file__).resolve().parents[1] / "data" / "math_rl"


@pytest.mark.parametrize("name", ["deepmath_sample.jsonl", "deepmath_sample.parquet"])
def test_deepmath_files_map_to_prompt_rows(name):
    raw = read_jsonl(DATA / "deepmath_sample.jsonl")
    rows = load_math_rl_rows(DATA / name)
    assert len(rows) == len(raw) == 6
    for number, (row, record) in enumerate(zip(rows, raw, strict=True), start=1):
        assert row["prompt"] == [{"role": "user", "content": record["question"]}]
        assert row["answer"] == record["final_answer"]
        assert row["difficulty"] == record["difficulty"]
        assert row["topic"] == record["topic"]
        assert row["source"] == f"{name}:{number}"
    assert load_math_rl_rows(DATA / name, "deepmath", limit=2) == rows[:2]


def test_plain_prompt_answer_file_and_options():
    rows = load_math_rl_rows(
        DATA / "prompt_answer_sample.jsonl", instruction="Answer with a number.", system_prompt="S"
    )
    assert rows[0]["prompt"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "What is 12 + 30?\n\nAnswer with a number."},
    ]
    assert rows[0]["difficulty"] is None and rows[0]["answer"] == "42"
    assert rows[1]["prompt"][0] == {"role": "system", "content": "Answer with a number."}
    assert rows[1]["answer"] == "63"  # a number is written as text
    with pytest.raises(DataError, match=r"prompt_answer_sample.jsonl:1: difficulty: no difficulty"):
        load_math_rl_rows(DATA / "prompt_answer_sample.jsonl", require_difficulty=True)


def test_custom_and_nested_columns(tmp_path):
    path = tmp_path / "verl.jsonl"
    record = {"prompt": "2+2?", "reward_model": {"ground_truth": "4"}, "level": 3}
    path.write_text(json.dumps(record) + "\n")
    assert load_math_rl_rows(path)[0]["answer"] == "4"  # the verl preset, detected
    columns = MathColumns(question="prompt", answer="reward_model.ground_truth", difficulty="level")
    assert load_math_rl_rows(path, columns)[0]["difficulty"] == 3.0


def _write(tmp_path, records):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


GOOD = {"question": "q", "final_answer": "1", "difficulty": 2.0}


@pytest.mark.parametrize(
    ("records", "needle"),
    [
        ([GOOD, {"question": "q", "difficulty": 1}], r"rows.jsonl:2: final_answer: missing column"),
        ([GOOD, {"question": "q", "final_answer": "2"}], r"rows.jsonl:2: difficulty: missing"),
        ([GOOD, {**GOOD, "difficulty": "hard"}], r"rows.jsonl:2: difficulty: expected a finite"),
        ([GOOD, {**GOOD, "final_answer": ""}], r"rows.jsonl:2: final_answer: expected a non-empty"),
        ([{**GOOD, "question": 7}], r"rows.jsonl:1: question: expected a string or a list"),
        ([{**GOOD, "question": [{"role": "user"}]}], r"rows.jsonl:1: question: message 0"),
        ([{"text": "q", "label": "1"}], r"rows.jsonl:1: no known question/answer columns"),
        ([], r"rows.jsonl: no rows"),
    ],
    ids=[
        "no answer",
        "no difficulty",
        "bad difficulty",
        "empty answer",
        "number question",
        "bad message",
        "unknown columns",
        "empty",
    ],
)
def test_bad_rows_name_file_line_and_column(tmp_path, records, needle):
    with pytest.raises(DataError, match=needle):
        load_math_rl_rows(_write(tmp_path, records))


def test_bad_parquet_row_and_unknown_preset(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist([GOOD, {**GOOD, "final_answer": None}]), path)
    with pytest.raises(DataError, match=r"rows.parquet:2: final_answer: expected a non-empty"):
        load_math_rl_rows(path)
    with pytest.raises(DataError, match="unknown column preset 'gsm8k'"):
        load_math_rl_rows(path, "gsm8k")
    with pytest.raises(DataError, match="file not found"):
        load_math_rl_rows(tmp_path / "missing.jsonl")
