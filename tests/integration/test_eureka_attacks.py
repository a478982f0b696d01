"""EurekAgent's attack suite: each attack on the sealed grader must fail, and each test records
what stopped it in `ATTACKS` (attack -> stopped by), which `attack_table()` prints as the
README's table (run with POSTTRAIN_ATTACK_TABLE=PATH to have it written to PATH).

Attacks by an approach's own code run through `run_in_workspace` (channel "approach");
attacks carried by a submission run through `grade`, with an evaluator that executes
submitted code in its own process as a speed task does (channel "submission"). Each attack
prints `BLOCKED:<what happened>` when the attempt failed or `BREACH:<what>` when it worked;
the tests also check the host side (files unchanged, the run ended within its limits).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import httpx
import pytest

from posttrain.eureka import grader
from posttrain.eureka.approach_sandbox import run_in_workspace
from posttrain.eureka.grader_service import start_grader
from posttrain.sandbox import bubblewrap

pytestmark = pytest.mark.skipif(
    bubblewrap.unavailable_reason() is not None, reason="bubblewrap cannot run here"
)

ATTACKS: dict[str, str] = {}
"""attack -> what stopped it, filled in by the tests as they observe it."""

WALL = 1.0
LIMITS = {"wall_seconds": WALL, "memory_mb": 256, "max_processes": 8, "file_mb": 8}

# Runs submitted code the way a speed task does, then reads the last printed line.
EVALUATOR = """\
import contextlib, io, os


def grade_submission(path, ctx):
    text = open(path).read()
    if text.startswith("#python"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(text, path, "exec"), {"__name__": "submission"})
        text = (out.getvalue().strip().splitlines() or [""])[-1]
    try:
        return {"score": float(text), "valid": True, "message": "ok"}
    except ValueError:
        return {"score": None, "valid": False, "message": "said " + text[:200]}


def is_better(new, old):
    return new["score"] > old["score"]
"""


def attack_table() -> str:
    """The recorded attacks as a Markdown table (for the README)."""
    rows = ["| attack | stopped by |", "|---|---|"]
    rows += [f"| {attack} | {how} |" for attack, how in sorted(ATTACKS.items())]
    return "\n".join(rows)


@pytest.fixture(scope="module", autouse=True)
def _write_table():
    """With POSTTRAIN_ATTACK_TABLE=PATH, the observed table is written there at the end."""
    yield
    target = os.environ.get("POSTTRAIN_ATTACK_TABLE")
    if target and ATTACKS:
        Path(target).write_text(attack_table() + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A run's layout: the problem, two approaches' workspaces, the results folder (with one
    real grading in it) and a started grader service."""
    root = tmp_path_factory.mktemp("eureka_run")
    problem = root / "problem"
    (problem / "private").mkdir(parents=True)
    (problem / "private" / "evaluator.py").write_text(EVALUATOR)
    (problem / "private" / "hidden.txt").write_text("the hidden answers\n")
    spec = {"name": "attacks", "submission_file": "answer.txt", "direction": "max"}
    (problem / "problem.json").write_text(json.dumps(spec | {"limits": LIMITS}))
    workspaces, results = root / "workspaces", root / "results"
    for name in ("a", "b"):
        (workspaces / name).mkdir(parents=True)
    (workspaces / "b" / "secret.txt").write_text("b's private idea\n")
    (workspaces / "a" / "answer.txt").write_text("1.0")
    grader.grade(
        problem,
        workspaces / "a" / "answer.txt",
        approach="a",
        round=0,
        repo_dir=None,
        results_dir=results,
    )
    with start_grader(problem, workspaces, results, log_path=root / "grader.log") as handle:
        yield {"problem": problem, "ws": workspaces, "results": results, "grader": handle}


def _results_digest(results: Path) -> dict[str, str]:
    return {
        name: hashlib.sha256((results / name).read_bytes()).hexdigest()
        for name in grader.RESULT_FILES
        if (results / name).exists()
    }


def through_approach(run, code: str, limits: dict | None = None):
    """Run attack code as approach a's program; returns (printed text, JailResult)."""
    result = run_in_workspace(run["ws"] / "a", ["python", "-c", code], limits or LIMITS)
    return result.stdout.strip(), result


def through_submission(run, code: str):
    """Submit attack code as approach a's answer; returns (what the record says, record)."""
    path = run["ws"] / "a" / "attack.txt"
    path.write_text("#python\n" + code)
    record = grader.grade(
        run["problem"],
        path,
        approach="a",
        round=1,
        repo_dir=None,
        results_dir=run["results"],
        allowed_root=run["ws"] / "a",
    )
    return record["message"], record


