"""Run any command under bubblewrap with chosen host folders bound in, read-only or writable.

`run_python` (bubblewrap.py) runs one program text in an empty tmpfs. EurekAgent's grader
and its approaches need more: the grader mounts a problem's hidden `private/` folder and a
submission copy read-only; an approach's command gets its own workspace writable. This module
builds the same jail as bubblewrap.py (private network, PID namespace killed whole at the
wall clock, the seccomp filter, a fresh non-root uid under RLIMIT_NPROC when we are root,
RLIMIT_AS / CPU / FSIZE per process) around an arbitrary argv and the binds asked for.

A writable bind of a host folder needs the sandbox user to own it: as root the program runs
under a fresh uid, so the folder's tree is handed to that uid for the run and back to its
owner afterwards (without following symlinks), which also keeps git's ownership check happy
for the process that reads the repository later.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import random
import resource
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from posttrain.sandbox import bubblewrap, seccomp
from posttrain.sandbox.process import run_bounded, text_tail
from posttrain.sandbox.result import TAIL_CHARS, classify

# Runs inside the jail in the real interpreter (-I -S -B): become the sandbox user (root
# mode), lower the limits, then exec the command, which inherits them.
_LAUNCHER = bubblewrap.LIMITS_PRELUDE + "os.execvp(sys.argv[6], sys.argv[6:])\n"

_SYSTEM_BIN = ("/usr/bin", "/bin")


@dataclass(frozen=True)
class Limits:
    """What one jailed run may use. `cpu_seconds` None: the wall clock rounded up, plus one.
    `memory_mb` is address space per process, `file_mb` the largest file it may write,
    `tmp_mb` the size of its private /tmp, `max_processes` processes and threads at once."""

    wall_seconds: float = 60.0
    cpu_seconds: int | None = None
    memory_mb: int = 2048
    max_processes: int = 64
    file_mb: int = 256
    tmp_mb: int = 64

    def __post_init__(self) -> None:
        if self.wall_seconds <= 0:
            raise ValueError(f"limits: wall_seconds must be positive, got {self.wall_seconds}")
        for key in ("memory_mb", "max_processes", "file_mb", "tmp_mb"):
            if getattr(self, key) < 1:
                raise ValueError(f"limits: {key} must be >= 1, got {getattr(self, key)}")
        if self.cpu_seconds is not None and self.cpu_seconds < 1:
            raise ValueError(f"limits: cpu_seconds must be >= 1, got {self.cpu_seconds}")

    @property
    def cpu(self) -> int:
        return self.cpu_seconds if self.cpu_seconds is not None else int(self.wall_seconds) + 1

    @classmethod
    def from_dict(cls, data: Mapping, where: str = "limits") -> Limits:
        """From a mapping of the field names above; an unknown key or a bad value is an error
        naming it."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(known)}")
        values = {}
        for key, value in data.items():
            if value is None and key == "cpu_seconds":
                values[key] = None
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{where}.{key}: expected a number, got {value!r}")
            values[key] = float(value) if key == "wall_seconds" else math.ceil(value)
        return cls(**values)


@dataclass
class JailResult:
    """How a jailed command ended. `status` as in SandboxResult ("passed", "failed",
    "timeout", "memory", "cpu", "killed"); `limit`: which limit stopped it, if one did
    ("wall_clock", "memory", "cpu", "processes", "file_size", "killed")."""

    status: str
    returncode: int | None
    seconds: float
    stdout: str
    stderr: str
    limit: str | None

    @property
    def timed_out(self) -> bool:
        return self.status == "timeout"

    def to_dict(self) -> dict:
        return asdict(self) | {"timed_out": self.timed_out}


def _limit_hit(status: str, signal_number: int | None, stderr: str) -> str | None:
    if status == "timeout":
        return "wall_clock"
    if status in ("memory", "cpu", "killed"):
        return status
    if signal_number == 25:  # SIGXFSZ: a write past RLIMIT_FSIZE
        return "file_size"
    if "File too large" in stderr or "No space left on device" in stderr:
        return "file_size"
    if "BlockingIOError" in stderr or "Resource temporarily unavailable" in stderr:
        return "processes"  # fork / thread creation refused at RLIMIT_NPROC
    return None


def _set_limits(limits: Limits) -> None:
    """The launcher's limits, set in bwrap's process between fork and exec."""
    mib = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mib,) * 2)
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu, limits.cpu + 1))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * mib,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (limits.max_processes, limits.max_processes))


@contextlib.contextmanager
def _owned_by(paths: Sequence[str], uid: int):
    """Hand each tree to `uid` for the run and back to its root's owner afterwards."""
    owners = {}
    for path in paths:
        info = os.lstat(path)
        owners[path] = (info.st_uid, info.st_gid)
        if info.st_uid >= bubblewrap._UID_BASE:  # left by a concurrent run: give it to us
            owners[path] = (os.geteuid(), os.getegid())

    def chown_tree(path: str, user: int, group: int) -> None:
        os.lchown(path, user, group)
        for root, dirs, files in os.walk(path):  # never follows symlinks
            for name in dirs + files:
                os.lchown(os.path.join(root, name), user, group)

    try:
        for path in paths:
            chown_tree(path, uid, uid)
        yield
    finally:
        for path, (user, group) in owners.items():
            chown_tree(path, user, group)


