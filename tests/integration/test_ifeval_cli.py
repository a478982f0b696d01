"""`posttrain ifeval score` as a user runs it on files in IFEval's official format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from posttrain.eval.ifeval import ACCURACIES, score_files

DATA = Path(__file__).parent / "data" / "ifeval"


def ifeval(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "posttrain", "ifeval", "score", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_score_prints_and_writes_the_four_accuracies(tmp_path) -> None:
    out = tmp_path / "scores"
    done = ifeval(
        "--responses",
        str(DATA / "responses.jsonl"),
        "--data",
        str(DATA / "input_data.jsonl"),
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    expected = score_files(DATA / "responses.jsonl", DATA / "input_data.jsonl")
    assert printed == {name: expected[name] for name in ACCURACIES}
    written = json.loads((out / "results.json").read_text())
    assert written["prompts"] == 53 and written["instructions"] == 57
    assert len(written["by_instruction"]) == 25
    loose = (out / "eval_results_loose.jsonl").read_text().splitlines()
    assert len(loose) == 53 and set(json.loads(loose[0])) == {
        "instruction_id_list",
        "prompt",
        "response",
        "follow_all_instructions",
        "follow_instruction_list",
    }


def test_a_bad_row_is_an_error_naming_file_and_line(tmp_path) -> None:
    bad = tmp_path / "input_data.jsonl"
    bad.write_text(
        json.dumps({"key": 1, "prompt": "p", "instruction_id_list": ["x:y"], "kwargs": [{}]}) + "\n"
    )
    done = ifeval("--responses", str(DATA / "responses.jsonl"), "--data", str(bad))
    assert done.returncode != 0
    assert f"{bad}:1" in done.stderr and "unknown IFEval instruction 'x:y'" in done.stderr
