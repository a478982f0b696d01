"""The problem contract of EurekAgent: a folder that approaches read and the grader grades.

A problem folder holds

- `INSTRUCTION.md` and `SUBMISSION_FORMAT.md`: what approaches read;
- `problem.json`: `name`, `submission_file` (a plain file name), `direction` ("max" or
  "min"), optional `description` and `limits` for grading (keys of `LIMIT_KEYS`, positive
  numbers; missing ones take `DEFAULT_LIMITS`);
- `private/evaluator.py`, standard library only, defining `grade_submission(path, ctx) ->
  {"score", "valid", "message", ...}` and `is_better(new, old) -> bool`, with its hidden data
  next to it in `private/` (only the grader sees `private/`; everything else is public).

Three problems ship with the package (`shipped_problems`): circle_packing_26,
tabular_classification and speed_up.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from posttrain.errors import InputError, not_utf8

PROBLEMS_DIR = Path(__file__).resolve().parent / "problems"
REQUIRED_FILES = ("INSTRUCTION.md", "SUBMISSION_FORMAT.md", "problem.json", "private/evaluator.py")
DIRECTIONS = ("max", "min")
DEFAULT_LIMITS = {
    "wall_seconds": 60.0,  # wall clock of one evaluation
    "cpu_seconds": 60.0,  # CPU time per process
    "memory_mb": 1024.0,  # address space per process
    "max_processes": 8.0,  # processes and threads at once, the evaluator included
    "file_size_mb": 16.0,  # the largest file the evaluation may write
}
LIMIT_KEYS = tuple(DEFAULT_LIMITS)
_KEYS = {"name", "submission_file", "direction", "description", "limits"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one grading (see DEFAULT_LIMITS for the meaning of each)."""

    wall_seconds: float = DEFAULT_LIMITS["wall_seconds"]
    cpu_seconds: float = DEFAULT_LIMITS["cpu_seconds"]
    memory_mb: int = int(DEFAULT_LIMITS["memory_mb"])
    max_processes: int = int(DEFAULT_LIMITS["max_processes"])
    file_size_mb: int = int(DEFAULT_LIMITS["file_size_mb"])


@dataclass(frozen=True)
class Problem:
    """A validated problem folder."""

    dir: Path
    name: str
    instruction: str
    submission_format: str
    submission_file: str
    direction: str
    limits: Limits = field(default_factory=Limits)
    description: str = ""

    @property
    def private_dir(self) -> Path:
        """The hidden folder: the evaluator and its data, for the grader only."""
        return self.dir / "private"

    @property
    def evaluator(self) -> Path:
        return self.private_dir / "evaluator.py"

    def public_files(self) -> list[Path]:
        """Every file approaches may see (relative paths): all but `private/` and caches."""
        found = []
        for path in sorted(self.dir.rglob("*")):
            relative = path.relative_to(self.dir)
            if relative.parts[0] == "private" or "__pycache__" in relative.parts:
                continue
            if path.is_file():
                found.append(relative)
        return found


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise not_utf8(path, data, err) from None


def _limits(raw: Any, where: Path) -> Limits:
    if raw is None:
        return Limits()
    if not isinstance(raw, dict):
        raise InputError(f"expected an object of {', '.join(LIMIT_KEYS)}", where, key="limits")
    unknown = sorted(set(raw) - set(LIMIT_KEYS))
    if unknown:
        raise InputError(
            f"unknown limit {unknown[0]!r}; expected {', '.join(LIMIT_KEYS)}",
            where,
            key=f"limits.{unknown[0]}",
        )
    values: dict[str, float] = {}
    for key, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise InputError(
                f"expected a positive number, got {value!r}", where, key=f"limits.{key}"
            )
        if key not in ("wall_seconds", "cpu_seconds") and value != int(value):
            raise InputError(f"expected a whole number, got {value!r}", where, key=f"limits.{key}")
        values[key] = float(value) if key in ("wall_seconds", "cpu_seconds") else int(value)
    return Limits(**values)


def load_problem(dir: str | Path) -> Problem:
    """The problem in folder `dir`; a missing file or a bad problem.json key is an InputError
    naming it."""
    root = Path(dir).expanduser().resolve()
    if not root.is_dir():
        raise InputError("not a problem folder (no such directory)", dir)
    for name in REQUIRED_FILES:
        if not (root / name).is_file():
            raise InputError(
                f"missing {name}: a problem folder needs {', '.join(REQUIRED_FILES)}", root / name
            )
    meta_path = root / "problem.json"
    try:
        meta = json.loads(_read_text(meta_path))
    except json.JSONDecodeError as err:
        raise InputError(f"not JSON: {err.msg}", meta_path, line=err.lineno) from None
    if not isinstance(meta, dict):
        raise InputError("expected a JSON object", meta_path)
    unknown = sorted(set(meta) - _KEYS)
    if unknown:
        raise InputError(
            f"unknown key; expected {', '.join(sorted(_KEYS))}", meta_path, key=unknown[0]
        )
    for key in ("name", "submission_file", "direction"):
        if key not in meta:
            raise InputError("missing required key", meta_path, key=key)
        if not isinstance(meta[key], str) or not meta[key]:
            raise InputError(f"expected a non-empty string, got {meta[key]!r}", meta_path, key=key)
    if not _NAME.fullmatch(meta["name"]):
        raise InputError("use letters, digits, '_', '-', '.'", meta_path, key="name")
    submission_file = meta["submission_file"]
    # A plain name: the grader looks for it in an approach's folder, never elsewhere.
    if not _NAME.fullmatch(submission_file):
        raise InputError(
            f"expected a plain file name (no folders), got {submission_file!r}",
            meta_path,
            key="submission_file",
        )
    if meta["direction"] not in DIRECTIONS:
        raise InputError(
            f"expected 'max' or 'min', got {meta['direction']!r}", meta_path, key="direction"
        )
    description = meta.get("description", "")
    if not isinstance(description, str):
        raise InputError("expected a string", meta_path, key="description")
    return Problem(
        dir=root,
        name=meta["name"],
        instruction=_read_text(root / "INSTRUCTION.md"),
        submission_format=_read_text(root / "SUBMISSION_FORMAT.md"),
        submission_file=submission_file,
        direction=meta["direction"],
        limits=_limits(meta.get("limits"), meta_path),
        description=description,
    )