def _mount_args(ro_binds: Mapping[str, str], rw_binds: Mapping[str, str]) -> list[str]:
    """bwrap arguments binding host folders/files (key: path inside, value: host path)."""
    args: list[str] = []
    inside = list(ro_binds) + list(rw_binds)
    parents = sorted(
        {str(p) for path in inside for p in Path(path).parents if str(p) != "/"} - set(inside),
        key=lambda p: p.count("/"),
    )
    for parent in parents:
        args += ["--perms", "0755", "--dir", parent]
    for target, source in ro_binds.items():
        args += ["--ro-bind", source, target]
    for target, source in rw_binds.items():
        args += ["--bind", source, target]
    return args


def run_jailed(
    argv: Sequence[str],
    *,
    limits: Limits,
    ro_binds: Mapping[str, str] | None = None,
    rw_binds: Mapping[str, str] | None = None,
    chdir: str = "/tmp",
    env: Mapping[str, str] | None = None,
    system_bin: bool = False,
    tail_chars: int = TAIL_CHARS,
    pass_fds: Sequence[int] = (),
) -> JailResult:
    """Run `argv` in a fresh bubblewrap jail.

    Visible: the system libraries and the interpreter read-only (as for `run_python`; argv[0]
    "python" or "python3" means that interpreter), `ro_binds` / `rw_binds` ({path inside:
    host path}), a private /tmp tmpfs of `limits.tmp_mb`, and with `system_bin` also /usr/bin
    and /bin read-only. `pass_fds`: descriptors the command inherits, under the same numbers.
    The environment is only `env` plus HOME, TMPDIR and PATH. Raises RuntimeError where
    bubblewrap cannot run: a caller that asks for a jail never gets less.
    """
    reason = bubblewrap.unavailable_reason()
    if reason:
        raise RuntimeError(f"the bubblewrap jail cannot run here: {reason}")
    bwrap = shutil.which("bwrap")
    assert bwrap is not None
    ro_binds = {k: os.path.realpath(v) for k, v in (ro_binds or {}).items()}
    rw_binds = {k: os.path.realpath(v) for k, v in (rw_binds or {}).items()}
    for source in [*ro_binds.values(), *rw_binds.values()]:
        if not os.path.exists(source):
            raise FileNotFoundError(f"bind source {source} does not exist")
    exe, exe_paths = bubblewrap.interpreter()
    command = [exe if i == 0 and a in ("python", "python3") else a for i, a in enumerate(argv)]
    uid = bubblewrap._UID_BASE + random.randrange(bubblewrap._UID_SPAN) if os.geteuid() == 0 else -1
    if uid >= 0:
        user = ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        user = ["--unshare-user", "--disable-userns"]
    setpriv = shutil.which("setpriv") if uid >= 0 else None
    preexec = None
    if setpriv:
        # Root mode, fast path: limits set on bwrap itself (root is exempt from the process
        # limit, so bwrap starts; the jailed program inherits them all) and util-linux's
        # setpriv switching to the fresh uid: one interpreter start fewer than the launcher.
        setpriv = os.path.realpath(setpriv)
        launcher = [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
        preexec = functools.partial(_set_limits, limits)
    else:
        launcher = [exe, "-I", "-S", "-B", "-c", _LAUNCHER]
        launcher += map(str, (uid, limits.memory_mb, limits.cpu, limits.file_mb))
        launcher += [str(limits.max_processes)]
    path_dirs = [os.path.dirname(exe)] + (list(_SYSTEM_BIN) if system_bin else [])
    system: list[str] = []
    for top in _SYSTEM_BIN if system_bin else ():
        if os.path.islink(top):  # merged /usr: /bin -> usr/bin
            system += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            system += ["--ro-bind", top, top]
    environment = {"HOME": chdir, "TMPDIR": "/tmp", "PATH": ":".join(path_dirs)}
    environment |= dict(env or {})
    filter_bytes = seccomp.no_user_namespaces()
    with contextlib.ExitStack() as stack:
        fds: list[int] = []
        if filter_bytes is not None:
            file = stack.enter_context(tempfile.TemporaryFile())
            file.write(filter_bytes)
            file.flush()
            file.seek(0)
            fds.append(file.fileno())
            user += ["--seccomp", str(file.fileno())]
        if uid >= 0 and rw_binds:
            stack.enter_context(_owned_by(list(rw_binds.values()), uid))
        full = [
            bwrap,
            *["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"],
            *["--unshare-cgroup-try", "--hostname", "sandbox", *user],
            *["--die-with-parent", "--new-session"],
            *bubblewrap._filesystem(exe_paths),
            *["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev"],
            *["--perms", "1777", "--size", str(limits.tmp_mb * 1024 * 1024), "--tmpfs", "/tmp"],
            *system,
            *(["--ro-bind", setpriv, setpriv] if setpriv else []),
            *_mount_args(ro_binds, rw_binds),
            *["--chdir", chdir, "--clearenv"],
            *[arg for key, value in environment.items() for arg in ("--setenv", key, value)],
            *launcher,
            *command,
        ]
        done = run_bounded(
            full, limits.wall_seconds, env={}, pass_fds=(*fds, *pass_fds), preexec_fn=preexec
        )
    stdout, stderr = text_tail(done.stdout, tail_chars), text_tail(done.stderr, tail_chars)
    full_err = done.stderr.decode("utf-8", "replace")
    if done.timed_out:
        return JailResult("timeout", None, done.seconds, stdout, stderr, "wall_clock")
    code = done.returncode
    assert code is not None
    signal_number = code - 128 if code > 128 else (-code if code < 0 else None)
    exit_code = None if signal_number is not None else code
    status = classify(signal_number, exit_code, full_err)
    limit = None if status == "passed" else _limit_hit(status, signal_number, full_err)
    return JailResult(status, code, done.seconds, stdout, stderr, limit)
