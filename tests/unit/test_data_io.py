import pytest

from posttrain.data.io import DataError, read_jsonl, read_records, require_columns, write_jsonl


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
