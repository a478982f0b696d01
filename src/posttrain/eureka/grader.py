"""The sealed grader: one evaluation in a bubblewrap jail, and the results files it alone writes.

`grade` copies the submission into a fresh folder, then runs the problem's
`private/evaluator.py` in a jail (`posttrain.sandbox.mounts`) that sees only a copy of
`private/` (read-only, at /problem/private), the submission copy (read-only, at /submission)
and the small runner below: no network, the limits of problem.json. The interpreter runs
without site-packages, so the evaluator has the standard library only, as the problem contract
says. The evaluator's answer comes back as JSON through a pipe of its own (bounded), not
stdout, which the submission's code could write to; a crash,
a timeout, a limit or a malformed answer becomes a record with `valid` False and the reason.

In the same jail run, a valid result is compared with the current best through the
evaluator's own `is_better`, so a problem defines what "better" means. Records go to the
results folder, which only the grader process writes (approaches' jails never mount it):
`intermediate_results.jsonl` (every grading), `latest_feedback.json` (the last one) and
`best_result.jsonl` (each new best), each replaced atomically under a lock.

Limitation, stated once: an evaluator that executes the submission in its own process can be
lied to by that code (it may write the answer descriptor itself); the jail still bounds what
it can reach. Such an evaluator should run the submission in a child process, as the shipped
speed task does: a child cannot reach the runner's answer descriptor.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import math
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from posttrain import atomic
from posttrain.errors import InputError
from posttrain.sandbox.mounts import Limits, run_jailed

INTERMEDIATE = "intermediate_results.jsonl"
LATEST = "latest_feedback.json"
BEST = "best_result.jsonl"
RESULT_FILES = (INTERMEDIATE, LATEST, BEST)

DEFAULT_LIMITS = Limits(wall_seconds=120.0, memory_mb=2048, max_processes=16, file_mb=64)
MAX_SUBMISSION_BYTES = 64 * 1024 * 1024
MAX_ANSWER_CHARS = 32 * 1024
"""The evaluator's answer line must fit in this; more is treated as a malformed answer."""
_LIMIT_ALIASES = {"file_size_mb": "file_mb", "timeout_seconds": "wall_seconds"}
"""problem.json's limit names (posttrain.eureka.problem) -> Limits' field names."""

# Runs in the jail with the standard library only. argv: mode ("grade" or "compare") and the
# answer descriptor. The answer goes through that descriptor, not stdout: it is closed on
# exec and the runner is made non-dumpable (so no process of the same uid can open it via
# /proc/<pid>/fd or ptrace), so code the evaluator runs in a child process cannot forge it.
_RUNNER = """\
import ctypes, importlib.util, json, os, sys
answer_fd = int(sys.argv[2])
os.set_inheritable(answer_fd, False)
try:
    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0
except Exception:
    pass
spec = importlib.util.spec_from_file_location("evaluator", "/problem/private/evaluator.py")
evaluator = importlib.util.module_from_spec(spec)
spec.loader.exec_module(evaluator)
with open("/grader/input.json") as handle:
    job = json.load(handle)
answer = {}
if sys.argv[1] == "grade":
    result = evaluator.grade_submission(job["submission"], {"private_dir": "/problem/private"})
    answer["result"] = result
    if job["best"] is not None and isinstance(result, dict) and result.get("valid") is True:
        answer["better"] = bool(evaluator.is_better(result, job["best"]))
else:
    answer["better"] = bool(evaluator.is_better(job["new"], job["old"]))
with os.fdopen(answer_fd, "w") as out:
    out.write(json.dumps(answer, default=str))
"""


def _read_bounded(fd: int, into: bytearray) -> None:
    """Read a pipe to its end, keeping at most MAX_ANSWER_CHARS + 1 bytes."""
    while chunk := os.read(fd, 65536):
        if len(into) <= MAX_ANSWER_CHARS:
            into += chunk[: MAX_ANSWER_CHARS + 1 - len(into)]


_write_lock = threading.Lock()


class GraderError(RuntimeError):
    """The grader cannot grade at all here (no jail, no evaluator)."""