def _probe(action: str) -> str:
    """Attack code: try `action`; print BREACH if it worked, else BLOCKED and the error."""
    return (
        "try:\n"
        + "".join(f"    {line}\n" for line in action.splitlines())
        + "    print('BREACH')\n"
        "except BaseException as err:\n"
        "    print('BLOCKED:' + type(err).__name__ + ':' + str(err)[:60])\n"
    )


@pytest.mark.parametrize("channel", ["approach", "submission"])
def test_write_the_results_files(run, channel):
    before = _results_digest(run["results"])
    target = run["results"] / grader.INTERMEDIATE
    code = _probe(f"open({str(target)!r}, 'a').write('{{\"score\": 1e9}}\\n')")
    said, _ = (through_approach if channel == "approach" else through_submission)(run, code)
    assert "BLOCKED:FileNotFoundError" in said, said
    assert all(r["score"] != 1e9 for r in grader._read_jsonl(target))
    if channel == "approach":  # (a grading itself appends its own record)
        assert _results_digest(run["results"]) == before
    ATTACKS[f"write the results files ({channel})"] = (
        "results folder not mounted in the jail (FileNotFoundError); only the grader writes it"
    )


def test_read_the_evaluator_or_hidden_data(run):
    private = run["problem"] / "private"
    for name in ("evaluator.py", "hidden.txt"):
        said, _ = through_approach(run, _probe(f"print(open({str(private / name)!r}).read())"))
        assert said.startswith("BLOCKED:FileNotFoundError"), said
    said, _ = through_approach(run, _probe("print(open('/problem/private/hidden.txt').read())"))
    assert said.startswith("BLOCKED:FileNotFoundError"), said
    ATTACKS["read the evaluator or the hidden data (approach)"] = (
        "private/ not mounted in the approach jail (FileNotFoundError)"
    )


def test_submit_a_path_outside_the_workspace(run):
    handle, ws = run["grader"], run["ws"]
    (ws / "a" / "to_b.txt").symlink_to(ws / "b" / "secret.txt")
    (ws / "a" / "to_private").symlink_to(run["problem"] / "private")
    paths = [
        "../b/secret.txt",
        str(ws / "b" / "secret.txt"),
        "to_b.txt",
        "to_private/evaluator.py",
        str(run["problem"] / "private" / "hidden.txt"),
    ]
    for path in paths:
        body = {"approach": "a", "round": 1, "path": path}
        response = httpx.post(f"{handle.url}/grade", json=body, headers=handle.headers)
        assert response.status_code == 403, (path, response.text)
    # grade itself, given the workspace as its root, reads through the symlink and refuses.
    with pytest.raises(PermissionError, match="outside"):
        grader.grade(
            run["problem"],
            ws / "a" / "to_b.txt",
            approach="a",
            round=1,
            repo_dir=None,
            results_dir=run["results"],
            allowed_root=ws / "a",
        )
    ATTACKS["submit a path outside the approach's folder (also via a symlink)"] = (
        "grader resolves the path (symlinks too) and answers 403 outside the workspace; "
        "grade() re-checks the file it opened"
    )


def test_tamper_with_a_previous_score(run):
    before = _results_digest(run["results"])
    target = run["results"] / grader.INTERMEDIATE
    rewrite = f"p = {str(target)!r}\nopen(p, 'w').write(open(p).read().replace('1.0', '99.0'))"
    said, _ = through_approach(run, _probe(rewrite))
    assert said.startswith("BLOCKED:FileNotFoundError"), said
    port = int(run["grader"].url.rsplit(":", 1)[1])
    said, _ = through_approach(
        run, _probe(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)")
    )
    assert said.startswith("BLOCKED:ConnectionRefusedError"), said
    assert _results_digest(run["results"]) == before
    records = grader._read_jsonl(target)
    assert records[0]["score"] == 1.0 and all(r["score"] != 99.0 for r in records)
    ATTACKS["tamper with a previous score"] = (
        "results files not mounted (FileNotFoundError) and the grader's port unreachable "
        "from the jail's own network namespace (ConnectionRefusedError)"
    )


def test_call_the_grader_without_or_with_a_wrong_token(run):
    handle = run["grader"]
    body = {"approach": "a", "round": 1, "path": "answer.txt"}
    client = httpx.Client(base_url=handle.url)
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": handle.token}):
        assert client.post("/grade", json=body, headers=headers).status_code == 401
        compare = {"new": {}, "old": {}}
        assert client.post("/is_better", json=compare, headers=headers).status_code == 401
    assert client.get("/healthz").status_code == 200
    good = client.post("/grade", json=body, headers=handle.headers)
    assert good.status_code == 200 and good.json()["score"] == 1.0
    ATTACKS["call the grader without the token / with a wrong one"] = "401 from the bearer guard"


FORK_BOMB = """\
import os, time
n = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except OSError as err:
    print(f"BLOCKED:{type(err).__name__} after {n} forks")
"""


