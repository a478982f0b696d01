"""Run an approach's command in its workspace, jailed: the workspace is all it can write or see
of the run.

The workspace is bound writable at the fixed path `/workspace` (so nothing the approach prints
leaks where the run lives on the host); the interpreter, the system libraries and tools
(/usr/bin) and this project's virtual environment's site-packages (numpy, scipy...) are
read-only. Not there: other approaches' workspaces, any problem's `private/` folder, the
grader's results, the repository, $HOME, /etc. No network (a private network namespace).
"""

from __future__ import annotations

import os
import site
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from posttrain.sandbox.mounts import JailResult, Limits, run_jailed

WORKSPACE = "/workspace"
"""Where the workspace appears inside the jail."""

DEFAULT_LIMITS = Limits(wall_seconds=300.0, memory_mb=4096, max_processes=64, file_mb=256)


def site_packages() -> list[str]:
    """This environment's site-packages folders (the venv's, when running in one)."""
    if sys.prefix != sys.base_prefix:
        found = site.getsitepackages([sys.prefix])
    else:
        found = site.getsitepackages()
    return [os.path.realpath(p) for p in found if os.path.isdir(p)]


def run_in_workspace(
    workspace: str | Path,
    command: Sequence[str],
    limits: Limits | Mapping | None = None,
    env: Mapping[str, str] | None = None,
) -> JailResult:
    """Run `command` (argv; "python" is the project's interpreter) with `/workspace` as its
    working directory and home. Returns the JailResult: returncode, stdout / stderr tails,
    `timed_out`, and `limit`, the limit that stopped it if one did."""
    workspace = Path(workspace)
    if not workspace.is_dir():
        raise FileNotFoundError(f"workspace {workspace} is not a directory")
    if not command:
        raise ValueError("command: expected a non-empty argv list")
    if limits is None:
        limits = DEFAULT_LIMITS
    elif isinstance(limits, Mapping):
        limits = Limits.from_dict(limits)
    packages = site_packages()
    environment = {
        "PYTHONPATH": ":".join(packages),
        "PYTHONDONTWRITEBYTECODE": "1",
        # One thread per BLAS pool: the process limit counts threads, and RLIMIT_AS counts
        # each thread's reserved stack.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    environment |= dict(env or {})
    return run_jailed(
        list(command),
        limits=limits,
        ro_binds={p: p for p in packages},
        rw_binds={WORKSPACE: str(workspace)},
        chdir=WORKSPACE,
        env=environment,
        system_bin=True,
    )
