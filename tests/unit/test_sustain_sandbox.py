"""The code sandbox: generated code runs in a limited child process, never in ours."""

from __future__ import annotations

import os

from posttrain.eval.sustain.sandbox import run_python


def test_correct_solution_passes_and_wrong_one_fails() -> None:
    good = "def add(a, b):\n    return a + b\nassert add(2, 3) == 5\nprint('ok')\n"
    bad = "def add(a, b):\n    return a - b\nassert add(2, 3) == 5\n"
    result = run_python(good)
    assert result.status == "passed" and result.stdout == "ok\n"
    failed = run_python(bad)
    assert failed.status == "failed" and "AssertionError" in failed.stderr


def test_infinite_loop_times_out() -> None:
    result = run_python("while True:\n    pass\n", timeout=1.0)
    assert result.status == "timeout" and not result.passed
    assert result.seconds < 5


def test_cpu_limit_stops_a_busy_child_before_the_wall_clock() -> None:
    result = run_python("while True:\n    pass\n", timeout=10.0, cpu_seconds=1)
    assert result.status == "cpu" and result.seconds < 8


def test_memory_hog_is_stopped() -> None:
    hog = "blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 1024 * 1024))\n"
    result = run_python(hog, timeout=10.0, memory_mb=256)
    assert result.status == "memory"


def test_network_guard_environment_and_directory() -> None:
    probe = (
        "import os, socket\n"
        "try:\n    socket.socket()\nexcept OSError as e:\n    print('blocked:', e)\n"
        "print(sorted(k for k in os.environ if k != 'LC_CTYPE'))\n"
        "open('scratch.txt', 'w').write('x')\nprint(os.getcwd())\n"
    )
    result = run_python(probe)
    lines = result.stdout.splitlines()
    assert result.passed, result.stderr
    assert lines[0].startswith("blocked: network access is disabled")
    assert lines[1] == "[]"
    assert "sustain-sandbox-" in lines[2] and not os.path.exists(lines[2])
    assert not os.path.exists("scratch.txt")
