"""Adversarial programs against the bubblewrap sandbox: every attack must be stopped.

The attacks are those that got through the old subprocess sandbox (secret file read, write
outside the working directory, the host's 127.0.0.1 reached through `_socket`, unbounded
forking as root, a per-file limit beaten by several files, a `setsid()` child surviving the
kill and stalling the evaluator) and more: plain sockets and abstract Unix sockets, a real
fork bomb, a symlink and `..` escape, the repository and $HOME, /etc, the environment, an
output flood. Each test runs the attack for real and checks the host afterwards, not only what
the program says. The subprocess fallback is not a jail and is not run against these.
"""

from __future__ import annotations

import os
import socket
import time
import tracemalloc
import uuid
from pathlib import Path

import pytest

import posttrain
from posttrain.sandbox import bubblewrap, run_python
from posttrain.sandbox.result import TAIL_CHARS

REPO = Path(posttrain.__file__).resolve().parents[2]
SLEEPER = "import time; time.sleep(60)"


@pytest.fixture(scope="module", autouse=True)
def _bubblewrap_runs() -> None:
    reason = bubblewrap.unavailable_reason()
    if reason:  # `make test` installs bubblewrap; without it the jail is untested, not fine
        pytest.fail(f"the sandbox attacks need bubblewrap, but {reason} (see the Makefile)")


def jailed(source: str, **limits):  # noqa: ANN201
    """Run in bubblewrap; the evaluator must get control back within the timeout + grace."""
    timeout = limits.pop("timeout", 5.0)
    start = time.perf_counter()
    result = run_python(source, timeout=timeout, backend="bubblewrap", **limits)
    assert time.perf_counter() - start < timeout + 4, "the evaluator was stalled"
    assert result.sandbox == "bubblewrap"
    return result


def _try_each(paths: list[str], action: str) -> str:
    """Program text: attempt `action` (an expression of `p`) on each path, print the outcome."""
    return (
        f"for p in {paths!r}:\n"
        "    try:\n"
        f"        got = {action}\n"
        "        print('GOT', p, repr(got)[:200])\n"
        "    except OSError as e:\n"
        "        print('DENIED', p, type(e).__name__)\n"
    )


def _outcomes(stdout: str) -> dict[str, str]:
    return {
        line.split()[1]: line.split()[0]
        for line in stdout.splitlines()
        if line.startswith(("GOT ", "DENIED "))
    }


