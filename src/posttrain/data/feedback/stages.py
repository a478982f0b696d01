"""Resumable stage files: records appended a chunk at a time, read back by id on a rerun.

Labelling with a real LLM is the slow, costly stage; writing each chunk as it finishes means
a crash loses at most the chunk in flight, and a rerun sends only the items not yet done.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from posttrain.data.io import DataError, iter_jsonl, repair_torn_tail

Work = Callable[[Sequence[dict[str, Any]]], list[dict[str, Any]]]


def read_stage(path: str | Path) -> dict[str, dict[str, Any]]:
    """Records by id. A torn last line (a crash mid-write) is cut off the file; a bad line
    elsewhere is corruption and raises, naming the file and line."""
    path = Path(path)
    if not path.is_file():
        return {}
    repair_torn_tail(path)  # a rerun appends after the last whole record
    records: dict[str, dict[str, Any]] = {}
    for number, record in iter_jsonl(path):
        if "id" not in record:
            raise DataError(
                "not a stage record: expected an object with an 'id'", path, line=number
            )
        records[record["id"]] = record
    return records


def run_stage(
    path: str | Path, items: Sequence[dict[str, Any]], work: Work, chunk_size: int
) -> tuple[dict[str, dict[str, Any]], int]:
    """(records by id for every item, how many items this call worked on). Items whose id is
    already in `path` are skipped; the rest go to `work` a chunk at a time, each chunk
    appended (one write, flushed and synced) before the next starts."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done = read_stage(path)
    todo = [item for item in items if item["id"] not in done]
    for start in range(0, len(todo), chunk_size):
        chunk = todo[start : start + chunk_size]
        records = work(chunk)
        if [r["id"] for r in records] != [item["id"] for item in chunk]:
            raise RuntimeError("a stage returned records that do not match its chunk")
        block = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with path.open("a", encoding="utf-8") as handle:
            handle.write(block)
            handle.flush()
            os.fsync(handle.fileno())
        done.update((r["id"], r) for r in records)
    return done, len(todo)
