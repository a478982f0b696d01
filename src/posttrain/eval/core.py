"""The evaluation core: per-item results appended as produced, resumed where a run stopped.

Why: an evaluation over thousands of items, each costing model or judge calls, must not lose
work when it crashes, and a rerun must not pay again for what it already has. `ItemLog` is a
JSONL file of one record per finished item, keyed by a string; `map_items` runs a function
over the items a log does not hold yet, in batches (one `ChatModel.chat` call per batch),
with a progress bar, appending each result as soon as its batch is done. Model calls go
through `ChatModel`; an `openai:` model gets a `ResponseCache` from `chat_with_cache`, so
even the calls of a batch that died half-way are not paid twice.

A benchmark is its items plus its own scoring: RPC-Bench (`posttrain.eval.rpc`) and
SustainScore (`posttrain.eval.sustain`) each build their items, ask the model and grade the
answers inside the function they give `map_items`, so every stage resumes the same way.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from posttrain.data.io import DataError, iter_jsonl, repair_torn_tail
from posttrain.models.chat.base import ChatModel

Record = dict[str, Any]


class ItemLog:
    """Append-only JSONL of finished items, each with a unique string ``key`` field.

    Opening it cuts a torn last line (a crash mid-write) off the file, so that item is simply
    redone; a malformed line elsewhere is an error naming the file and line (the JSONL rule
    of `posttrain.data.io`). A key written twice keeps the last record.
    """

    def __init__(self, path: str | Path, key: str = "key") -> None:
        self.path = Path(path)
        self.key = key
        self.records: dict[str, Record] = self._read()

    def _read(self) -> dict[str, Record]:
        if not self.path.exists():
            return {}
        repair_torn_tail(self.path)  # before new appends go after it
        records: dict[str, Record] = {}
        for number, record in iter_jsonl(self.path):
            if self.key not in record:
                raise DataError(f"expected an object with {self.key!r}", self.path, line=number)
            records[str(record[self.key])] = record
        return records

    def __contains__(self, key: object) -> bool:
        return str(key) in self.records

    def __len__(self) -> int:
        return len(self.records)

    def append(self, record: Record) -> None:
        """Write one record and flush it to the OS before returning."""
        if self.key not in record:
            raise KeyError(f"record has no {self.key!r} field")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.records[str(record[self.key])] = record

    def in_order(self, keys: Iterable[str]) -> list[Record]:
        """The records of ``keys`` in that order (missing keys are skipped)."""
        return [self.records[k] for k in keys if k in self.records]


def progress_enabled() -> bool:
    """Bars on a terminal, not in CI logs or captured output."""
    return sys.stderr.isatty() and os.environ.get("CI", "").lower() not in ("1", "true")


def _batches(items: Sequence[Record], size: int) -> Iterator[Sequence[Record]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def map_items(
    items: Sequence[Record],
    fn: Callable[[Sequence[Record]], Sequence[Record]],
    log: ItemLog,
    description: str = "items",
    batch_size: int = 16,
    progress: bool | None = None,
) -> list[Record]:
    """Run ``fn`` over the items ``log`` does not hold yet, ``batch_size`` at a time.

    ``fn`` gets a batch of items and returns one record per item, in order; each record
    gets the item's key (``log.key``) if it lacks it and is appended to ``log`` as soon as
    its batch returns. Returns the records of all ``items`` (old and new), in item order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    keys = [str(item[log.key]) for item in items]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"duplicate item key {duplicate!r}")
    todo = [item for item in items if str(item[log.key]) not in log]
    show = progress_enabled() if progress is None else progress
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not show, transient=False) as bar:
        task = bar.add_task(description, total=len(items), completed=len(items) - len(todo))
        for batch in _batches(todo, batch_size):
            results = list(fn(batch))
            if len(results) != len(batch):
                raise RuntimeError(f"{description}: got {len(results)} results for {len(batch)}")
            for item, record in zip(batch, results, strict=True):
                log.append({log.key: item[log.key], **record})
            bar.advance(task, len(batch))
    return log.in_order(keys)


def chat_with_cache(spec: str, cache_path: str | Path | None = None, **kwargs: Any) -> ChatModel:
    """``load_chat(spec)``, with a SQLite response cache for ``openai:`` models.

    Local and scripted models are deterministic at temperature 0 and cheap to rerun, so only
    remote calls (which cost money and time) are cached.
    """
    from posttrain.models.chat.spec import load_chat, parse_chat_spec
    from posttrain.specs import SpecKind

    parsed = parse_chat_spec(spec)
    if parsed.kind is SpecKind.OPENAI and cache_path is not None:
        kwargs.setdefault("cache", Path(cache_path))
    return load_chat(parsed, **kwargs)


__all__ = [
    "ItemLog",
    "Record",
    "chat_with_cache",
    "map_items",
    "progress_enabled",
]
