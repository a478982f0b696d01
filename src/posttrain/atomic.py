"""Publishing files and directories so that a kill at any moment leaves the old output or
the new one, never a half-written one that a later run would trust.

A writer stages its output under a scratch name in the same directory, fsyncs the files
and the directory, and renames the scratch over the target (one atomic step on POSIX).
Scratch names are hidden and tagged with the writer's host and process id,
`.<name>.partial-<host>-<pid>`, so no reader's pattern (`step-*`, a cache key, `*.json`)
ever matches one; a scratch whose process is gone is garbage that `clean_stale` removes.
Old content is retired the same way (renamed to `.<name>.trash-<host>-<pid>`, then
deleted), so a kill mid-delete never leaves a half-deleted directory under its real name.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

_HOST = re.sub(r"[^A-Za-z0-9_.]+", "_", socket.gethostname()) or "host"
"""The host part of scratch names: a pid tells whether a writer lives only on its own host
(a cache on a shared file system also holds other hosts' scratch)."""
_STAGED = re.compile(r"^\.(?P<name>.+)\.(?P<kind>partial|trash)-(?P<host>[^/]+)-(?P<pid>\d+)$")
_ACTIVE: set[str] = set()
"""Scratch paths this process is writing now: with our own pid, only these are live."""
_ACTIVE_LOCK = threading.Lock()


def scratch_path(target: str | Path, kind: str = "partial") -> Path:
    """The hidden name this process stages `target` under (`kind`: partial or trash)."""
    target = Path(target)
    return target.with_name(f".{target.name}.{kind}-{_HOST}-{os.getpid()}")


def is_staged(name: str) -> bool:
    """Whether a file name is a scratch or trash name (never a published output)."""
    return _STAGED.match(name) is not None


# --------------------------------------------------------------------------- durability


def fsync_file(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | Path) -> None:
    """Make a directory's entries (a rename, a new file) durable."""
    if os.name != "posix":  # directories cannot be opened for fsync elsewhere
        return
    fsync_file(path)


def fsync_tree(root: str | Path) -> None:
    """fsync every regular file under `root`, then every directory, deepest first."""
    for directory, _, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                fsync_file(path)
        fsync_dir(directory)


# --------------------------------------------------------------------------- files


@contextmanager
def staged_file(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """An open scratch file that replaces `path` (atomically, durably) when the block ends
    without error; on an error it is removed and `path` is untouched. For output written
    as it is produced (a large JSONL); `write_text` when it is all in memory."""
    path = Path(path)
    scratch = scratch_path(path)
    with _claimed(scratch):
        try:
            with open(scratch, mode, encoding=None if "b" in mode else encoding) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(scratch, path)
        except BaseException:
            scratch.unlink(missing_ok=True)
            raise
    fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Replace `path` with `data` atomically and durably."""
    with staged_file(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Replace `path` with `text` atomically and durably."""
    return write_bytes(path, text.encode(encoding))


def mark_complete(directory: str | Path, marker: str, text: str) -> Path:
    """Write the file whose presence says `directory` is complete, once everything already
    in it is durable: a reader that finds the marker may trust the rest."""
    fsync_tree(directory)
    return write_text(Path(directory) / marker, text)


# --------------------------------------------------------------------------- directories


@contextmanager
def staged_dir(target: str | Path, replace: bool = True) -> Iterator[Path]:
    """A fresh scratch directory that becomes `target` when the block ends without error
    (and is removed when it raises). `replace=False`: a `target` that appeared meanwhile
    (another process published the same output) is kept and the scratch discarded."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = scratch_path(target)
    with _claimed(scratch):
        _delete(scratch)
        scratch.mkdir()
        try:
            yield scratch
            publish_dir(scratch, target, replace=replace)
        finally:
            if scratch.exists():
                _delete(scratch)


def publish_dir(scratch: Path, target: Path, replace: bool = True) -> bool:
    """Make the complete directory `scratch` appear as `target` in one rename, after its
    data is durable. An existing `target` is retired first (`replace`), or kept and the
    scratch discarded (`replace=False`); returns whether `scratch` was published."""
    fsync_tree(scratch)
    if target.is_symlink() or target.exists():
        if not replace:
            _delete(scratch)
            return False
        retire(target)
    try:
        os.rename(scratch, target)
    except OSError:
        if replace or not target.exists():
            raise
        _delete(scratch)  # another process published it between our check and rename
        return False
    fsync_dir(target.parent)
    return True


def retire(path: str | Path, missing_ok: bool = False) -> None:
    """Remove a published file or directory: renamed away first (one atomic step), so a
    kill mid-delete leaves hidden trash, never a half-deleted directory under its name.
    `missing_ok`: a path already gone (another process cleaning the same leftovers) is fine."""
    path = Path(path)
    trash = scratch_path(path, "trash")
    with _claimed(trash):
        _delete(trash)
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            if missing_ok:
                return
            raise
        fsync_dir(path.parent)
        _delete(trash)


def clean_stale(directory: str | Path, any_host: bool = False) -> list[Path]:
    """Remove the scratch and trash in `directory` left by processes that are gone (killed
    mid-write); returns what was removed. Another host's scratch is left alone unless
    `any_host` (a directory with one writer at a time: what another host left there is a
    dead job's, e.g. a restarted container's, whose host name changed)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for entry in directory.iterdir():
        match = _STAGED.match(entry.name)
        if match is None:
            continue
        if match["host"] == _HOST:
            if _live(int(match["pid"]), entry):
                continue
        elif not any_host:
            continue
        _delete(entry)
        removed.append(entry)
    return removed


# --------------------------------------------------------------------------- internals


@contextmanager
def _claimed(path: Path) -> Iterator[None]:
    """Mark a scratch path as being written by this process (see `_live`)."""
    with _ACTIVE_LOCK:
        _ACTIVE.add(str(path))
    try:
        yield
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.discard(str(path))


def _live(pid: int, path: Path) -> bool:
    """Whether the writer of a scratch path may still be writing it."""
    if pid == os.getpid():  # ours only while we write it; else an earlier process's pid
        with _ACTIVE_LOCK:
            return str(path) in _ACTIVE
    return pid_alive(pid)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (this process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _delete(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    elif path.exists():
        shutil.rmtree(path, ignore_errors=True)
