"""`ResponseCache`: an on-disk SQLite cache of chat answers, so a crashed evaluation resumes.

Each answer is written (and committed) the moment it arrives, keyed by a sha256 of the full
request: endpoint, model, messages and every sampling parameter. A repeated request is then
answered from disk without calling the endpoint again. Note that this also replays sampled
(temperature > 0) answers, which is what resuming wants and what fresh sampling does not.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from posttrain.models.chat.base import ChatResult, Choice, Usage


def request_key(request: Mapping[str, Any]) -> str:
    """A stable sha256 of a JSON-serialisable request (dict key order does not matter)."""
    canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def result_to_json(result: ChatResult) -> str:
    data = asdict(result)
    data.pop("cached")  # a property of how an answer was obtained, not of the answer
    return json.dumps(data, ensure_ascii=False)


def result_from_json(text: str) -> ChatResult:
    data = json.loads(text)
    return ChatResult(
        model=data["model"],
        choices=[Choice(**choice) for choice in data["choices"]],
        weight_version=data.get("weight_version"),
        usage=Usage(**data["usage"]) if data.get("usage") else None,  # absent in older rows
    )


class ResponseCache:
    """Thread-safe: one connection shared by all threads behind a lock, in WAL mode."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: autocommit, so every put is durable before it returns.
        self._conn = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None, timeout=30.0
        )
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL keeps commits on app crash
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                " key TEXT PRIMARY KEY, request TEXT NOT NULL,"
                " result TEXT NOT NULL, created REAL NOT NULL)"
            )

    def get(self, request: Mapping[str, Any]) -> ChatResult | None:
        """The stored answer to exactly this request, or None. It is marked `cached`, so
        that a cost tracker charges nothing for it."""
        with self._lock:
            row = self._conn.execute(
                "SELECT result FROM responses WHERE key = ?", (request_key(request),)
            ).fetchone()
        return replace(result_from_json(row[0]), cached=True) if row else None

    def put(self, request: Mapping[str, Any], result: ChatResult) -> None:
        """Store (or replace) the answer to `request`, committed before returning."""
        request_json = json.dumps(request, sort_keys=True, ensure_ascii=False)
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses (key, request, result, created)"
                " VALUES (?, ?, ?, ?)",
                (request_key(request), request_json, result_to_json(result), time.time()),
            )

    def __contains__(self, request: Mapping[str, Any]) -> bool:
        with self._lock:
            row = self._conn.execute(
                "SELECT 1 FROM responses WHERE key = ?", (request_key(request),)
            ).fetchone()
        return row is not None

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