def read_problem(problem_dir: str | Path) -> dict:
    """What the grader needs from a problem folder: its evaluator, direction and limits.

    Reads problem.json's `direction` ("max" / "min", default "max"), `submission_file` and
    `limits` (Limits' field names, or `file_size_mb` for `file_mb`)."""
    problem_dir = Path(problem_dir)
    evaluator = problem_dir / "private" / "evaluator.py"
    if not evaluator.is_file():
        raise InputError(f"{evaluator}: missing (a problem's private evaluator)")
    spec_path = problem_dir / "problem.json"
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8")) if spec_path.exists() else {}
    except json.JSONDecodeError as err:
        raise InputError(f"{spec_path}: not valid JSON ({err})") from err
    if not isinstance(spec, dict):
        raise InputError(f"{spec_path}: expected a JSON object")
    direction = spec.get("direction", "max")
    if direction not in ("max", "min"):
        raise InputError(f"{spec_path}: direction must be 'max' or 'min', got {direction!r}")
    raw = spec.get("limits") or {}
    if not isinstance(raw, dict):
        raise InputError(f"{spec_path}: limits must be an object")
    merged = {k: v for k, v in vars(DEFAULT_LIMITS).items() if v is not None}
    merged |= {_LIMIT_ALIASES.get(k, k): v for k, v in raw.items()}
    try:
        limits = Limits.from_dict(merged, where=f"{spec_path}: limits")
    except (ValueError, TypeError) as err:
        raise InputError(str(err)) from err
    return {
        "dir": problem_dir,
        "direction": direction,
        "submission_file": spec.get("submission_file"),
        "limits": limits,
    }


def _git_state(repo_dir: str | Path | None) -> tuple[str | None, bool | None]:
    """HEAD and whether the work tree differs from it; (None, None) where there is no repo."""
    if repo_dir is None or not Path(repo_dir).is_dir():
        return None, None
    git = ["git", "-c", f"safe.directory={os.path.realpath(repo_dir)}", "-C", str(repo_dir)]
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        return None, None
    status = subprocess.run([*git, "status", "--porcelain"], capture_output=True, text=True)
    return head.stdout.strip(), bool(status.stdout.strip()) or status.returncode != 0


def _read_submission(path: str | Path, allowed_root: str | Path | None) -> bytes:
    """The submission's bytes, read through one descriptor; with `allowed_root`, the file
    actually opened must lie inside it (checked on the descriptor, so a symlink swapped in
    after an earlier check escapes nothing). O_NONBLOCK: a FIFO cannot make us wait."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not os.path.stat.S_ISREG(info.st_mode):
            raise PermissionError(f"{path}: not a regular file")
        if allowed_root is not None:
            real = os.path.realpath(f"/proc/self/fd/{fd}")
            root = os.path.realpath(allowed_root)
            if os.path.commonpath([real, root]) != root:
                raise PermissionError(f"{path}: resolves to {real}, outside {root}")
        if info.st_size > MAX_SUBMISSION_BYTES:
            raise ValueError(
                f"submission is {info.st_size} bytes; the limit is {MAX_SUBMISSION_BYTES}"
            )
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(MAX_SUBMISSION_BYTES + 1)
    finally:
        os.close(fd)


def _copy_private(private: Path, target: Path) -> None:
    """A readable copy of private/: the jail's user is not the files' owner."""
    shutil.copytree(private, target, symlinks=False)
    for root, _dirs, files in os.walk(target):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)


def _run_evaluator(problem: dict, mode: str, job: dict, submission: bytes | None, name: str):
    """One jailed run of the runner; returns (answer dict or None, why not, JailResult)."""
    with tempfile.TemporaryDirectory(prefix="posttrain-grade-") as scratch:
        root = Path(scratch)
        os.chmod(root, 0o755)
        _copy_private(problem["dir"] / "private", root / "private")
        (root / "grader").mkdir(mode=0o755)
        (root / "grader" / "runner.py").write_text(_RUNNER, encoding="utf-8")
        binds = {"/problem/private": str(root / "private"), "/grader": str(root / "grader")}
        if submission is not None:
            (root / "submission").mkdir(mode=0o755)
            (root / "submission" / name).write_bytes(submission)
            binds["/submission"] = str(root / "submission")
            job = job | {"submission": f"/submission/{name}"}
        (root / "grader" / "input.json").write_text(json.dumps(job), encoding="utf-8")
        for path in (root / "grader").iterdir():
            os.chmod(path, 0o644)
        if submission is not None:
            os.chmod(root / "submission" / name, 0o644)
        read_end, write_end = os.pipe()
        received = bytearray()
        reader = threading.Thread(target=_read_bounded, args=(read_end, received), daemon=True)
        reader.start()
        try:
            run = run_jailed(
                ["python", "/grader/runner.py", mode, str(write_end)],
                limits=problem["limits"],
                ro_binds=binds,
                chdir="/tmp",
                pass_fds=(write_end,),
            )
        finally:
            os.close(write_end)  # the jail is gone: the reader sees the end of the pipe
            reader.join(timeout=5)
            os.close(read_end)
    if run.status != "passed":
        if run.limit:
            why = f"stopped by the {run.limit.replace('_', ' ')} limit"
        else:
            last = (run.stderr.strip().splitlines() or [run.status])[-1]
            why = f"the evaluator failed (exit {run.returncode}): {last[:500]}"
        return None, why, run
    if not received or len(received) > MAX_ANSWER_CHARS:
        return None, "the evaluator gave no answer (or one too long)", run
    try:
        return json.loads(received.decode("utf-8", "replace")), None, run
    except json.JSONDecodeError:
        return None, "the evaluator's answer is not JSON", run


def _check_result(result: object) -> str | None:
    """Why an evaluator's result breaks the contract, or None."""
    if not isinstance(result, dict):
        return f"grade_submission returned {type(result).__name__}, not a dict"
    score, valid, message = result.get("score"), result.get("valid"), result.get("message")
    if not isinstance(valid, bool):
        return "grade_submission's 'valid' is not a bool"
    if not isinstance(message, str):
        return "grade_submission's 'message' is not a string"
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score)
    ):
        return f"grade_submission's 'score' is not a finite number: {score!r}"
    if valid and score is None:
        return "grade_submission says valid but gives no score"
    return None


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def current_best(results_dir: str | Path) -> dict | None:
    """The last record of best_result.jsonl, or None."""
    records = _read_jsonl(Path(results_dir) / BEST)
    return records[-1] if records else None


