import logging

import pytest

from posttrain.data.io import (
    DataError,
    iter_jsonl,
    read_jsonl,
    read_records,
    repair_torn_tail,
    require_columns,
    write_jsonl,
)


def test_roundtrip_jsonl_parquet_and_dataset(tmp_path):
    rows = [{"prompt": "a", "answer": "1"}, {"prompt": "b", "answer": "2"}]
    assert read_records(write_jsonl(tmp_path / "x.jsonl", rows)) == rows

    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "x.parquet")
    assert read_records(tmp_path / "x.parquet") == rows
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    assert read_records(tmp_path / "ds") == rows


def test_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2,}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:3: not valid JSON"):
        read_jsonl(path)
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: expected a JSON object"):
        read_jsonl(path)
    with pytest.raises(DataError, match="unsupported data format"):
        read_records(tmp_path / "x.csv")
    with pytest.raises(DataError, match=r"rows.jsonl: row 2 lacks 'answer'"):
        require_columns([{"answer": 1}, {"prompt": 2}], ["answer"], "rows.jsonl")


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("rows.jsonl", None, "rows.jsonl: file not found"),
        ("rows.jsonl", "/", "rows.jsonl: not a dataset saved with save_to_disk"),
        ("rows.jsonl", b'{"a": 1}\n{"a": "caf\xe9"}\n', "rows.jsonl:2: not UTF-8 text (byte 0xe9"),
        ("rows.parquet", b"plain text\n", "rows.parquet: not a parquet file"),
        ("rows.parquet", None, "rows.parquet: file not found"),
        ("ds", "/", "ds: not a dataset saved with save_to_disk"),
    ],
    ids=[
        "missing",
        "a directory",
        "not UTF-8",
        "text named .parquet",
        "missing .parquet",
        "empty dir",
    ],
)
def test_unreadable_files_are_named(tmp_path, name, content, needle):
    path = tmp_path / name
    if content == "/":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_records(path)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_a_byte_order_mark_is_not_part_of_the_first_row(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n{"a": 2}\n')
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]


# ----------------------------------------------------------------- the one JSONL rule

GOOD = '{"a": 1}\n\n{"a": 2}\n'  # a blank line between two records


def test_blank_lines_are_skipped_and_line_numbers_count_them(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text(GOOD + "  \n")
    assert list(iter_jsonl(path)) == [(1, {"a": 1}), (3, {"a": 2})]


def test_a_torn_tail_is_dropped_with_a_warning_only_when_tolerated(tmp_path, caplog):
    path = tmp_path / "log.jsonl"
    path.write_text(GOOD + '{"a": 3, "b"')  # killed mid-append: no newline
    with caplog.at_level(logging.WARNING, logger="posttrain.data.io"):
        assert read_jsonl(path, tolerate_torn_tail=True) == [{"a": 1}, {"a": 2}]
    assert f"{path}:4: dropped a torn last line" in caplog.text
    with pytest.raises(DataError, match=r"log.jsonl:4: not valid JSON.*no newline"):
        read_jsonl(path)
    # Cut inside a multi-byte character: not UTF-8 either, still a torn append.
    path.write_bytes(GOOD.encode() + '{"a": "caf\u00e9"}'.encode()[:-3])
    assert read_jsonl(path, tolerate_torn_tail=True) == [{"a": 1}, {"a": 2}]
    with pytest.raises(DataError, match=r"log.jsonl:4: not UTF-8"):
        read_jsonl(path)


def test_a_whole_last_record_without_its_newline_is_kept(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text(GOOD + '{"a": 3}')
    assert (
        read_jsonl(path)
        == read_jsonl(path, tolerate_torn_tail=True)
        == [
            {"a": 1},
            {"a": 2},
            {"a": 3},
        ]
    )


@pytest.mark.parametrize("tolerate", [False, True])
@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ('{"a": 1}\n{"a": 2,\n{"a": 3}\n', r"log.jsonl:2: not valid JSON"),
        ('{"a": 1}\n{"a": 2,\n', r"log.jsonl:2: not valid JSON"),  # last, but whole: not torn
        ('{"a": 1}\n[1, 2]', r"log.jsonl:2: expected a JSON object"),
        ('{"a": 1}\n"text"\n{"a": 3}\n', r"log.jsonl:2: expected a JSON object"),
    ],
    ids=["bad middle line", "bad last line with newline", "array tail", "string line"],
)
def test_bad_lines_other_than_a_torn_tail_are_always_errors(tmp_path, content, needle, tolerate):
    path = tmp_path / "log.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=needle):
        read_jsonl(path, tolerate_torn_tail=tolerate)


def test_a_byte_order_mark_is_not_a_torn_or_bad_line(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n{"a": 2')
    assert read_jsonl(path, tolerate_torn_tail=True) == [{"a": 1}]


def test_repair_cuts_a_torn_tail_off_the_file(tmp_path, caplog):
    path = tmp_path / "log.jsonl"
    path.write_text(GOOD + '{"a": 3, "b"')
    with caplog.at_level(logging.WARNING, logger="posttrain.data.io"):
        assert repair_torn_tail(path) is True
    assert path.read_text() == GOOD and f"{path}:4: dropped a torn last line" in caplog.text
    assert repair_torn_tail(path) is False and path.read_text() == GOOD  # now a no-op


def test_repair_finishes_a_whole_last_record_and_leaves_other_files_alone(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text(GOOD + '{"a": 3}')
    assert repair_torn_tail(path) is False and path.read_text() == GOOD + '{"a": 3}\n'
    assert repair_torn_tail(tmp_path / "absent.jsonl") is False
    assert not (tmp_path / "absent.jsonl").exists()
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert repair_torn_tail(tmp_path / "empty.jsonl") is False


def test_repair_finds_the_start_of_a_torn_line_longer_than_its_read_block(tmp_path):
    path = tmp_path / "log.jsonl"
    long = '{"text": "' + "x" * 200_000  # torn inside one long record
    path.write_text(GOOD + long)
    assert repair_torn_tail(path) is True and path.read_text() == GOOD
    path.write_text(long)  # the torn line is the whole file
    assert repair_torn_tail(path) is True and path.read_bytes() == b""


def test_a_dataset_loader_is_a_function_named_by_import_path(tmp_path, monkeypatch):
    (tmp_path / "my_rows.py").write_text(
        "def rows():\n    return [{'prompt': 'a'}, {'prompt': 'b'}]\n"
        "def strings():\n    return ['a']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert read_records("my_rows:rows") == [{"prompt": "a"}, {"prompt": "b"}]
    with pytest.raises(DataError, match=r"my_rows:strings: row 1 is a str, not a mapping"):
        read_records("my_rows:strings")
    with pytest.raises(DataError, match=r"cannot import module 'no_such_rows'"):
        read_records("no_such_rows:rows")
    with pytest.raises(DataError, match=r"has no 'missing'"):
        read_records("my_rows:missing")