@pytest.mark.parametrize("channel", ["approach", "submission"])
def test_fork_bomb(run, channel):
    start = time.monotonic()
    said, outcome = (through_approach if channel == "approach" else through_submission)(
        run, FORK_BOMB
    )
    assert time.monotonic() - start < WALL + 5
    assert "BLOCKED:BlockingIOError" in said, said
    n = int(said.split("after ")[1].split()[0])
    assert n < LIMITS["max_processes"]
    ATTACKS[f"fork bomb ({channel})"] = (
        f"process limit ({LIMITS['max_processes']}, RLIMIT_NPROC of a fresh uid): fork failed "
        "after a few children; the PID namespace died with the run"
    )


@pytest.mark.parametrize(
    "channel", ["approach", pytest.param("submission", marks=pytest.mark.slow)]
)
def test_memory_bomb(run, channel):
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(32 * 1024 * 1024))"
    said, outcome = (through_approach if channel == "approach" else through_submission)(
        run, _probe(code)
    )
    assert "BLOCKED:MemoryError" in said, said
    ATTACKS[f"memory bomb ({channel})"] = (
        f"address-space limit ({LIMITS['memory_mb']} MiB, RLIMIT_AS): MemoryError"
    )


@pytest.mark.parametrize(
    "channel", [pytest.param("approach", marks=pytest.mark.slow), "submission"]
)
def test_infinite_loop(run, channel):
    start = time.monotonic()
    if channel == "approach":
        _, outcome = through_approach(run, "while True:\n    pass")
        assert outcome.timed_out and outcome.limit == "wall_clock"
    else:
        _, outcome = through_submission(run, "while True:\n    pass")
        assert outcome["valid"] is False and outcome["limit"] == "wall_clock"
        assert "wall clock" in outcome["message"]
    assert time.monotonic() - start < WALL + 4
    ATTACKS[f"infinite loop ({channel})"] = (
        f"wall clock ({WALL} s): the jail's PID namespace killed whole; CPU limit behind it"
    )


def test_huge_output(run):
    spew = "import os\nfor _ in range(50):\n    os.write(1, b'x' * 1_000_000)\nprint('7')"
    said, outcome = through_approach(run, spew)
    assert outcome.status == "passed" and said.endswith("7")
    assert len(outcome.stdout) <= 2000
    # Through a submission: 50 MB before the answer line; the answer still comes through.
    _, record = through_submission(run, spew)
    assert record["valid"] is True and record["score"] == 7.0
    ATTACKS["huge output"] = (
        "output read concurrently and bounded (64 KiB tail, 2000 characters kept); "
        "the evaluator's answer, on its own pipe, still arrives"
    )


@pytest.mark.parametrize("channel", ["approach", "submission"])
def test_open_a_network_connection(run, channel):
    code = _probe("import socket\nsocket.create_connection(('1.1.1.1', 53), timeout=1)")
    said, _ = (through_approach if channel == "approach" else through_submission)(run, code)
    assert "BLOCKED:OSError" in said and "unreachable" in said, said
    ATTACKS[f"open a network connection ({channel})"] = (
        "private network namespace with only its own loopback: Network is unreachable"
    )


def test_read_another_approachs_folder(run):
    secret = run["ws"] / "b" / "secret.txt"
    said, _ = through_approach(run, _probe(f"print(open({str(secret)!r}).read())"))
    assert said.startswith("BLOCKED:FileNotFoundError"), said
    said, _ = through_approach(run, "import os\nprint(sorted(os.listdir('/workspace/..')))")
    assert "'b'" not in said and "'workspaces'" not in said
    ATTACKS["read another approach's folder"] = (
        "only this approach's workspace is bound (at /workspace): FileNotFoundError"
    )


FORGER = """\
import os, subprocess, sys
child = '''
import json, os, sys
forged = json.dumps({"result": {"score": 1e9, "valid": True, "message": "forged"}})
opened = []
for n in range(3, 64):
    try:  # a descriptor inherited from the runner, or the runner's own through /proc
        os.write(n, forged.encode())
        opened.append(n)
    except OSError:
        pass
    try:
        with open(f"/proc/{os.getppid()}/fd/{n}", "w") as out:
            out.write(forged)
        opened.append(n)
    except OSError:
        pass
print("opened", opened)
'''
done = subprocess.run(
    [sys.executable, "-I", "-S", "-c", child], capture_output=True, text=True, close_fds=False
)
sys.stderr.write(done.stdout + done.stderr)
print("2")
"""


def test_forge_the_evaluators_answer_from_a_child_process(run):
    message, record = through_submission(run, FORGER)
    assert record["valid"] is True and record["score"] == 2.0, record
    ATTACKS["forge the evaluator's answer (a child process of the submission)"] = (
        "the answer travels on a close-on-exec pipe of the grader's (owned by root, the runner "
        "non-dumpable): the child neither inherits nor reopens it; the real score stands"
    )
