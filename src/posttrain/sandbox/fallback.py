"""The subprocess sandbox: the documented fallback where bubblewrap cannot run.

What it does: the program runs in `sys.executable -I -B` (isolated mode: no user site, no
PYTHON* variables) with an empty environment, in a fresh temporary directory, in its own
session, under `setrlimit` limits on address space, CPU seconds, file size and process count,
behind a prelude that replaces `socket.socket` and friends with a function that raises. The
evaluator never hangs on it: output is read bounded and the wait after the kill has a deadline.

What it does not do, measured by tests/integration/test_sandbox_attacks.py: it is no jail. The
program can read every file the evaluating user can (the repository, $HOME, secrets), write
outside its directory, reach the network through `_socket` or `ctypes`, and, as root, fork
without limit (RLIMIT_NPROC does not apply to root). The file-size limit is per file, not a
total quota, and a child that calls `setsid()` leaves the session and survives the kill. Use
it for code you would run yourself; adversarial code needs the bubblewrap backend.
"""

from __future__ import annotations

import resource
import sys
import tempfile
from pathlib import Path

from posttrain.sandbox.process import run_bounded, text_tail
from posttrain.sandbox.result import TAIL_CHARS, SandboxResult, classify

NAME = "subprocess-fallback"

PRELUDE = """\
import socket as _sandbox_socket
def _sandbox_no_network(*args, **kwargs):
    raise OSError("network access is disabled in the sandbox")
for _name in ("socket", "create_connection", "socketpair", "fromfd", "getaddrinfo"):
    setattr(_sandbox_socket, _name, _sandbox_no_network)
del _sandbox_socket, _name
"""


def _limits(memory_mb: int, cpu_seconds: int, disk_mb: int, max_processes: int) -> None:
    """Runs in the child between fork and exec."""
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))  # SIGXCPU, then KILL
    resource.setrlimit(resource.RLIMIT_FSIZE, (disk_mb * 1024 * 1024,) * 2)  # per file only
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # Counts every process of the evaluating user, and is not enforced for root at all.
    resource.setrlimit(resource.RLIMIT_NPROC, (max_processes, max_processes))


def run_python(
    source: str,
    timeout: float,
    memory_mb: int,
    cpu_seconds: int,
    disk_mb: int,
    max_processes: int,
) -> SandboxResult:
    """Run `source` (behind the socket guard) in a limited child process."""
    with tempfile.TemporaryDirectory(prefix="posttrain-sandbox-") as workdir:
        script = Path(workdir) / "program.py"
        script.write_text(PRELUDE + source, encoding="utf-8")
        done = run_bounded(
            [sys.executable, "-I", "-B", str(script)],
            timeout,
            env={},
            cwd=workdir,
            preexec_fn=lambda: _limits(memory_mb, cpu_seconds, disk_mb, max_processes),
        )
    stdout, stderr = text_tail(done.stdout, TAIL_CHARS), text_tail(done.stderr, TAIL_CHARS)
    if done.timed_out:
        return SandboxResult("timeout", None, done.seconds, stdout, stderr, NAME)
    code = done.returncode
    assert code is not None
    status = classify(
        -code if code < 0 else None,
        code if code >= 0 else None,
        done.stderr.decode("utf-8", "replace"),
    )
    return SandboxResult(status, code, done.seconds, stdout, stderr, NAME)