def _host_processes_with(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            continue
    return found


def test_a_secret_file_outside_the_workdir_cannot_be_read(tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    token = uuid.uuid4().hex
    secret.write_text(token)
    result = jailed(
        _try_each(
            [str(secret), str(tmp_path)],
            "open(p).read() if p.endswith('.txt') else __import__('os').listdir(p)",
        )
    )
    assert result.passed, result.stderr
    assert token not in result.stdout
    assert set(_outcomes(result.stdout).values()) == {"DENIED"}


def test_etc_and_host_secrets_are_not_there() -> None:
    paths = [
        "/etc/shadow",
        "/etc/passwd",
        "/etc/hostname",
        "/proc/1/root/etc/shadow",
        "/root/.ssh/id_rsa",
    ]
    result = jailed(_try_each(paths, "open(p).read()"))
    assert result.passed, result.stderr
    assert _outcomes(result.stdout) == dict.fromkeys(paths, "DENIED")


def test_the_repository_and_home_are_not_visible() -> None:
    home = Path.home()
    # Files the evaluating user has in $HOME (none of them part of the interpreter).
    home_files = sorted(str(p) for p in home.iterdir() if p.is_file())[:5]
    repo_files = [str(REPO / "pyproject.toml"), str(REPO / "Makefile"), posttrain.__file__]
    result = jailed(
        _try_each(repo_files + home_files, "open(p).read()")
        + f"import os\nprint('REPO', os.path.exists({str(REPO)!r}))\n"
        + f"home = {str(home)!r}\n"
        + "print('HOME', sorted(os.listdir(home)) if os.path.isdir(home) else [])\n"
    )
    assert result.passed, result.stderr
    assert _outcomes(result.stdout) == dict.fromkeys(repo_files + home_files, "DENIED")
    assert "REPO False" in result.stdout
    seen = eval(result.stdout.split("HOME ", 1)[1].splitlines()[0])  # a printed list of names
    # Only the way to the interpreter may show in $HOME (e.g. .pyenv), nothing else of it.
    _, interpreter_paths = bubblewrap.interpreter()
    allowed = {
        Path(p).relative_to(home).parts[0]
        for p in interpreter_paths
        if Path(p).is_relative_to(home)
    }
    assert set(seen) <= allowed


def test_nothing_can_be_written_outside_the_workdir(tmp_path) -> None:
    name = f"escape-{uuid.uuid4().hex}"
    targets = [
        str(tmp_path / name),
        f"/tmp/{name}",
        f"/{name}",
        str(REPO / name),
        f"/usr/lib/{name}",
        f"/dev/{name}",
        f"/dev/shm/{name}",
        f"/proc/{name}",
    ]
    result = jailed(
        _try_each(targets, "open(p, 'w').write('x')")
        + "open('inside.txt', 'w').write('ok')\nprint('INSIDE ok')\n"
    )
    assert result.passed, result.stderr
    assert _outcomes(result.stdout) == dict.fromkeys(targets, "DENIED")
    assert "INSIDE ok" in result.stdout  # the working directory itself is writable
    assert not [t for t in targets if os.path.exists(t)]


@pytest.fixture
def listener():  # noqa: ANN201
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.3)
    yield server
    server.close()


def _no_connection_arrived(server: socket.socket) -> bool:
    try:
        conn, _ = server.accept()
    except TimeoutError:
        return True
    conn.close()
    return False


@pytest.mark.parametrize("module", ["socket", "_socket"])
def test_the_hosts_loopback_listener_is_unreachable(listener, module) -> None:
    port = listener.getsockname()[1]
    result = jailed(
        f"import {module} as s\n"
        "try:\n"
        "    c = s.socket(s.AF_INET, s.SOCK_STREAM)\n"
        "    c.settimeout(1)\n"
        f"    c.connect(('127.0.0.1', {port}))\n"
        "    c.sendall(b'stolen')\n"
        "    print('CONNECTED')\n"
        "except OSError as e:\n"
        "    print('BLOCKED', type(e).__name__)\n"
    )
    assert result.passed, result.stderr
    assert "BLOCKED" in result.stdout and "CONNECTED" not in result.stdout
    assert _no_connection_arrived(listener)


def test_host_abstract_unix_sockets_are_unreachable() -> None:
    name = f"\0posttrain-sandbox-test-{uuid.uuid4().hex}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(name)
    server.listen(1)
    server.settimeout(0.3)
    try:
        result = jailed(
            "import socket\n"
            "c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
            f"try:\n    c.connect({name!r})\n    print('CONNECTED')\n"
            "except OSError as e:\n    print('BLOCKED', type(e).__name__)\n"
        )
        assert result.passed, result.stderr
        assert "BLOCKED" in result.stdout and _no_connection_arrived(server)
    finally:
        server.close()


def test_processes_and_threads_stop_at_the_limit() -> None:
    limit = 8
    result = jailed(
        "import os, threading, time\n"
        "children = 0\n"
        "try:\n"
        "    while children < 100:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "        children += 1\n"
        "except OSError as e:\n"
        "    print('FORK REFUSED after', children, type(e).__name__)\n"
        "stop = threading.Event()\n"
        "threads = 0\n"
        "try:\n"
        "    while threads < 100:\n"
        "        threading.Thread(target=stop.wait, daemon=True).start()\n"
        "        threads += 1\n"
        "except RuntimeError:\n"
        "    print('THREAD REFUSED after', threads)\n",
        max_processes=limit,
    )
    assert result.passed, result.stderr
    forks = int(result.stdout.split("FORK REFUSED after ")[1].split()[0])
    # The program itself is one of `limit`; run without root, bubblewrap's init in the user
    # namespace is one more.
    assert limit - 2 <= forks <= limit - 1
    assert "THREAD REFUSED after 0" in result.stdout  # the sleeping children hold every slot


def test_a_real_fork_bomb_is_bounded_and_ends_at_the_timeout() -> None:
    limit = 12
    result = jailed(
        "import os, time\n"
        # A watcher counts the namespace's processes (bwrap's init is /proc/1) as they grow.
        "if os.fork() == 0:\n"
        "    peak = 0\n"
        "    while True:\n"
        "        n = sum(d.isdigit() for d in os.listdir('/proc'))\n"
        "        if n > peak:\n"
        "            peak = n\n"
        "            print('PEAK', peak, flush=True)\n"
        "        time.sleep(0.005)\n"
        "time.sleep(0.2)\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        pass\n",
        timeout=2.5,
        max_processes=limit,
    )
    assert result.status == "timeout"
    peaks = [int(line.split()[1]) for line in result.stdout.splitlines() if line.startswith("PEAK")]
    assert peaks and limit <= max(peaks) <= limit + 1  # it reached the limit, not beyond (+ init)


def test_the_disk_quota_holds_across_files() -> None:
    result = jailed(
        "import os\n"
        "total = 0\n"
        "for i in range(3):\n"
        "    with open(f'big{i}.bin', 'wb', buffering=0) as f:\n"
        "        try:\n"
        "            for _ in range(15):\n"
        "                f.write(b'x' * 2**20)\n"
        "        except OSError as e:\n"
        "            print('REFUSED', i, e.errno)\n"
        "total = sum(os.path.getsize(f'big{i}.bin') for i in range(3))\n"
        "print('TOTAL', total)\n",
        disk_mb=16,
    )
    total = int(result.stdout.split("TOTAL ")[1].split()[0])
    assert total <= 16 * 2**20 and "REFUSED" in result.stdout, result.stdout + result.stderr


def test_no_private_tmpfs_beyond_the_quota_through_a_new_user_namespace() -> None:
    # Root in a user namespace of its own could mount a tmpfs (memory outside the quota).
    result = jailed(
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "os.mkdir('mnt')\n"
        "CLONE_NEWUSER, CLONE_NEWNS = 0x10000000, 0x00020000\n"
        "if libc.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:\n"
        "    print('REFUSED', os.strerror(ctypes.get_errno()))\n"
        "elif libc.mount(b'none', os.path.abspath('mnt').encode(), b'tmpfs', 0, None) == 0:\n"
        "    open('mnt/big', 'wb').write(b'x' * 40 * 2**20)\n"
        "    print('MOUNTED', os.path.getsize('mnt/big'))\n",
        disk_mb=16,
    )
    assert result.passed, result.stderr
    assert "REFUSED" in result.stdout and "MOUNTED" not in result.stdout


def test_a_setsid_child_dies_with_the_sandbox_and_does_not_stall_us() -> None:
    marker = f"posttrain-escape-{uuid.uuid4().hex}"
    result = jailed(
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:  # double fork: reparented, in a session of its own\n"
        f"        os.execv(sys.executable, [sys.executable, '-c', {SLEEPER!r}, {marker!r}])\n"
        "    os._exit(0)\n"
        "time.sleep(60)\n",
        timeout=1.5,
    )
    assert result.status == "timeout"
    deadline = time.monotonic() + 3
    while _host_processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _host_processes_with(marker) == []


def test_a_program_that_exits_leaves_nothing_running() -> None:
    marker = f"posttrain-orphan-{uuid.uuid4().hex}"
    result = jailed(
        "import os, sys\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        f"    os.execv(sys.executable, [sys.executable, '-c', {SLEEPER!r}, {marker!r}])\n"
        "print('parent exits')\n"
    )
    assert result.passed, result.stderr
    deadline = time.monotonic() + 3
    while _host_processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _host_processes_with(marker) == []


def test_symlinks_and_dotdot_do_not_leave_the_workdir(tmp_path) -> None:
    secret = tmp_path / "secret.txt"
    token = uuid.uuid4().hex
    secret.write_text(token)
    result = jailed(
        "import os\n"
        f"os.symlink({str(secret)!r}, 'to_secret')\n"
        "os.symlink('/', 'to_root')\n"
        + _try_each(
            [
                "to_secret",
                f"to_root{secret}",
                "../" * 12 + str(secret).lstrip("/"),
                f"/proc/self/cwd/../../..{secret}",
                f"/proc/1/cwd{secret}",
            ],
            "open(p).read()",
        )
    )
    assert result.passed, result.stderr
    assert token not in result.stdout
    assert set(_outcomes(result.stdout).values()) == {"DENIED"}


def test_the_environment_does_not_leak(monkeypatch) -> None:
    token = uuid.uuid4().hex
    monkeypatch.setenv("POSTTRAIN_SANDBOX_TEST_SECRET", token)
    result = jailed(
        "import os\n"
        "print('ENV', sorted(os.environ))\n"
        + _try_each(
            ["/proc/self/environ", "/proc/1/environ", f"/proc/{os.getpid()}/environ"],
            "open(p, 'rb').read()",
        )
    )
    assert result.passed, result.stderr
    assert token not in result.stdout
    names = eval(result.stdout.split("ENV ", 1)[1].splitlines()[0])  # a printed list of names
    assert set(names) <= {"HOME", "TMPDIR", "PATH", "PWD", "LC_CTYPE"}


def test_an_output_flood_is_cut_to_a_tail_without_filling_our_memory() -> None:
    tracemalloc.start()
    try:
        result = jailed(
            "import sys\nblock = 'x' * 2**20\nfor _ in range(200):\n    sys.stdout.write(block)\n"
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.passed, result.stderr
    assert len(result.stdout) == TAIL_CHARS
    assert peak < 8 * 2**20  # 200 MiB went through; we held at most a few chunks


def test_ordinary_humaneval_style_code_still_passes() -> None:
    solution = (
        "from typing import List\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "import math, re, tempfile\n\n"
        "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
        "    pairs = ((a, b) for i, a in enumerate(numbers) for b in numbers[i + 1 :])\n"
        "    return any(abs(a - b) < threshold for a, b in pairs)\n\n"
        "def check(candidate):\n"
        "    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) is True\n"
        "    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.95) is True\n"
        "    assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 0.5) is False\n"
        "    with ThreadPoolExecutor(4) as pool:\n"
        "        assert list(pool.map(math.isqrt, [4, 9, 16])) == [2, 3, 4]\n"
        "    with tempfile.TemporaryFile() as f:\n"
        "        f.write(b'scratch')\n"
        "    assert re.fullmatch(r'\\d+', '123')\n\n"
        "check(has_close_elements)\n"
        "print('all tests passed')\n"
    )
    result = jailed(solution)
    assert result.passed and result.stdout == "all tests passed\n", result.stderr
    failed = jailed(solution.replace("< threshold", "> threshold"))
    assert failed.status == "failed" and "AssertionError" in failed.stderr