def shipped_problems() -> dict[str, Path]:
    """Name -> folder of every problem shipped with posttrain."""
    return {
        path.name: path
        for path in sorted(PROBLEMS_DIR.iterdir())
        if (path / "problem.json").is_file()
    }


def _load_evaluator(problem: Problem) -> ModuleType:
    """The evaluator module, loaded fresh from its file (no bytecode written into private/)."""
    spec = importlib.util.spec_from_file_location(
        f"_eureka_evaluator_{problem.name}", problem.evaluator
    )
    if spec is None or spec.loader is None:
        raise InputError("cannot load the evaluator", problem.evaluator)
    module = importlib.util.module_from_spec(spec)
    previous = sys.dont_write_bytecode
    sys.dont_write_bytecode = True
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = previous
    for name in ("grade_submission", "is_better"):
        if not callable(getattr(module, name, None)):
            raise InputError(f"the evaluator does not define {name}()", problem.evaluator, key=name)
    return module


def grade_in_process(problem: Problem, submission_path: str | Path) -> dict:
    """Grade `submission_path` by importing the evaluator into THIS process: for tests only.

    Nothing is isolated here: the evaluator (and, for speed_up, the submission it starts) runs
    with this process's rights and sees everything. Real grading is the sealed, sandboxed grader
    (`posttrain.eureka.grader`), which alone writes results records.
    """
    module = _load_evaluator(problem)
    result = module.grade_submission(
        str(submission_path), {"private_dir": str(problem.private_dir)}
    )
    _check_result(result, problem.evaluator)
    return result


def is_better_in_process(problem: Problem, new: dict, old: dict | None) -> bool:
    """The evaluator's `is_better(new, old)`, imported into this process: for tests only."""
    return bool(_load_evaluator(problem).is_better(new, old))


def _check_result(result: Any, where: Path) -> None:
    if not isinstance(result, dict):
        raise InputError(f"grade_submission returned {type(result).__name__}, not a dict", where)
    for key in ("score", "valid", "message"):
        if key not in result:
            raise InputError("grade_submission's result lacks this key", where, key=key)


_SCAFFOLD = {
    "INSTRUCTION.md": """# {name}

A starter problem made by `posttrain eureka new-problem`: guess the hidden integer between 0
and 100. The score is `-|guess - hidden|` (0 is perfect); higher is better.

Replace this text, SUBMISSION_FORMAT.md, problem.json and private/ with your own problem.
""",
    "SUBMISSION_FORMAT.md": """# Submission format

One text file named `guess.txt` holding a single integer between 0 and 100.
""",
    "private/target.txt": "42\n",
    "private/evaluator.py": '''\
"""Grader of the starter problem: score = -|guess - hidden| (stdlib only)."""

from pathlib import Path

HERE = Path(__file__).resolve().parent


def grade_submission(path, ctx):
    """{"score", "valid", "message"}: score None when the file is not one integer in 0..100."""
    hidden = int((Path(ctx.get("private_dir") or HERE) / "target.txt").read_text().strip())
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        return {"score": None, "valid": False, "message": f"cannot read the submission: {err}"}
    if not text.lstrip("-").isdigit() or not 0 <= int(text) <= 100:
        message = f"not an integer in 0..100: {text[:20]!r}"
        return {"score": None, "valid": False, "message": message}
    score = -abs(int(text) - hidden)
    return {"score": float(score), "valid": True, "message": f"valid: off by {-score}"}


def is_better(new, old):
    """A valid result beats an invalid or missing one; between valid ones the higher score."""
    if not new or not new.get("valid"):
        return False
    if not old or not old.get("valid"):
        return True
    return new["score"] > old["score"]
''',
}


def scaffold_problem(dir: str | Path, name: str) -> Problem:
    """Write a minimal valid problem named `name` into `dir` (created; an existing non-empty
    folder is refused) and return it loaded: the start of `posttrain eureka new-problem DIR`."""
    root = Path(dir).expanduser()
    if not _NAME.fullmatch(name):
        raise InputError(f"bad problem name {name!r}: use letters, digits, '_', '-', '.'")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise InputError("refusing to overwrite: not an empty folder", root)
    (root / "private").mkdir(parents=True, exist_ok=True)
    for relative, text in _SCAFFOLD.items():
        (root / relative).write_text(text.replace("{name}", name), encoding="utf-8")
    meta = {
        "name": name,
        "description": "Starter problem: guess the hidden integer.",
        "submission_file": "guess.txt",
        "direction": "max",
        "limits": {
            "wall_seconds": 10,
            "cpu_seconds": 10,
            "memory_mb": 256,
            "max_processes": 4,
            "file_size_mb": 1,
        },
    }
    (root / "problem.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return load_problem(root)
