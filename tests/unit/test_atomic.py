"""Staged writes: a target is the old content or the new, scratch names match no reader's
pattern, and scratch left by a dead process is removed while a live writer's is kept."""

import fnmatch
import os
import subprocess
import sys

import pytest

from posttrain import atomic


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    pid = int(child.stdout)
    assert not atomic.pid_alive(pid)
    return pid


def test_scratch_names_match_no_readers_pattern(tmp_path):
    scratch = atomic.scratch_path(tmp_path / "step-000016")
    assert scratch.parent == tmp_path
    assert not fnmatch.fnmatch(scratch.name, "step-*") and scratch.name.startswith(".")
    assert atomic.is_staged(scratch.name)
    assert atomic.is_staged(atomic.scratch_path(tmp_path / "a.json", "trash").name)
    assert not atomic.is_staged("step-000016") and not atomic.is_staged("step-000016.tmp")


def test_write_text_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "summary.json"
    atomic.write_text(target, "old")
    atomic.write_text(target, "new")
    assert target.read_text() == "new"
    with pytest.raises(RuntimeError), atomic.staged_file(target) as handle:
        handle.write("half of a new")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_staged_dir_publishes_only_a_finished_directory(tmp_path):
    target = tmp_path / "model"
    with atomic.staged_dir(target) as scratch:
        (scratch / "weights").write_text("v1")
        assert not target.exists()  # nothing under the real name until the block ends
    assert (target / "weights").read_text() == "v1"
    with pytest.raises(RuntimeError), atomic.staged_dir(target) as scratch:
        (scratch / "weights").write_text("half")
        raise RuntimeError("failed mid-save")
    assert (target / "weights").read_text() == "v1"
    with atomic.staged_dir(target) as scratch:  # a new version replaces the old one whole
        (scratch / "other").write_text("v2")
    assert sorted(p.name for p in target.iterdir()) == ["other"]
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_staged_dir_without_replace_keeps_what_another_process_published(tmp_path):
    target = tmp_path / "key"
    with atomic.staged_dir(target, replace=False) as scratch:
        (scratch / "mine").write_text("")
        target.mkdir()  # another process publishes the same entry meanwhile
        (target / "theirs").write_text("")
    assert [p.name for p in target.iterdir()] == ["theirs"]
    assert [p.name for p in tmp_path.iterdir()] == ["key"]


def test_retire_removes_under_a_scratch_name(tmp_path):
    (tmp_path / "step-000001").mkdir()
    (tmp_path / "step-000001" / "model.safetensors").write_bytes(b"x" * 10)
    atomic.retire(tmp_path / "step-000001")
    assert not any(tmp_path.iterdir())
    atomic.retire(tmp_path / "step-000001", missing_ok=True)  # another process was first
    with pytest.raises(FileNotFoundError):
        atomic.retire(tmp_path / "step-000001")


def test_clean_stale_removes_only_what_dead_writers_left(tmp_path):
    dead, live = dead_pid(), os.getppid()
    host = atomic.scratch_path(tmp_path / "x").name.split(".partial-")[1].rsplit("-", 1)[0]
    names = {
        f".step-000016.partial-{host}-{dead}": False,  # a killed save
        f".step-000004.trash-{host}-{dead}": False,  # a killed prune
        f".key.partial-{host}-{os.getpid()}": False,  # our pid, but not being written: reused
        f".step-000020.partial-{host}-{live}": True,  # a live process still writing
        f".step-000024.partial-elsewhere-{dead}": True,  # another host's: its pid says nothing
        "step-000012": True,
    }
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / "trainer_state.pt").write_bytes(b"")
    with atomic.staged_dir(tmp_path / "busy"):  # being written by this process right now
        removed = atomic.clean_stale(tmp_path)
        busy = atomic.scratch_path(tmp_path / "busy")
        assert busy.is_dir()
    assert sorted(p.name for p in removed) == sorted(n for n, kept in names.items() if not kept)
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {n for n, kept in names.items() if kept} | {"busy"}
    # A directory with one writer (a run's checkpoints/): another host's scratch is stale.
    assert [p.name for p in atomic.clean_stale(tmp_path, any_host=True)] == [
        f".step-000024.partial-elsewhere-{dead}"
    ]
