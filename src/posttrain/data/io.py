"""Reading and writing records: JSONL, parquet, or a `datasets` dataset saved to disk.

Errors name the file and line, so a bad row in a 100k-line file is found at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """A data file that cannot be read as records."""


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{number}: not valid JSON: {err.msg}") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {record!r:.60}")
            records.append(record)
    return records


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> Path:
    """Write all records; a temp file renamed at the end keeps an old file intact on error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)
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
            raise DataError(f"{path}: not a dataset saved with save_to_disk: {err}") from None
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        if not path.is_file():
            raise DataError(f"file not found: {path}")
        return pq.read_table(path).to_pylist()
    if path.suffix in (".jsonl", ".json"):
        return read_jsonl(path)
    raise DataError(f"{path}: unsupported data format (use .jsonl, .parquet or a dataset dir)")


def require_columns(records: list[dict[str, Any]], columns: Iterable[str], source: str) -> None:
    """Raise naming the first row (1-based) that lacks one of `columns`."""
    for number, record in enumerate(records, start=1):
        missing = [c for c in columns if c not in record]
        if missing:
            raise DataError(f"{source}: row {number} lacks {', '.join(map(repr, missing))}")