class _Locked:
    """This process's threads and other processes: one writer of a results folder at a time."""

    def __init__(self, results_dir: Path) -> None:
        self.path = results_dir / ".lock"

    def __enter__(self):
        _write_lock.acquire()
        self.handle = open(self.path, "a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
        _write_lock.release()


def _append(path: Path, record: dict) -> None:
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    atomic.write_text(path, old + json.dumps(record, sort_keys=True) + "\n")


def grade(
    problem_dir: str | Path,
    submission_path: str | Path,
    *,
    approach: str,
    round: int,
    repo_dir: str | Path | None,
    results_dir: str | Path,
    allowed_root: str | Path | None = None,
) -> dict:
    """Grade one submission in the jail and record it; returns the results record.

    The record: time, approach, round, score, valid, message, sha256, git_hash, dirty,
    seconds (evaluation wall time), plus `better` (a new best), `limit` (which limit stopped
    the evaluation, if one did) and `details` (the evaluator's other keys). Raises
    PermissionError where the file read is not a regular file inside `allowed_root`."""
    problem = read_problem(problem_dir)
    results = Path(results_dir)
    results.mkdir(parents=True, exist_ok=True)
    data = _read_submission(submission_path, allowed_root)
    name = problem["submission_file"] or Path(submission_path).name
    name = Path(name).name or "submission"
    git_hash, dirty = _git_state(repo_dir)
    best = current_best(results)
    job = {"best": best}
    start = time.perf_counter()
    answer, why, run = _run_evaluator(problem, "grade", job, data, name)
    seconds = time.perf_counter() - start
    result = answer.get("result") if answer else None
    problem_text = why or _check_result(result)
    if problem_text:
        score, valid, message, details = None, False, problem_text, None
    else:
        score = None if result["score"] is None else float(result["score"])
        valid, message = result["valid"], result["message"]
        details = {k: v for k, v in result.items() if k not in ("score", "valid", "message")}
    record = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "approach": approach,
        "round": round,
        "score": score,
        "valid": valid,
        "message": message,
        "sha256": hashlib.sha256(data).hexdigest(),
        "git_hash": git_hash,
        "dirty": dirty,
        "seconds": round_seconds(seconds),
        "limit": run.limit,
    }
    if details is not None:
        record["details"] = details
    better = bool(valid and (best is None or (answer or {}).get("better", False)))
    with _Locked(results):
        now = current_best(results)
        if valid and now != best:
            # Another grading set a new best while this one ran: compare with that one.
            better = now is None or is_better(problem_dir, record, now)
        record["better"] = better
        _append(results / INTERMEDIATE, record)
        atomic.write_text(results / LATEST, json.dumps(record, indent=2, sort_keys=True) + "\n")
        if better:
            _append(results / BEST, record)
    return record


def round_seconds(seconds: float) -> float:
    return float(f"{seconds:.4f}")


def is_better(problem_dir: str | Path, new: Mapping, old: Mapping) -> bool:
    """The problem's own `is_better(new, old)`, run in the jail like a grading."""
    problem = read_problem(problem_dir)
    answer, why, _ = _run_evaluator(
        problem, "compare", {"new": dict(new), "old": dict(old)}, None, ""
    )
    if answer is None or not isinstance(answer.get("better"), bool):
        raise GraderError(f"is_better could not be evaluated: {why or 'no answer'}")
    return answer["better"]
