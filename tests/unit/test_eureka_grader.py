"""The sealed grader: jailed evaluation, the results files, the token-guarded service app, and
the approach jail's view. Attacks are in tests/integration/test_eureka_attacks.py."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from posttrain.errors import InputError
from posttrain.eureka import approach_sandbox, grader
from posttrain.eureka.grader_service import create_app
from posttrain.sandbox import bubblewrap, mounts

pytestmark = pytest.mark.skipif(
    bubblewrap.unavailable_reason() is not None, reason="bubblewrap cannot run here"
)

# A number file; valid in [0, hidden cap]; the evaluator reads the cap relative to its own
# file (as the contract asks) and the private dir from ctx, and reports what it saw.
EVALUATOR = """\
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def grade_submission(path, ctx):
    cap = float(open(os.path.join(HERE, "cap.txt")).read())
    text = open(path).read()
    if text.strip() == "crash":
        raise RuntimeError("evaluator blew up on purpose")
    x = float(text)
    if not 0 <= x <= cap:
        return {"score": x, "valid": False, "message": f"{x} is out of range"}
    return {"score": x, "valid": True, "message": "ok", "seen": [path, ctx["private_dir"]]}


def is_better(new, old):
    return new["score"] > old["score"]
"""


def make_problem(root: Path, limits: dict | None = None) -> Path:
    problem = root / "problem"
    (problem / "private").mkdir(parents=True)
    (problem / "private" / "evaluator.py").write_text(EVALUATOR)
    (problem / "private" / "cap.txt").write_text("10\n")
    spec = {"name": "tiny", "submission_file": "answer.txt", "direction": "max"}
    spec["limits"] = limits or {"wall_seconds": 5, "memory_mb": 512, "max_processes": 8}
    (problem / "problem.json").write_text(json.dumps(spec))
    return problem


def submit(tmp_path: Path, text: str, name: str = "x.txt") -> Path:
    path = tmp_path / "subs" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_grade_records_and_best_tracking(tmp_path):
    problem, results = make_problem(tmp_path), tmp_path / "results"
    first = grader.grade(
        problem, submit(tmp_path, "3.5"), approach="a", round=0, repo_dir=None, results_dir=results
    )
    assert first["valid"] is True and first["score"] == 3.5 and first["better"] is True
    # The evaluator ran in the jail: the submission copy and private/ at their fixed paths.
    assert first["details"]["seen"] == ["/submission/answer.txt", "/problem/private"]
    assert first["sha256"] == hashlib.sha256(b"3.5").hexdigest()
    assert first["git_hash"] is None and first["dirty"] is None and first["seconds"] > 0
    assert set(first) >= {"time", "approach", "round", "message"}

    worse = grader.grade(
        problem, submit(tmp_path, "2"), approach="b", round=1, repo_dir=None, results_dir=results
    )
    bad = grader.grade(
        problem, submit(tmp_path, "11"), approach="b", round=1, repo_dir=None, results_dir=results
    )
    best = grader.grade(
        problem, submit(tmp_path, "9"), approach="c", round=1, repo_dir=None, results_dir=results
    )
    assert (worse["better"], bad["valid"], bad["better"], best["better"]) == (
        False,
        False,
        False,
        True,
    )
    assert bad["message"] == "11.0 is out of range"
    assert [r["score"] for r in lines(results / grader.INTERMEDIATE)] == [3.5, 2.0, 11.0, 9.0]
    assert [r["score"] for r in lines(results / grader.BEST)] == [3.5, 9.0]
    assert json.loads((results / grader.LATEST).read_text()) == best
    assert grader.current_best(results) == best


def test_concurrent_gradings_keep_best_increasing(tmp_path):
    problem, results = make_problem(tmp_path), tmp_path / "results"
    scores = [1, 4, 2, 3, 5, 0]

    def one(i: int) -> dict:
        path = submit(tmp_path, str(scores[i]), name=f"{i}.txt")
        return grader.grade(
            problem, path, approach=f"a{i}", round=0, repo_dir=None, results_dir=results
        )

    with ThreadPoolExecutor(3) as pool:
        records = list(pool.map(one, range(len(scores))))
    best = [r["score"] for r in lines(results / grader.BEST)]
    assert best == sorted(best) and len(set(best)) == len(best) and best[-1] == 5.0
    assert sorted(r["score"] for r in lines(results / grader.INTERMEDIATE)) == sorted(scores)
    assert sum(r["better"] for r in records) == len(best)


def test_crash_and_git_state(tmp_path):
    problem, results = make_problem(tmp_path), tmp_path / "results"
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "solve.py").write_text("print(1)\n")
    subprocess.run([*git, "add", "solve.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "[v1] start"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    record = grader.grade(
        problem,
        submit(tmp_path, "crash"),
        approach="a",
        round=0,
        repo_dir=repo,
        results_dir=results,
    )
    assert record["valid"] is False and record["score"] is None
    assert "evaluator blew up on purpose" in record["message"]
    assert record["git_hash"] == head.strip() and record["dirty"] is False
    (repo / "solve.py").write_text("print(2)\n")
    again = grader.grade(
        problem, submit(tmp_path, "1"), approach="a", round=0, repo_dir=repo, results_dir=results
    )
    assert again["dirty"] is True and again["valid"] is True


def test_is_better_runs_the_evaluators_rule(tmp_path):
    problem = make_problem(tmp_path)
    assert grader.is_better(problem, {"score": 2.0}, {"score": 1.0}) is True
    assert grader.is_better(problem, {"score": 1.0}, {"score": 2.0}) is False
    with pytest.raises(grader.GraderError, match="is_better could not be evaluated"):
        grader.is_better(problem, {"no_score": 1}, {"score": 2.0})


def test_problem_errors_name_the_field(tmp_path):
    with pytest.raises(InputError, match="evaluator.py: missing"):
        grader.read_problem(tmp_path)
    problem = make_problem(tmp_path, limits={"wall_secs": 3})
    with pytest.raises(InputError, match="wall_secs"):
        grader.read_problem(problem)
    spec = json.loads((problem / "problem.json").read_text())
    spec["limits"], spec["direction"] = {"timeout_seconds": 3}, "up"
    (problem / "problem.json").write_text(json.dumps(spec))
    with pytest.raises(InputError, match="direction"):
        grader.read_problem(problem)


def test_refuses_without_a_jail(tmp_path, monkeypatch):
    problem = make_problem(tmp_path)
    monkeypatch.setattr(mounts.bubblewrap, "unavailable_reason", lambda: "no namespaces here")
    with pytest.raises(RuntimeError, match="cannot run here: no namespaces here"):
        grader.grade(
            problem,
            submit(tmp_path, "1"),
            approach="a",
            round=0,
            repo_dir=None,
            results_dir=tmp_path / "r",
        )
    assert not (tmp_path / "r" / grader.INTERMEDIATE).exists()


def test_service_app_token_and_paths(tmp_path):
    from fastapi.testclient import TestClient

    problem, root = make_problem(tmp_path), tmp_path / "workspaces"
    (root / "a").mkdir(parents=True)
    (root / "a" / "answer.txt").write_text("4")
    (root / "a" / "link.txt").symlink_to(problem / "private" / "cap.txt")
    app = create_app(problem, root, tmp_path / "results", token="s3cret")
    client = TestClient(app, base_url="http://127.0.0.1")
    body = {"approach": "a", "round": 0, "path": "answer.txt"}
    assert client.get("/healthz").status_code == 200
    assert client.post("/grade", json=body).status_code == 401
    assert (
        client.post("/grade", json=body, headers={"authorization": "Bearer no"}).status_code == 401
    )
    ok = {"authorization": "Bearer s3cret"}
    response = client.post("/grade", json=body, headers=ok)
    assert response.status_code == 200 and response.json()["score"] == 4.0
    for path in ("link.txt", "../../problem/private/cap.txt", str(problem / "problem.json")):
        assert client.post("/grade", json=body | {"path": path}, headers=ok).status_code == 403
    assert client.post("/grade", json=body | {"approach": ".."}, headers=ok).status_code == 403
    better = client.post("/is_better", json={"new": {"score": 1}, "old": {"score": 0}}, headers=ok)
    assert better.json() == {"better": True}


def test_approach_jail_sees_its_workspace_and_numpy(tmp_path):
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "in.txt").write_text("21")
    code = (
        "import os, numpy; x = int(open('in.txt').read()); open('out.txt', 'w').write(str(2 * x));"
        "print(os.getcwd(), sorted(os.listdir('/')), numpy.arange(3).sum())"
    )
    result = approach_sandbox.run_in_workspace(
        workspace, ["python", "-c", code], {"wall_seconds": 20, "memory_mb": 2048}
    )
    assert result.status == "passed", result.stderr
    cwd, _, last = result.stdout.strip().partition(" ")
    assert cwd == "/workspace" and last.endswith("3")
    assert "work" in last and "root" in last  # only the venv's and interpreter's parents
    assert (workspace / "out.txt").read_text() == "42"
    # Handed back to its owner: git and the grader read the workspace as before.
    assert os.stat(workspace / "out.txt").st_uid == os.getuid()
    failed = approach_sandbox.run_in_workspace(workspace, ["python", "-c", "raise SystemExit(3)"])
    assert (failed.returncode, failed.status, failed.limit) == (3, "failed", None)


@pytest.mark.parametrize("setpriv", [True, False])
def test_jail_limits_and_user_on_both_launch_paths(monkeypatch, setpriv):
    real_which = mounts.shutil.which
    if not setpriv:  # the interpreter launcher, used where util-linux's setpriv is missing
        monkeypatch.setattr(
            mounts.shutil, "which", lambda name: None if name == "setpriv" else real_which(name)
        )
    code = (
        "import os, resource as r; print(os.getuid(), r.getrlimit(r.RLIMIT_NPROC)[0],"
        " r.getrlimit(r.RLIMIT_AS)[0] >> 20, r.getrlimit(r.RLIMIT_FSIZE)[0] >> 20)"
    )
    limits = mounts.Limits(wall_seconds=10, memory_mb=300, max_processes=7, file_mb=3)
    result = mounts.run_jailed(["python", "-c", code], limits=limits)
    uid, nproc, memory, file_mb = map(int, result.stdout.split())
    assert (nproc, memory, file_mb) == (7, 300, 3)
    assert uid != 0 and (uid >= 1 << 31 or os.geteuid() != 0)
