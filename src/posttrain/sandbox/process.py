"""Start a child, keep only the tail of what it prints, and end it on time whatever it does.

Both backends need the same three things from the evaluator's side: output read concurrently
and bounded (a program that prints gigabytes must not fill our memory), a wall-clock limit
followed by SIGKILL of the child's whole session, and no wait without a deadline after that
kill (a descendant that escaped the session may hold the pipes open forever; we stop reading
and close them instead of hanging).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

KEEP_BYTES = 64 * 1024
"""Bytes kept from the end of each stream."""
GRACE_SECONDS = 2.0
"""How long to wait for the child and its pipes after the kill."""


@dataclass
class Finished:
    returncode: int | None
    """None after a timeout."""
    timed_out: bool
    seconds: float
    stdout: bytes
    stderr: bytes


class _TailReader(threading.Thread):
    """Reads a pipe until EOF or `stop`, keeping the last KEEP_BYTES."""

    def __init__(self, fd: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.data = bytearray()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                continue
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return
            self.data += chunk
            if len(self.data) > 2 * KEEP_BYTES:
                del self.data[:-KEEP_BYTES]

    def tail(self) -> bytes:
        return bytes(self.data[-KEEP_BYTES:])


def run_bounded(
    argv: Sequence[str],
    timeout: float,
    *,
    env: dict[str, str],
    cwd: str | None = None,
    pass_fds: Sequence[int] = (),
    preexec_fn: Callable[[], None] | None = None,
) -> Finished:
    """Run `argv` in a new session with stdin from /dev/null; SIGKILL the session at `timeout`."""
    start = time.perf_counter()
    child = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        pass_fds=tuple(pass_fds),
        start_new_session=True,
        preexec_fn=preexec_fn,
    )
    assert child.stdout is not None and child.stderr is not None
    readers = [_TailReader(child.stdout.fileno()), _TailReader(child.stderr.fileno())]
    for reader in readers:
        reader.start()
    timed_out = False
    try:
        child.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    seconds = time.perf_counter() - start
    # Always: whatever the child left running in its session goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=GRACE_SECONDS)
    deadline = time.monotonic() + GRACE_SECONDS
    for reader in readers:
        reader.join(max(0.0, deadline - time.monotonic()))
        reader.stop.set()
        reader.join()
    child.stdout.close()
    child.stderr.close()
    if child.returncode is None:  # not even SIGKILL ended it within the grace period
        timed_out = True
    return Finished(
        None if timed_out else child.returncode,
        timed_out,
        seconds,
        readers[0].tail(),
        readers[1].tail(),
    )


def text_tail(data: bytes, chars: int) -> str:
    return data.decode("utf-8", errors="replace")[-chars:]
