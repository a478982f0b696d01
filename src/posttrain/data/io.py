"""Reading and writing records: JSONL, parquet, or a `datasets` dataset saved to disk.

Errors name the file and line, so a bad row in a 100k-line file is found at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from posttrain import atomic
from posttrain.errors import InputError, not_utf8


class DataError(InputError):
    """A data file that cannot be read as records."""


def require_file(path: str | Path, kind: type[InputError] = DataError) -> Path:
    """`path` as a Path, if it is a file; otherwise an error saying what it is instead."""
    path = Path(path)
    if not path.exists():
        raise kind("file not found", path)
    if not path.is_file():
        raise kind("is a directory, expected a file", path)
    return path


def text_lines(path: str | Path, kind: type[InputError] = DataError) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 text file, read as it goes; a missing file, a
    directory or bytes that are not UTF-8 raise `kind` naming the file (and line)."""
    path = require_file(path, kind)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                # A byte-order mark (an editor's UTF-8 with BOM) is not part of the first line.
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise not_utf8(path, raw, err, kind, first_line=number) from None
            yield number, text


def read_text(path: str | Path, kind: type[InputError] = DataError) -> str:
    """The whole of a UTF-8 text file; errors name the file (and the line of a bad byte)."""
    path = require_file(path, kind)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise not_utf8(path, raw, err, kind) from None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    records = []
    for number, line in text_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"not valid JSON: {err.msg}", path, line=number) from None
        if not isinstance(record, dict):
            raise DataError(f"expected a JSON object, got {record!r:.60}", path, line=number)
        records.append(record)
    return records


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write all records; a scratch file renamed at the end keeps an old file intact on an
    error or a kill (`posttrain.atomic`), so a stage that finds the file may trust it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic.staged_file(path) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one record and flush, for results written as they are produced."""
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Records from a .jsonl file, a .parquet file, or a `datasets` directory on disk."""
    path = Path(path)
    if path.is_dir():
        from datasets import load_from_disk

        try:
            return list(load_from_disk(str(path)))
        except (FileNotFoundError, ValueError) as err:
            raise DataError(f"not a dataset saved with save_to_disk: {err}", path) from None
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.read_table(require_file(path)).to_pylist()
        except pa.ArrowException as err:  # a text file named .parquet, a truncated file
            raise DataError(f"not a parquet file: {err}", path) from None
    if path.suffix in (".jsonl", ".json"):
        return read_jsonl(path)
    raise DataError("unsupported data format (use .jsonl, .parquet or a dataset dir)", path)


def require_columns(records: list[dict[str, Any]], columns: Iterable[str], source: str) -> None:
    """Raise naming the first row (1-based) that lacks one of `columns`."""
    for number, record in enumerate(records, start=1):
        missing = [c for c in columns if c not in record]
        if missing:
            raise DataError(f"{source}: row {number} lacks {', '.join(map(repr, missing))}")
