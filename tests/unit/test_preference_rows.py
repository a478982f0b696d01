"""Preference rows in the layouts people have (TRL's explicit and implicit prompt, strings
or chat messages, JSONL or parquet), and bad rows named by file and row."""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from posttrain.data.io import DataError, write_jsonl
from posttrain.rewards.reward_model import load_preferences


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def test_explicit_prompt_strings_and_messages_from_jsonl_and_parquet(tmp_path: Path) -> None:
    rows = [
        {"prompt": "Name a fruit.", "chosen": "An apple.", "rejected": "No.", "source": "x"},
        {
            "prompt": [{"role": "system", "content": "Be brief."}, user("Name a city.")],
            "chosen": [assistant("Paris.")],
            "rejected": [assistant("Blue.")],
        },
    ]
    write_jsonl(tmp_path / "pairs.jsonl", rows)
    pq.write_table(pa.Table.from_pylist(rows[1:]), tmp_path / "pairs.parquet")
    from_jsonl = load_preferences(tmp_path / "pairs.jsonl")
    assert from_jsonl == [{k: row[k] for k in ("prompt", "chosen", "rejected")} for row in rows]
    assert load_preferences(tmp_path / "pairs.parquet") == from_jsonl[1:]


def test_implicit_prompt_is_the_shared_start_of_the_conversations(tmp_path: Path) -> None:
    history = [user("Hi"), assistant("Hello!"), user("Name a river.")]
    row = {"chosen": [*history, assistant("The Nile.")], "rejected": [*history, assistant("No.")]}
    write_jsonl(tmp_path / "implicit.jsonl", [row])
    assert load_preferences(tmp_path / "implicit.jsonl") == [
        {"prompt": history, "chosen": [assistant("The Nile.")], "rejected": [assistant("No.")]}
    ]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "p", "chosen": "c"}, r"row 2 has no 'rejected' field"),
        ({"prompt": "p", "chosen": "c", "rejected": 3}, r"row 2: 'rejected' must be a string"),
        ({"prompt": "p", "chosen": [], "rejected": "r"}, r"row 2: 'chosen' must be a string"),
        ({"prompt": "p", "chosen": [{"text": "c"}], "rejected": "r"}, "list of chat messages"),
        ({"chosen": "c", "rejected": "r"}, r"row 2 has no 'prompt' field, so 'chosen'"),
        (
            {"chosen": [user("a"), assistant("b")], "rejected": [user("z"), assistant("b")]},
            "share no first message",
        ),
        (
            {"chosen": [user("a")], "rejected": [user("a"), assistant("b")]},
            "leave one of them no response",
        ),
    ],
)
def test_bad_rows_name_file_and_row(tmp_path: Path, row: dict, message: str) -> None:
    path = write_jsonl(
        tmp_path / "pairs.jsonl", [{"prompt": "p", "chosen": "c", "rejected": "r"}, row]
    )
    with pytest.raises(DataError, match=message) as caught:
        load_preferences(path)
    assert str(caught.value).startswith(f"{path}: row 2")


def test_a_prompt_repeated_in_whole_conversations_is_rendered_once(tmp_path: Path) -> None:
    """HuggingFaceH4/ultrafeedback_binarized gives `prompt` and whole conversations."""
    question = "Name a river."
    row = {
        "prompt": question,
        "chosen": [user(question), assistant("The Nile.")],
        "rejected": [user(question), assistant("No.")],
        "score_chosen": 9.0,
    }
    completions = {"prompt": question, "chosen": [assistant("A")], "rejected": [assistant("A")]}
    path = write_jsonl(tmp_path / "pairs.jsonl", [row, completions])
    assert load_preferences(path) == [
        {
            "prompt": [user(question)],
            "chosen": [assistant("The Nile.")],
            "rejected": [assistant("No.")],
        },
        completions,  # responses that start with the assistant are completions, kept whole
    ]
    mismatched = {**row, "prompt": "Name a mountain."}
    path = write_jsonl(tmp_path / "pairs.jsonl", [row, mismatched])
    with pytest.raises(DataError, match=r"pairs\.jsonl: row 2: 'chosen' and 'rejected' start"):
        load_preferences(path)
