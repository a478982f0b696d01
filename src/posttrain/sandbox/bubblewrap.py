"""Run untrusted Python under bubblewrap (`bwrap`): the sandbox for adversarial code.

What the program sees and may do:

- Network: a private network namespace with only its own loopback; no host address, not even
  the host's 127.0.0.1, is reachable, whatever socket API the code uses.
- Files: an empty root. Read-only: the system shared libraries (all of `/usr/lib`, and
  `/lib*` as on the host), the interpreter's executable, its standard library directory (with
  the base install's site-packages inside it, not on `sys.path`: the interpreter runs with
  -S) and its libpython.
  Writable: only the working directory `/sandbox`, a tmpfs of `disk_mb` MiB in total (the
  quota holds across files; a write past it fails with ENOSPC), holding a read-only
  `program.py`. Nothing of /etc, $HOME, the repository or the host's /tmp is there; /dev is
  bubblewrap's minimal one, read-only; /proc shows only the sandbox's processes.
- Processes: a PID namespace whose init is bubblewrap's, with `--die-with-parent`; the
  program runs as a non-root user under RLIMIT_NPROC = `max_processes`. When we run as root,
  bubblewrap runs privileged and a launcher inside switches to a fresh uid that no other
  process has (root is exempt from RLIMIT_NPROC, so the limit needs a real non-root uid);
  otherwise bubblewrap makes a user namespace (`--unshare-user --disable-userns`) and the
  limit counts the processes of that namespace. Also RLIMIT_AS, RLIMIT_CPU and RLIMIT_FSIZE
  per process, as in the fallback.
- Time: at the wall-clock limit the bwrap process and its session get SIGKILL; the
  namespace's init then dies and the kernel kills everything in the namespace, so `setsid()`
  or a double fork escapes nothing. Reads after the kill have a deadline (`process.py`).

- System calls: a seccomp filter (`seccomp.py`, x86-64 and aarch64) refuses new user
  namespaces, so no tmpfs of the program's own can bypass the disk quota.

Not bounded: total memory across processes (RLIMIT_AS is per process, and memory-backed files
such as memfd are not counted; a cgroup memory limit would be needed).
"""

from __future__ import annotations

import contextlib
import functools
import os
import random
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path

from posttrain.sandbox import seccomp
from posttrain.sandbox.process import run_bounded, text_tail
from posttrain.sandbox.result import TAIL_CHARS, SandboxResult, classify

NAME = "bubblewrap"
WORKDIR = "/sandbox"

# Runs inside the sandbox, in the real interpreter started with -I -S -B: become the sandbox
# user (root mode), lower the limits (a non-root process cannot raise a hard limit again), then
# run the program as __main__ in this same process. Without `site` the interpreter starts in
# a fifth of the time and sees no site-packages; `exit` and `quit`, which `site` would add,
# are added here.
LIMITS_PRELUDE = """\
import os, resource, sys
uid, memory_mb, cpu, file_mb, nproc = map(int, sys.argv[1:6])
if uid >= 0:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
mib = 1024 * 1024
resource.setrlimit(resource.RLIMIT_AS, (memory_mb * mib,) * 2)
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
resource.setrlimit(resource.RLIMIT_FSIZE, (file_mb * mib,) * 2)
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
"""
"""The start of every launcher here: become the sandbox user, lower the limits (arguments
1-5: uid or -1, memory MiB, CPU seconds, file MiB, processes); `mounts` shares it."""
_LAUNCHER = (
    LIMITS_PRELUDE
    + """\
import builtins, runpy, _sitebuiltins
builtins.exit = _sitebuiltins.Quitter("exit", "Ctrl-D (i.e. EOF)")
builtins.quit = _sitebuiltins.Quitter("quit", "Ctrl-D (i.e. EOF)")
sys.argv = sys.argv[6:]
sys.path.insert(0, os.path.dirname(sys.argv[0]))
del os, resource, builtins, _sitebuiltins, uid, memory_mb, cpu, file_mb, nproc, mib
runpy.run_path(sys.argv[0], run_name="__main__")
"""
)

# Where no account lives: each root-mode run gets its own uid, so that RLIMIT_NPROC counts
# only that run's processes.
_UID_BASE = 1 << 31
_UID_SPAN = 1 << 28


def interpreter() -> tuple[str, list[str]]:
    """The real interpreter behind `sys.executable` (a venv's python is a link to it) and the
    paths it needs read-only: itself, its standard library, its shared libpython."""
    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    paths = {exe}
    # The base installation's paths: in a venv, "platstdlib" would otherwise be the venv's.
    base = {"base": sys.base_prefix, "installed_base": sys.base_prefix}
    base |= {"platbase": sys.base_exec_prefix, "installed_platbase": sys.base_exec_prefix}
    for key in ("stdlib", "platstdlib"):
        paths.add(os.path.realpath(sysconfig.get_path(key, vars=base)))
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
        if libdir and soname and os.path.exists(os.path.join(libdir, soname)):
            paths.add(os.path.realpath(os.path.join(libdir, soname)))
    return exe, sorted(paths)


