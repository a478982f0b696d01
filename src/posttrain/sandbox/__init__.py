"""Run untrusted Python (model-written code) outside the evaluating process, and say where.

`run_python(source)` runs a program and returns a `SandboxResult` whose `sandbox` field names
the backend that ran it:

- "bubblewrap" (`bubblewrap.py`): a jail for adversarial code. Private network namespace,
  nothing of the host visible but the interpreter and system libraries, only a size-limited
  working directory writable, a process limit that holds for root, a PID namespace killed
  whole at the wall-clock limit.
- "subprocess-fallback" (`fallback.py`): resource limits and a socket guard around a child
  process. No jail: the program can read and write what the evaluating user can. Used only
  where bubblewrap cannot run (not installed, or namespaces not permitted), with a warning.

The backend comes from `backend=`, else the POSTTRAIN_SANDBOX environment variable, else
"auto" (bubblewrap when it runs here). Asking for "bubblewrap" where it cannot run is an error
naming the reason, so that a run that must be jailed never quietly is not.
"""

from __future__ import annotations

import os
import warnings

from posttrain.sandbox import bubblewrap, fallback
from posttrain.sandbox.result import SandboxResult

__all__ = ["BACKENDS", "SandboxResult", "describe", "resolve_backend", "run_python"]

BACKENDS = (bubblewrap.NAME, fallback.NAME)
ENV_VAR = "POSTTRAIN_SANDBOX"
_warned: set[str] = set()


def resolve_backend(backend: str | None = None) -> str:
    """The backend a run would use: `backend`, else $POSTTRAIN_SANDBOX, else "auto"."""
    choice = backend or os.environ.get(ENV_VAR) or "auto"
    if choice not in (*BACKENDS, "auto"):
        source = "backend=" if backend else ENV_VAR
        raise ValueError(f"{source} {choice!r}: expected one of auto, {', '.join(BACKENDS)}")
    reason = bubblewrap.unavailable_reason() if choice != fallback.NAME else None
    if choice == bubblewrap.NAME and reason:
        raise RuntimeError(f"the bubblewrap sandbox was asked for but cannot run: {reason}")
    if choice == "auto" and reason:
        if reason not in _warned:
            _warned.add(reason)
            warnings.warn(
                f"untrusted code runs in the subprocess fallback, which is not a jail: {reason}",
                RuntimeWarning,
                stacklevel=3,
            )
        return fallback.NAME
    return bubblewrap.NAME if choice == "auto" else choice


def describe(backend: str | None = None) -> dict[str, str]:
    """What outputs record about the sandbox: its name and, for the fallback, why and what
    that means."""
    name = resolve_backend(backend)
    if name == bubblewrap.NAME:
        return {"backend": name, "isolation": "jail: private network, read-only host view, quota"}
    # The fallback runs either because bubblewrap cannot, or because it was chosen.
    why = bubblewrap.unavailable_reason() or f"chosen by backend= or {ENV_VAR}"
    return {
        "backend": name,
        "isolation": "none: resource limits and a socket guard only; the code can read and "
        "write what this user can",
        "why": why,
    }


def run_python(
    source: str,
    timeout: float = 5.0,
    memory_mb: int = 1024,
    cpu_seconds: int | None = None,
    disk_mb: int = 16,
    max_processes: int = 16,
    backend: str | None = None,
) -> SandboxResult:
    """Run `source` as a Python program in a sandbox.

    `timeout` is wall-clock seconds; `cpu_seconds` (default: the timeout rounded up, plus one)
    limits CPU time per process; `memory_mb` the address space per process; `disk_mb` what the
    program may write (a total quota under bubblewrap, per file in the fallback);
    `max_processes` the processes and threads it may have at once, itself included.
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    if min(memory_mb, disk_mb, max_processes) < 1:
        raise ValueError(
            f"memory_mb, disk_mb and max_processes must be >= 1, got "
            f"{memory_mb}, {disk_mb}, {max_processes}"
        )
    cpu = cpu_seconds if cpu_seconds is not None else int(timeout) + 1
    module = bubblewrap if resolve_backend(backend) == bubblewrap.NAME else fallback
    return module.run_python(source, timeout, memory_mb, cpu, disk_mb, max_processes)
