"""EurekAgent's problem contract and its three shipped problems, graded in process.

Expected scores are computed here independently of the evaluators (exact fractions, the hidden
labels read with csv, inversions counted by a merge sort), and every known-bad submission must
be invalid with a message naming its fault.
"""

from __future__ import annotations

import ast
import csv
import importlib.util
import json
import shutil
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from posttrain.errors import InputError
from posttrain.eureka.problem import (
    REQUIRED_FILES,
    Limits,
    grade_in_process,
    is_better_in_process,
    load_problem,
    scaffold_problem,
    shipped_problems,
)

SHIPPED = shipped_problems()


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(f"_test_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    previous, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # keep private/ clean
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = previous
    return module


@pytest.fixture(scope="module")
def circles():
    return load_problem(SHIPPED["circle_packing_26"])


@pytest.fixture(scope="module")
def tabular():
    return load_problem(SHIPPED["tabular_classification"])


@pytest.fixture(scope="module")
def speed():
    return load_problem(SHIPPED["speed_up"])


def test_three_problems_ship_and_load():
    assert set(SHIPPED) == {"circle_packing_26", "tabular_classification", "speed_up"}
    for name, folder in SHIPPED.items():
        problem = load_problem(folder)
        assert problem.name == name and problem.direction == "max"
        assert problem.instruction.startswith("# ") and "Submission format" in (
            problem.submission_format
        )
        assert isinstance(problem.limits, Limits) and problem.limits.wall_seconds > 0
        public = problem.public_files()
        assert Path("INSTRUCTION.md") in public
        assert all(p.parts[0] != "private" for p in public)


def test_evaluators_import_only_the_standard_library():
    # The grading sandbox runs the interpreter without site-packages.
    for folder in SHIPPED.values():
        for path in (folder / "private").glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                else:
                    continue
                for name in names:
                    assert name.split(".")[0] in sys.stdlib_module_names, f"{path}: {name}"


# -- circle packing -----------------------------------------------------------------------


def _grid() -> list[list[str]]:
    """25 circles of radius 0.1 on a 5x5 grid plus one of radius 0.04 in a gap at (0.2, 0.2)
    (its distance to the nearest centres is sqrt(0.02) ~ 0.14142 >= 0.14)."""
    rows = [
        [f"{0.1 + 0.2 * i:.1f}", f"{0.1 + 0.2 * j:.1f}", "0.1"] for j in range(5) for i in range(5)
    ]
    return [*rows, ["0.2", "0.2", "0.04"]]


def _write(tmp_path: Path, rows, name="circles.txt") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(" ".join(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_circles_known_good_scores_the_exact_sum(circles, tmp_path):
    rows = _grid()
    expected = sum(Fraction(r) for _, _, r in rows)
    result = grade_in_process(circles, _write(tmp_path, rows))
    assert result["valid"], result["message"]
    assert result["score"] == float(expected) == 2.54
    assert result["exact_sum"] == f"{expected.numerator}/{expected.denominator}"
    # The JSON form and comma separators read the same numbers.
    as_json = tmp_path / "c.json"
    as_json.write_text(json.dumps({"circles": [[float(v) for v in r] for r in rows]}))
    assert grade_in_process(circles, as_json)["score"] == result["score"]
    commas = tmp_path / "commas.txt"
    commas.write_text("# header\n\n" + "\n".join(",".join(r) for r in rows))
    assert grade_in_process(circles, commas)["score"] == result["score"]


@pytest.mark.parametrize(
    ("x2", "valid"),
    [("0.2999995", True), ("0.299999", True), ("0.2999989", False), ("0.299998", False)],
)
def test_circles_overlap_tolerance_is_exact(circles, tmp_path, x2, valid):
    # Circles 1 (0.1, 0.1) and 2 (x2, 0.1), both of radius 0.1: the rule allows a centre
    # distance down to 0.2 - 1e-6 = 0.199999, with equality valid.
    rows = _grid()
    rows[1][0] = x2
    result = grade_in_process(circles, _write(tmp_path, rows))
    assert result["valid"] is valid, result["message"]
    if not valid:
        assert result["score"] is None and "circles 1 and 2 overlap" in result["message"]


@pytest.mark.parametrize(("x1", "valid"), [("0.099999", True), ("0.0999989", False)])
def test_circles_outside_the_square_beyond_tolerance(circles, tmp_path, x1, valid):
    rows = _grid()
    rows[0][0] = x1  # x - r = -1e-6 is allowed, -1.1e-6 is not
    result = grade_in_process(circles, _write(tmp_path, rows))
    assert result["valid"] is valid, result["message"]
    if not valid:
        assert "circle 1 lies outside the unit square" in result["message"]


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("25", "wrong count: expected 26 circles, got 25"),
        ("27", "wrong count: expected 26 circles, got 27"),
        ("0.5 0.5\n", "expected 'x y r', got 2 fields"),
        ("0.5 abc 0.1\n", "is not a finite decimal number"),
        ("0.5 0.5 nan\n", "is not a finite decimal number"),
        ("0.5 0.5 1e999999999\n", "is not a finite decimal number"),
        ("0.5 0.5 -0.1\n", "is not positive"),
        ("[[0.5, 0.5", "malformed JSON"),
        ('{"other": []}', 'needs the key "circles"'),
    ],
)
def test_circles_bad_submissions_are_invalid_and_named(circles, tmp_path, text, fault):
    rows = _grid()
    if text.isdigit():
        rows = (rows * 2)[: int(text)]
        path = _write(tmp_path, rows)
    elif text.startswith(("[", "{")):
        path = tmp_path / "c.txt"
        path.write_text(text)
    else:
        path = _write(tmp_path, rows[:25])
        path.write_text(path.read_text() + text)
    result = grade_in_process(circles, path)
    assert result["valid"] is False and result["score"] is None
    assert fault in result["message"], result["message"]


def test_circles_binary_file_is_malformed(circles, tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"\xff\xfe\x00")
    assert "not UTF-8" in grade_in_process(circles, path)["message"]


@pytest.mark.parametrize("name", ["circle_packing_26", "tabular_classification", "speed_up"])
def test_is_better_orders_valid_scores(name):
    problem = load_problem(SHIPPED[name])
    low = {"score": 1.0, "valid": True, "message": ""}
    high = {"score": 2.0, "valid": True, "message": ""}
    bad = {"score": None, "valid": False, "message": "x"}
    assert is_better_in_process(problem, high, low)
    assert not is_better_in_process(problem, low, high)
    assert not is_better_in_process(problem, low, low)  # a tie keeps the old best
    assert is_better_in_process(problem, low, bad) and is_better_in_process(problem, low, None)
    assert not is_better_in_process(problem, bad, low) and not is_better_in_process(
        problem, bad, None
    )


# -- tabular classification ---------------------------------------------------------------


def _hidden_labels(problem) -> dict[str, str]:
    with open(problem.private_dir / "test_labels.csv", newline="") as file:
        return {row["id"]: row["label"] for row in csv.DictReader(file)}


def _predictions(tmp_path: Path, pairs, header="id,label") -> Path:
    path = tmp_path / "predictions.csv"
    path.write_text(header + "\n" + "".join(f"{i},{v}\n" for i, v in pairs), encoding="utf-8")
    return path


def test_tabular_data_is_consistent_and_regenerates(tabular):
    made = _module(tabular.private_dir / "make_data.py").files()
    for path, text in made.items():
        assert path.read_text(encoding="utf-8") == text, f"{path} differs from its generator"
    with open(tabular.dir / "data" / "test_features.csv", newline="") as file:
        test_ids = [row["id"] for row in csv.DictReader(file)]
    with open(tabular.dir / "data" / "train.csv", newline="") as file:
        train = list(csv.DictReader(file))
    assert test_ids == list(_hidden_labels(tabular)) and len(test_ids) == 800
    assert not set(test_ids) & {row["id"] for row in train}
    assert len(train) == 1200 and {row["label"] for row in train} == {"0", "1"}


def test_tabular_accuracy_is_exact(tabular, tmp_path):
    labels = _hidden_labels(tabular)
    # Flip every 7th label: the accuracy is what those flips leave correct.
    guess = {i: (str(1 - int(v)) if n % 7 == 0 else v) for n, (i, v) in enumerate(labels.items())}
    expected = sum(guess[i] == labels[i] for i in labels) / len(labels)
    result = grade_in_process(tabular, _predictions(tmp_path, reversed(list(guess.items()))))
    assert result["valid"], result["message"]
    assert result["score"] == expected and result["total"] == 800
    ones = sum(v == "1" for v in labels.values()) / len(labels)
    result = grade_in_process(tabular, _predictions(tmp_path, [(i, 1) for i in labels]))
    assert result["score"] == ones


@pytest.mark.parametrize(
    ("edit", "fault"),
    [
        ("drop", "missing predictions for 2 test ids"),
        ("duplicate", "duplicate id"),
        ("unknown", "is not a test id"),
        ("label", "is not 0 or 1"),
        ("header", "the header must be 'id,label'"),
    ],
)
def test_tabular_bad_predictions_are_invalid_and_named(tabular, tmp_path, edit, fault):
    pairs = [(i, v) for i, v in _hidden_labels(tabular).items()]
    header = "id,label"
    if edit == "drop":
        pairs = pairs[1:-1]
    elif edit == "duplicate":
        pairs.append(pairs[0])
    elif edit == "unknown":
        pairs.append(("5", "1"))  # a training id
    elif edit == "label":
        pairs[3] = (pairs[3][0], "0.7")
    else:
        header = "row,prediction"
    result = grade_in_process(tabular, _predictions(tmp_path, pairs, header))
    assert result["valid"] is False and result["score"] is None
    assert fault in result["message"], result["message"]


# -- speed up ------------------------------------------------------------------------------


def _merge_count(values: list[int]) -> int:
    """Inversions by merge sort: an independent check of the hidden expected outputs."""
    if len(values) < 2:
        return 0
    mid = len(values) // 2
    left, right = sorted(values[:mid]), sorted(values[mid:])
    count, j = 0, 0
    for x in left:  # pairs (left x, right y) with x > y
        while j < len(right) and right[j] < x:
            j += 1
        count += j
    return _merge_count(values[:mid]) + _merge_count(values[mid:]) + count


FAST = """
import os

print("importing: this must not break the grader's protocol")
os.write(1, b"nor bytes written straight to file descriptor 1\\n")


def count_inversions(values):
    def sort(a):
        if len(a) < 2:
            return a, 0
        left, x = sort(a[: len(a) // 2])
        right, y = sort(a[len(a) // 2 :])
        out, count, i, j = [], x + y, 0, 0
        while i < len(left) and j < len(right):
            if left[i] <= right[j]:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
                count += len(left) - i
        return out + left[i:] + right[j:], count

    print("called")
    return sort(list(values))[1]
"""


def test_speed_hidden_cases_are_right_and_regenerate(speed):
    assert (speed.dir / "reference.py").read_bytes() == (
        speed.private_dir / "reference.py"
    ).read_bytes()
    shipped = (speed.private_dir / "cases.json").read_text(encoding="utf-8")
    assert _module(speed.private_dir / "make_cases.py").text() == shipped
    cases = json.loads(shipped)
    assert [_merge_count(v) for v in cases["inputs"]] == cases["expected"]
    assert max(cases["expected"]) > 0 and len(cases["inputs"]) >= 10


def test_speed_fast_submission_is_valid_and_faster(speed, tmp_path):
    path = tmp_path / "solution.py"
    path.write_text(FAST)
    result = grade_in_process(speed, path)
    assert result["valid"], result["message"]
    # n = 1000: O(n log n) against O(n^2); measured ~12x here, so 3x leaves room for load.
    assert result["score"] > 3.0
    assert result["score"] == pytest.approx(sorted(result["ratios"])[len(result["ratios"]) // 2])
    assert not list(speed.dir.rglob("__pycache__")), "grading wrote bytecode into the problem"


def test_speed_patched_clock_cannot_fake_a_speedup(speed, tmp_path):
    # The reference itself, plus a frozen clock in its process: timing happens outside it.
    path = tmp_path / "solution.py"
    path.write_text(
        "import time\ntime.perf_counter = lambda: 0.0\n" + (speed.dir / "reference.py").read_text()
    )
    result = grade_in_process(speed, path)
    assert result["valid"], result["message"]
    assert 0.3 < result["score"] < 3.0


@pytest.mark.parametrize(
    ("source", "fault"),
    [
        (
            "def count_inversions(values):\n    return 0 if len(values) > 100 else "
            + "sum(a > b for i, a in enumerate(values) for b in values[i + 1 :])\n",
            "wrong output on hidden case 9 (n=300)",
        ),
        ("def count_inversions(values):\n    return float(len(values))\n", "wrong output"),
        (
            FAST.replace("return sort(list(values))[1]", "return float(sort(list(values))[1])"),
            "wrong output on hidden case 1",
        ),
        ("def count_inversions(values):\n    raise KeyError('boom')\n", "raised KeyError"),
        ("def other(values):\n    return 0\n", "cannot load count_inversions"),
        ("def count_inversions(values:\n", "SyntaxError"),
        ("import os\nos._exit(3)\n", "the submission exited"),
    ],
)
def test_speed_bad_submissions_are_invalid_and_named(speed, tmp_path, source, fault):
    path = tmp_path / "solution.py"
    path.write_text(source)
    result = grade_in_process(speed, path)
    assert result["valid"] is False and result["score"] is None
    assert fault in result["message"], result["message"]


# -- the folder contract -------------------------------------------------------------------


@pytest.mark.parametrize("missing", REQUIRED_FILES)
def test_a_missing_file_is_named(tmp_path, missing):
    folder = tmp_path / "p"
    shutil.copytree(SHIPPED["circle_packing_26"], folder)
    (folder / missing).unlink()
    with pytest.raises(InputError, match=f"missing {missing}"):
        load_problem(folder)


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ({"direction": "up"}, "direction: expected 'max' or 'min'"),
        ({"submission_file": "../x.txt"}, "submission_file: expected a plain file name"),
        ({"name": ""}, "name: expected a non-empty string"),
        ({"name": None}, "name: missing required key"),
        ({"colour": "red"}, "colour: unknown key"),
        ({"limits": {"wall_second": 3}}, "limits.wall_second: unknown limit"),
        ({"limits": {"memory_mb": -1}}, "limits.memory_mb: expected a positive number"),
        ({"limits": {"max_processes": 2.5}}, "limits.max_processes: expected a whole number"),
        ({"limits": [1]}, "limits: expected an object"),
    ],
)
def test_a_bad_problem_json_key_is_named(tmp_path, edit, named):
    folder = tmp_path / "p"
    shutil.copytree(SHIPPED["circle_packing_26"], folder)
    meta = json.loads((folder / "problem.json").read_text())
    for key, value in edit.items():
        if value is None:
            del meta[key]
        else:
            meta[key] = value
    (folder / "problem.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match=named) as err:
        load_problem(folder)
    assert "problem.json" in str(err.value)


def test_problem_json_that_is_not_json_names_the_line(tmp_path):
    folder = tmp_path / "p"
    shutil.copytree(SHIPPED["speed_up"], folder)
    (folder / "problem.json").write_text('{\n  "name": "x",\n  oops\n}')
    with pytest.raises(InputError, match=r"problem.json:3: not JSON"):
        load_problem(folder)


def test_scaffold_round_trips_and_refuses_to_overwrite(tmp_path):
    problem = scaffold_problem(tmp_path / "new", "my_problem")
    assert problem == load_problem(tmp_path / "new")
    assert problem.name == "my_problem" and problem.submission_file == "guess.txt"
    assert "my_problem" in problem.instruction
    guess = tmp_path / "guess.txt"
    hidden = int((problem.private_dir / "target.txt").read_text())
    guess.write_text(str(hidden - 2))
    assert grade_in_process(problem, guess)["score"] == -2.0
    guess.write_text("banana")
    assert grade_in_process(problem, guess)["valid"] is False
    with pytest.raises(InputError, match="refusing to overwrite"):
        scaffold_problem(tmp_path / "new", "again")
    with pytest.raises(InputError, match="bad problem name"):
        scaffold_problem(tmp_path / "other", "no spaces")
    assert not (problem.private_dir / "__pycache__").exists()
