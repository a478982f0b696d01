"""Reading and writing records: JSONL, parquet, or a `datasets` dataset saved to disk.

Errors name the file and line, so a bad row in a 100k-line file is found at once.

JSONL files that are appended to as work goes (metrics, rollouts, answers, stage files) can
end in a torn line when a process is killed mid-write. Every JSONL file is read by
`iter_jsonl` / `read_jsonl` under one rule:

- blank lines are skipped; a byte-order mark before the first line is ignored;
- a line that is not valid JSON (or not UTF-8) is an error naming file:line, except the
  LAST line when it has no trailing newline: that is a torn append. With
  `tolerate_torn_tail=True` (readers of a log that a live or killed run appends to) it is
  dropped with a logged warning naming file:line; otherwise it is an error naming file:line;
- a line that is valid JSON but not an object is always an error naming file:line.

A writer that resumes appending calls `repair_torn_tail` first, so the file ends at a whole
line before new records go after it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from posttrain import atomic
from posttrain.errors import InputError, not_utf8
from posttrain.specs import SpecKind, parse_spec, resolve_import_path

logger = logging.getLogger(__name__)


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


def read_text(path: str | Path, kind: type[InputError] = DataError) -> str:
    """The whole of a UTF-8 text file; errors name the file (and the line of a bad byte)."""
    path = require_file(path, kind)
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise not_utf8(path, raw, err, kind) from None


def iter_jsonl(
    path: str | Path, *, tolerate_torn_tail: bool = False
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of each non-blank line of a JSONL file, read as it goes.

    The rule of this module's docstring: a torn last line (no newline, not JSON) is dropped
    with a warning when `tolerate_torn_tail`, an error otherwise; any other bad line is an
    error. Errors are `DataError`s naming the file and line.
    """
    path = require_file(path)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            # Only the last line of a file can lack its newline: a write cut off mid-line.
            torn = not raw.endswith(b"\n")
            try:
                # A byte-order mark (an editor's UTF-8 with BOM) is not part of the first line.
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                if torn and tolerate_torn_tail:  # cut inside a multi-byte character
                    _warn_torn(path, number)
                    return
                raise not_utf8(path, raw, err, DataError, first_line=number) from None
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                if torn and tolerate_torn_tail:
                    _warn_torn(path, number)
                    return
                hint = "; the last line has no newline, as if a write was cut off" if torn else ""
                raise DataError(f"not valid JSON: {err.msg}{hint}", path, line=number) from None
            if not isinstance(record, dict):
                raise DataError(f"expected a JSON object, got {record!r:.60}", path, line=number)
            yield number, record


def read_jsonl(path: str | Path, *, tolerate_torn_tail: bool = False) -> list[dict[str, Any]]:
    """All records of a JSONL file, under `iter_jsonl`'s rule."""
    return [record for _, record in iter_jsonl(path, tolerate_torn_tail=tolerate_torn_tail)]


def _warn_torn(path: Path, number: int) -> None:
    logger.warning("%s:%d: dropped a torn last line (no newline, not a whole record)", path, number)


def repair_torn_tail(path: str | Path) -> bool:
    """Make an appended-to JSONL file end at a whole line before more records go after it.

    A last line without its newline is completed when it is a whole JSON value (only the
    newline was lost) and cut off the file, with a logged warning naming file:line, when it
    is not (a torn append). Returns whether a line was cut off. A missing file is left
    missing. Only the tail is read, so this is cheap on a long log.
    """
    path = Path(path)
    if not path.is_file():
        return False
    with path.open("r+b") as handle:
        size = handle.seek(0, 2)
        start = size
        while start > 0:  # walk back to the start of the last line, a block at a time
            block_start = max(0, start - 65536)
            handle.seek(block_start)
            block = handle.read(start - block_start)
            if size == start and block.endswith(b"\n"):
                return False  # the file already ends at a whole line (or is empty)
            newline = block.rfind(b"\n")
            if newline >= 0:
                start = block_start + newline + 1
                break
            start = block_start
        handle.seek(start)
        tail = handle.read()
        if not tail.strip():
            return False
        try:
            json.loads(tail.decode("utf-8-sig" if start == 0 else "utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            handle.truncate(start)
            _warn_torn(path, _newlines_before(handle, start) + 1)
            return True
        handle.write(b"\n")  # a whole record that lost only its newline
        return False


def _newlines_before(handle: BinaryIO, end: int) -> int:
    """How many newlines the first `end` bytes of an open binary file hold."""
    handle.seek(0)
    count, done = 0, 0
    while done < end:
        block = handle.read(min(65536, end - done))
        count += block.count(b"\n")
        done += len(block)
    return count


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
    """Records from a .jsonl file, a .parquet file, a `datasets` directory on disk, or a
    dataset loader: `package.module:function` (not an existing path) names a function that
    takes no arguments and returns the rows, for formats posttrain does not read itself."""
    if isinstance(path, str) and ":" in path and not Path(path).exists():
        return _loaded_records(path)
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


def _loaded_records(spec: str) -> list[dict[str, Any]]:
    """The rows a dataset loader (`package.module:function`) returns, checked to be mappings."""
    try:
        parsed = parse_spec(spec, (SpecKind.IMPORT_PATH,), what="dataset")
        loader = resolve_import_path(parsed, "dataset loader")
    except ValueError as err:
        raise DataError(str(err), spec) from None
    rows = []
    for number, row in enumerate(loader(), start=1):
        if not isinstance(row, Mapping):
            raise DataError(f"row {number} is a {type(row).__name__}, not a mapping", spec)
        rows.append(dict(row))
    return rows


def require_columns(records: list[dict[str, Any]], columns: Iterable[str], source: str) -> None:
    """Raise naming the first row (1-based) that lacks one of `columns`."""
    for number, record in enumerate(records, start=1):
        missing = [c for c in columns if c not in record]
        if missing:
            raise DataError(f"{source}: row {number} lacks {', '.join(map(repr, missing))}")
