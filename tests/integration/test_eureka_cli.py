"""`posttrain eureka new-problem` and `posttrain eureka grade` as a user runs them (in-process)."""

from __future__ import annotations

import json
import shutil

import pytest

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="the grader needs bwrap")


def test_a_new_problem_is_graded_in_the_sealed_grader(tmp_path, posttrain_here):
    folder = tmp_path / "guess"
    done = posttrain_here("eureka", "new-problem", folder)
    assert done.exit_code == 0, done.output
    hidden = int((folder / "private" / "target.txt").read_text())
    (tmp_path / "guess.txt").write_text(f"{hidden - 3}\n")
    args = ["eureka", "grade", "--problem", folder, "--submission", tmp_path / "guess.txt"]
    done = posttrain_here(*args, "--results", tmp_path / "results")
    assert done.exit_code == 0, done.output
    record = json.loads(done.stdout)
    assert (record["valid"], record["score"]) == (True, -3.0)
    best = (tmp_path / "results" / "best_result.jsonl").read_text().splitlines()
    assert json.loads(best[-1])["sha256"] == record["sha256"]


def test_bad_problems_are_named(tmp_path, posttrain_here):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    done = posttrain_here("eureka", "new-problem", tmp_path / "full")
    assert done.exit_code == 2 and "refusing to overwrite" in done.output
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.txt").write_text("1")
    args = ["eureka", "grade", "--problem", tmp_path / "empty", "--submission", tmp_path / "x.txt"]
    done = posttrain_here(*args, "--results", tmp_path / "results")
    assert done.exit_code == 2 and "INSTRUCTION.md" in done.output
