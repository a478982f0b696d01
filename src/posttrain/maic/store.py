"""The studio's projects and page versions in SQLite, so nothing a teacher made is lost.

One file, `<root>/studio.sqlite` (WAL journal: a crash mid-write leaves the last committed
state), and the uploaded documents under `<root>/uploads/<project>/`. Every page a teacher
ever had is a row of `versions`, never changed or deleted: a generation or an applied edit
adds one, undo and redo only move the project's `current` pointer along the parent links,
and an edit made after an undo starts a branch from the version on screen (redo then
follows the newest child, as editors do). A failed edit adds nothing.

Why SQLite and not files: the studio's server answers requests on several threads and a
version's row (page, diff, instruction, findings) must appear whole or not at all; sqlite3
is in the standard library and gives both.
"""

from __future__ import annotations

import difflib
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from posttrain.errors import InputError

SCHEMA = """
CREATE TABLE IF NOT EXISTS projects (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    created TEXT NOT NULL,
    document TEXT NOT NULL,
    analysis TEXT NOT NULL,
    current INTEGER
);
CREATE TABLE IF NOT EXISTS versions (
    id INTEGER PRIMARY KEY,
    project INTEGER NOT NULL REFERENCES projects(id),
    number INTEGER NOT NULL,
    parent INTEGER,
    created TEXT NOT NULL,
    origin TEXT NOT NULL,
    html TEXT NOT NULL,
    detail TEXT NOT NULL,
    UNIQUE (project, number)
);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Version:
    project: int
    number: int
    """1, 2, ... within the project."""
    parent: int | None
    """The version this one was made from (None: a generation from the document)."""
    created: str
    origin: str
    """"generate" or "edit"."""
    html: str
    detail: dict
    """What made it: mode and source of a generation, or the instruction, picked element
    and diff of an edit; the verifier's findings when it ran."""

    def summary(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "html"}


class Store:
    """Projects and versions under `root` (created if missing). Thread-safe."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.uploads = self.root / "uploads"
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.root / "studio.sqlite", check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._db:  # commits on success, rolls back on an exception
            yield self._db

    # --- projects ---------------------------------------------------------------------------

    def create_project(self, name: str, document: dict, analysis: dict) -> int:
        """A new project for an uploaded document (`document`: its path, kind, title, hash)
        and its analysis; no version yet."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO projects (name, created, document, analysis) VALUES (?, ?, ?, ?)",
                (name, _now(), json.dumps(document), json.dumps(analysis)),
            )
            return int(cursor.lastrowid)

    def projects(self) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM projects ORDER BY id").fetchall()
        return [self._project(row) for row in rows]

    def project(self, project: int) -> dict:
        with self._lock:
            row = self._db.execute("SELECT * FROM projects WHERE id = ?", (project,)).fetchone()
        if row is None:
            raise KeyError(f"no project {project}")
        return self._project(row)

    @staticmethod
    def _project(row: sqlite3.Row) -> dict:
        return {
            "id": row["id"],
            "name": row["name"],
            "created": row["created"],
            "document": json.loads(row["document"]),
            "analysis": json.loads(row["analysis"]),
            "current": row["current"],
        }

    def set_document(self, project: int, document: dict) -> None:
        self.project(project)
        with self._transaction() as db:
            db.execute(
                "UPDATE projects SET document = ? WHERE id = ?", (json.dumps(document), project)
            )

    def set_analysis(self, project: int, analysis: dict) -> None:
        self.project(project)
        with self._transaction() as db:
            db.execute(
                "UPDATE projects SET analysis = ? WHERE id = ?", (json.dumps(analysis), project)
            )

    # --- versions ---------------------------------------------------------------------------

    def add_version(self, project: int, html: str, origin: str, detail: dict[str, Any]) -> Version:
        """Keep a new version made from the current one (or from nothing) and show it."""
        with self._transaction() as db:
            current = self.project(project)["current"]
            number = (
                1
                + (
                    db.execute(
                        "SELECT COALESCE(MAX(number), 0) FROM versions WHERE project = ?",
                        (project,),
                    ).fetchone()[0]
                )
            )
            parent = current if origin == "edit" else None
            db.execute(
                "INSERT INTO versions (project, number, parent, created, origin, html, detail)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (project, number, parent, _now(), origin, html, json.dumps(detail)),
            )
            db.execute("UPDATE projects SET current = ? WHERE id = ?", (number, project))
        return self.version(project, number)

    def version(self, project: int, number: int | None = None) -> Version:
        """A version by number (None: the current one)."""
        if number is None:
            number = self.project(project)["current"]
            if number is None:
                raise KeyError(f"project {project} has no page yet")
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM versions WHERE project = ? AND number = ?", (project, number)
            ).fetchone()
        if row is None:
            raise KeyError(f"project {project} has no version {number}")
        return Version(
            project,
            row["number"],
            row["parent"],
            row["created"],
            row["origin"],
            row["html"],
            json.loads(row["detail"]),
        )

    def versions(self, project: int) -> list[Version]:
        with self._lock:
            numbers = [
                row[0]
                for row in self._db.execute(
                    "SELECT number FROM versions WHERE project = ? ORDER BY number", (project,)
                )
            ]
        return [self.version(project, n) for n in numbers]

    def set_detail(self, project: int, number: int, **changes: Any) -> None:
        """Add to a version's detail (the verifier's findings, later)."""
        detail = {**self.version(project, number).detail, **changes}
        with self._transaction() as db:
            db.execute(
                "UPDATE versions SET detail = ? WHERE project = ? AND number = ?",
                (json.dumps(detail), project, number),
            )

    def undo(self, project: int) -> Version:
        """Show the version the current one was made from."""
        current = self.version(project)
        if current.parent is None:
            raise ValueError("nothing to undo: this version was generated from the document")
        return self._show(project, current.parent)

    def redo(self, project: int) -> Version:
        """Show the newest version made from the current one."""
        current = self.version(project)
        with self._lock:
            row = self._db.execute(
                "SELECT MAX(number) FROM versions WHERE project = ? AND parent = ?",
                (project, current.number),
            ).fetchone()
        if row[0] is None:
            raise ValueError("nothing to redo")
        return self._show(project, int(row[0]))

    def show(self, project: int, number: int) -> Version:
        """Show any kept version (a version list's "restore")."""
        return self._show(project, number)

    def _show(self, project: int, number: int) -> Version:
        version = self.version(project, number)
        with self._transaction() as db:
            db.execute("UPDATE projects SET current = ? WHERE id = ?", (number, project))
        return version

    def compare(self, project: int, a: int, b: int) -> str:
        """The unified diff from version `a` to version `b`."""
        old, new = self.version(project, a), self.version(project, b)
        return "".join(
            difflib.unified_diff(
                old.html.splitlines(keepends=True),
                new.html.splitlines(keepends=True),
                f"v{a}.html",
                f"v{b}.html",
            )
        )


def open_store(root: str | Path) -> Store:
    """The store under `root`; an InputError naming the file when it is not a studio's."""
    try:
        return Store(root)
    except sqlite3.DatabaseError as error:
        raise InputError(f"not a studio database: {error}", Path(root) / "studio.sqlite") from error
