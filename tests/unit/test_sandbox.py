"""The sandbox API: both backends grade, time out and limit alike; the choice of backend is
explicit, warned about when it falls back, and recorded in every result."""

from __future__ import annotations

import errno
import os
import time
import uuid
from pathlib import Path

import pytest

import posttrain.sandbox as sandbox
from posttrain.sandbox import bubblewrap, fallback, run_python, seccomp


@pytest.fixture(params=[bubblewrap.NAME, fallback.NAME])
def backend(request) -> str:
    reason = bubblewrap.unavailable_reason() if request.param == bubblewrap.NAME else None
    if reason:  # `make test` installs bubblewrap; without it the jail is untested, not fine
        pytest.fail(f"the bubblewrap backend cannot run: {reason} (see the Makefile)")
    return request.param


def test_correct_solution_passes_and_wrong_one_fails(backend) -> None:
    good = "def add(a, b):\n    return a + b\nassert add(2, 3) == 5\nprint('ok')\n"
    bad = "def add(a, b):\n    return a - b\nassert add(2, 3) == 5\n"
    result = run_python(good, backend=backend)
    assert result.status == "passed" and result.stdout == "ok\n"
    assert result.sandbox == backend and result.to_dict()["sandbox"] == backend
    failed = run_python(bad, backend=backend)
    assert failed.status == "failed" and "AssertionError" in failed.stderr


def test_infinite_loop_times_out(backend) -> None:
    result = run_python("while True:\n    pass\n", timeout=1.0, backend=backend)
    assert result.status == "timeout" and not result.passed and result.returncode is None
    assert result.seconds < 5


def test_cpu_limit_stops_a_busy_child_before_the_wall_clock(backend) -> None:
    result = run_python("while True:\n    pass\n", timeout=10.0, cpu_seconds=1, backend=backend)
    assert result.status == "cpu" and result.seconds < 8


def test_memory_hog_is_stopped(backend) -> None:
    hog = "blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 1024 * 1024))\n"
    result = run_python(hog, timeout=10.0, memory_mb=256, backend=backend)
    assert result.status == "memory"


def test_empty_environment_and_a_fresh_directory(backend) -> None:
    probe = (
        "import os\n"
        "print(sorted(k for k in os.environ if k not in ('LC_CTYPE', 'PWD', 'HOME', 'TMPDIR', "
        "'PATH')))\n"
        "open('scratch.txt', 'w').write('x')\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))\n"
    )
    result = run_python(probe, backend=backend)
    lines = result.stdout.splitlines()
    assert result.passed, result.stderr
    assert lines[0] == "[]"
    assert lines[2] == "['program.py', 'scratch.txt']"
    if backend == fallback.NAME:  # a host temporary directory, removed afterwards
        assert "posttrain-sandbox-" in lines[1] and not os.path.exists(lines[1])
    else:  # the sandbox's own tmpfs
        assert lines[1] == bubblewrap.WORKDIR
    assert not os.path.exists("scratch.txt")


def test_fallback_socket_guard_stops_ordinary_network_use() -> None:
    probe = "import socket\ntry:\n    socket.socket()\nexcept OSError as e:\n    print(e)\n"
    result = run_python(probe, backend=fallback.NAME)
    assert result.stdout.startswith("network access is disabled"), result.stderr


def test_fallback_does_not_stall_on_a_child_that_left_the_session() -> None:
    # The old sandbox waited forever for pipes that an escaped child held open. The child does
    # escape the fallback (it is no jail): it sleeps briefly and is then ended here.
    marker = f"posttrain-fallback-escape-{uuid.uuid4().hex}"
    source = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        f"    os.execv(sys.executable, [sys.executable, '-c', 'import time; time.sleep(8)', "
        f"{marker!r}])\n"
        "time.sleep(30)\n"
    )
    start = time.perf_counter()
    result = run_python(source, timeout=1.0, backend=fallback.NAME)
    assert result.status == "timeout" and time.perf_counter() - start < 5
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(int(pid), 9)
        except OSError:
            continue


def test_backend_choice_is_explicit_and_checked(monkeypatch) -> None:
    with pytest.raises(ValueError, match="'docker'.*auto, bubblewrap, subprocess-fallback"):
        run_python("pass", backend="docker")
    monkeypatch.setenv(sandbox.ENV_VAR, "chroot")
    with pytest.raises(ValueError, match="POSTTRAIN_SANDBOX 'chroot'"):
        run_python("pass")
    monkeypatch.setenv(sandbox.ENV_VAR, fallback.NAME)
    assert run_python("pass").sandbox == fallback.NAME
    with pytest.raises(ValueError, match="timeout must be positive"):
        run_python("pass", timeout=0)
    with pytest.raises(ValueError, match="max_processes must be >= 1"):
        run_python("pass", max_processes=0)


def test_without_bubblewrap_auto_falls_back_with_a_warning_and_says_why(monkeypatch) -> None:
    monkeypatch.delenv(sandbox.ENV_VAR, raising=False)
    monkeypatch.setattr(bubblewrap, "unavailable_reason", lambda: "bwrap is not installed")
    monkeypatch.setattr(sandbox, "_warned", set())
    with pytest.warns(RuntimeWarning, match="not a jail: bwrap is not installed"):
        result = run_python("print(1)")
    assert result.sandbox == fallback.NAME and result.passed
    described = sandbox.describe()
    assert described["backend"] == fallback.NAME and described["why"] == "bwrap is not installed"
    assert "none" in described["isolation"]
    with pytest.raises(RuntimeError, match="asked for but cannot run: bwrap is not installed"):
        run_python("print(1)", backend=bubblewrap.NAME)


def test_interpreter_view_is_the_base_install_not_the_venv_or_repository() -> None:
    exe, paths = bubblewrap.interpreter()
    assert os.path.isfile(exe) and exe in paths
    repo = Path(sandbox.__file__).resolve().parents[3]
    assert not [p for p in paths if Path(p).is_relative_to(repo)]
    assert any(Path(p, "os.py").exists() for p in paths)  # the standard library


def test_seccomp_filter_is_whole_bpf_for_known_machines_only() -> None:
    for machine in ("x86_64", "aarch64"):
        program = seccomp.no_user_namespaces(machine)
        assert program and len(program) % 8 == 0  # struct sock_filter is 8 bytes
        # The last two instructions return EPERM and ENOSYS (seccomp's ERRNO action).
        assert program[-16:-8].endswith((0x00050000 | errno.EPERM).to_bytes(4, "little"))
        assert program[-8:].endswith((0x00050000 | errno.ENOSYS).to_bytes(4, "little"))
    assert seccomp.no_user_namespaces("riscv64") is None
