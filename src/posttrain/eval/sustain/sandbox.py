"""Run untrusted Python (model-written code) in a child process with resource limits.

Why a subprocess: generated code may loop forever, allocate without bound, or delete files;
it never runs in the evaluating process. The child is `sys.executable -I` (isolated mode: no
user site, no PYTHON* variables) with an empty environment, in a fresh temporary directory,
in its own session (so a timeout kills everything it started), under `setrlimit` limits on
address space, CPU seconds, file size and process count.

The network "block" is a guard, not a jail: a prelude replaces `socket.socket` and friends
with a function that raises, which stops accidental network use by ordinary code, but code
that re-imports `_socket` or uses `ctypes` can get around it. Use a container or a network
namespace when the code is adversarial.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PRELUDE = """\
import socket as _sandbox_socket
def _sandbox_no_network(*args, **kwargs):
    raise OSError("network access is disabled in the sustain sandbox")
for _name in ("socket", "create_connection", "socketpair", "fromfd", "getaddrinfo"):
    setattr(_sandbox_socket, _name, _sandbox_no_network)
del _sandbox_socket, _name
"""

_TAIL = 2000  # characters of stdout/stderr kept in a result


@dataclass
class SandboxResult:
    """How a run ended: "passed" (exit 0), "failed" (non-zero exit), "timeout" (wall clock),
    "memory" (MemoryError at the address-space limit), "cpu" (CPU limit), "killed"
    (SIGKILL: the hard CPU limit or the OOM killer)."""

    status: str
    returncode: int | None
    seconds: float
    stdout: str = ""
    stderr: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        return asdict(self)


def _limits(memory_mb: int, cpu_seconds: int, file_mb: int) -> None:
    """Runs in the child between fork and exec."""
    memory = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))  # SIGXCPU, then KILL
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb * 1024 * 1024,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # No new processes or threads from the child (not enforced for root).
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def _status(returncode: int, stderr: str) -> str:
    if returncode == 0:
        return "passed"
    if "MemoryError" in stderr:
        return "memory"
    if returncode == -24:  # SIGXCPU at the soft CPU limit
        return "cpu"
    if returncode == -9:  # the hard CPU limit or the kernel's OOM killer
        return "killed"
    return "failed"


def run_python(
    source: str,
    timeout: float = 5.0,
    memory_mb: int = 1024,
    cpu_seconds: int | None = None,
    file_mb: int = 16,
) -> SandboxResult:
    """Run `source` (prefixed by the network guard) in a limited child process."""
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    cpu = cpu_seconds if cpu_seconds is not None else int(timeout) + 1
    with tempfile.TemporaryDirectory(prefix="sustain-sandbox-") as workdir:
        script = Path(workdir) / "program.py"
        script.write_text(PRELUDE + source, encoding="utf-8")
        start = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-I", "-B", str(script)],
            cwd=workdir,
            env={},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=lambda: _limits(memory_mb, cpu, file_mb),
        )
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(child)
            out, err = child.communicate()
            seconds = time.perf_counter() - start
            return SandboxResult("timeout", None, seconds, _text(out), _text(err))
        seconds = time.perf_counter() - start
        _kill_group(child)  # anything it left behind in its session
    stderr = _text(err)
    return SandboxResult(
        _status(child.returncode, stderr), child.returncode, seconds, _text(out), stderr
    )


def _kill_group(child: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, 9)


def _text(data: bytes | None) -> str:
    return (data or b"").decode("utf-8", errors="replace")[-_TAIL:]
