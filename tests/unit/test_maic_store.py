"""The studio's store: every version kept, undo/redo along parent links, a branch after an
undo, compare as a unified diff, and what survives a reopen."""

from __future__ import annotations

import sqlite3

import pytest

from posttrain.errors import InputError
from posttrain.maic.store import Store, open_store

PAGE = "<html>\n<body>\n<h1>Title</h1>\n<p>one</p>\n</body>\n</html>\n"


def _edited(old: str, new: str) -> str:
    return PAGE.replace(old, new)


def test_versions_undo_redo_branch_and_reopen(tmp_path):
    store = Store(tmp_path)
    project = store.create_project("lesson.md", {"path": "x"}, {"key_concepts": ["force"]})
    with pytest.raises(KeyError, match="no page yet"):
        store.version(project)
    v1 = store.add_version(project, PAGE, "generate", {"mode": "fast"})
    v2 = store.add_version(project, _edited("one", "two"), "edit", {"instruction": "a"})
    v3 = store.add_version(project, _edited("one", "three"), "edit", {"instruction": "b"})
    assert (v1.number, v1.parent, v2.parent, v3.parent) == (1, None, 1, 2)
    assert store.undo(project).number == 2 and store.undo(project).number == 1
    with pytest.raises(ValueError, match="nothing to undo"):
        store.undo(project)
    assert store.redo(project).number == 2
    # an edit after an undo branches from the version on screen; redo follows the newest child
    store.undo(project)
    v4 = store.add_version(project, _edited("one", "four"), "edit", {"instruction": "c"})
    assert (v4.number, v4.parent) == (4, 1)
    store.undo(project)
    assert store.redo(project).number == 4
    with pytest.raises(ValueError, match="nothing to redo"):
        store.redo(project)
    assert [v.number for v in store.versions(project)] == [1, 2, 3, 4]  # nothing lost
    diff = store.compare(project, 1, 3)
    assert "--- v1.html" in diff and "-<p>one</p>" in diff and "+<p>three</p>" in diff
    store.set_detail(project, 4, findings={"ok": True})
    store.close()
    again = open_store(tmp_path)  # what was committed is there after a restart
    assert again.project(project)["current"] == 4
    assert again.version(project).detail == {"instruction": "c", "findings": {"ok": True}}
    assert again.version(project, 3).html == _edited("one", "three")
    with pytest.raises(KeyError, match="no version 9"):
        again.show(project, 9)
    assert again.show(project, 2).number == 2 and again.project(project)["current"] == 2


def test_a_file_that_is_not_a_studio_database_is_named(tmp_path):
    (tmp_path / "studio.sqlite").write_bytes(b"this is not sqlite " * 20)
    with pytest.raises(InputError, match="studio.sqlite"):
        open_store(tmp_path)


def test_a_failed_write_leaves_the_store_as_it_was(tmp_path, monkeypatch):
    store = Store(tmp_path)
    project = store.create_project("a", {}, {})
    store.add_version(project, PAGE, "generate", {})

    def broken(*_args):
        raise sqlite3.OperationalError("disk I/O error")

    real = store._db
    monkeypatch.setattr(store, "_db", _Failing(real, broken))
    with pytest.raises(sqlite3.OperationalError):
        store.add_version(project, "new", "edit", {})
    monkeypatch.setattr(store, "_db", real)
    assert [v.number for v in store.versions(project)] == [1]
    assert store.project(project)["current"] == 1


class _Failing:
    """A connection whose UPDATE fails: the version row inserted before it must roll back."""

    def __init__(self, real, broken) -> None:
        self.real, self.broken = real, broken

    def execute(self, sql, *args):
        if sql.startswith("UPDATE"):
            self.broken()
        return self.real.execute(sql, *args)

    def __enter__(self):
        return self.real.__enter__()

    def __exit__(self, *exc):
        return self.real.__exit__(*exc)