def _outermost(paths: list[str]) -> list[str]:
    """`paths` without those inside another one of them."""
    kept: list[str] = []
    for path in sorted(paths):
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def _filesystem(exe_paths: list[str]) -> list[str]:
    """bwrap arguments for the read-only view: system libraries and the interpreter."""
    args: list[str] = []
    binds = []
    for top in ("/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):  # merged /usr: /lib -> usr/lib
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            binds.append(top)
    binds += [
        p for p in ("/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libx32") if os.path.isdir(p)
    ]
    binds = _outermost(binds + exe_paths)
    # Directories bwrap would create on the way to a mount point get mode 0700 when it runs
    # privileged, which the sandbox user could not enter: create them 0755 first.
    parents = sorted(
        {str(p) for b in binds for p in Path(b).parents if str(p) != "/"} - set(binds),
        key=lambda p: p.count("/"),
    )
    for parent in parents:
        args += ["--perms", "0755", "--dir", parent]
    for path in binds:
        args += ["--ro-bind", path, path]
    return args


def _command(
    bwrap: str,
    fds: dict[str, int],
    uid: int,
    memory_mb: int,
    cpu: int,
    disk_mb: int,
    nproc: int,
) -> list[str]:
    exe, exe_paths = interpreter()
    if uid >= 0:  # privileged bwrap: only the launcher's uid switch needs capabilities
        user = ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        user = ["--unshare-user", "--disable-userns"]
    if "seccomp" in fds:
        user += ["--seccomp", str(fds["seccomp"])]
    return [
        bwrap,
        *["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"],
        *["--unshare-cgroup-try", "--hostname", "sandbox", *user],
        *["--die-with-parent", "--new-session"],
        *_filesystem(exe_paths),
        *["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev"],
        *["--perms", "0777", "--size", str(disk_mb * 1024 * 1024), "--tmpfs", WORKDIR],
        *["--perms", "0444", "--file", str(fds["program"]), f"{WORKDIR}/program.py"],
        *["--chdir", WORKDIR, "--clearenv"],
        *["--setenv", "HOME", WORKDIR, "--setenv", "TMPDIR", WORKDIR],
        *["--setenv", "PATH", os.path.dirname(exe)],
        *[exe, "-I", "-S", "-B", "-c", _LAUNCHER],
        *map(str, (uid, memory_mb, cpu, disk_mb, nproc)),
        f"{WORKDIR}/program.py",
    ]


def run_python(
    source: str,
    timeout: float,
    memory_mb: int,
    cpu_seconds: int,
    disk_mb: int,
    max_processes: int,
) -> SandboxResult:
    """Run `source` as /sandbox/program.py in a fresh bubblewrap sandbox."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise FileNotFoundError(
            "bwrap not found on PATH (Debian/Ubuntu: apt-get install bubblewrap)"
        )
    uid = _UID_BASE + random.randrange(_UID_SPAN) if os.geteuid() == 0 else -1
    inputs = {"program": source.encode("utf-8"), "seccomp": seccomp.no_user_namespaces()}
    with contextlib.ExitStack() as stack:
        fds = {}
        for name, data in inputs.items():  # bwrap reads each from an inherited descriptor
            if data is None:
                continue
            file = stack.enter_context(tempfile.TemporaryFile())
            file.write(data)
            file.flush()
            file.seek(0)
            fds[name] = file.fileno()
        argv = _command(bwrap, fds, uid, memory_mb, cpu_seconds, disk_mb, max_processes)
        done = run_bounded(argv, timeout, env={}, pass_fds=tuple(fds.values()))
    stdout, stderr = text_tail(done.stdout, TAIL_CHARS), text_tail(done.stderr, TAIL_CHARS)
    if done.timed_out:
        return SandboxResult("timeout", None, done.seconds, stdout, stderr, NAME)
    code = done.returncode
    assert code is not None
    # bwrap exits with the program's status, or 128 + the signal that killed it.
    signal_number = code - 128 if code > 128 else (-code if code < 0 else None)
    exit_code = None if signal_number is not None else code
    full_err = done.stderr.decode("utf-8", "replace")
    return SandboxResult(
        classify(signal_number, exit_code, full_err), code, done.seconds, stdout, stderr, NAME
    )


@functools.cache
def unavailable_reason() -> str | None:
    """None when bubblewrap runs a program here, else why not (checked once per process:
    missing binary, no permission for namespaces, an option this bwrap lacks...)."""
    if shutil.which("bwrap") is None:
        return "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    try:
        probe = run_python("print('sandbox ok')", 20.0, 256, 10, 1, 8)
    except OSError as err:
        return f"bwrap could not start: {err}"
    if probe.stdout.strip() != "sandbox ok":
        detail = (probe.stderr.strip() or probe.status).splitlines()[-1:]
        return f"bwrap cannot run a sandbox here ({probe.status}): {' '.join(detail)}"
    return None
