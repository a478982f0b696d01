"""`posttrain rm-bench` as a user runs it: a StoryRMB-format file in, results.json out."""

import json
import subprocess
import sys

from posttrain.data.io import write_jsonl


def rm_bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "posttrain", "rm-bench", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_scores_a_file_and_names_bad_input(tmp_path):
    data = tmp_path / "bench.jsonl"
    rows = [
        {
            "id": k,
            "prompt": "Write a story.",
            "chosen": "a long and careful story " * (2 if k % 3 else 1),
            "rejected": ["short", "a long and careful story", "tiny tale"],
            "dimension": "coherence" if k % 2 else "fluency",
        }
        for k in range(12)
    ]
    write_jsonl(data, rows)
    out = tmp_path / "out"
    done = rm_bench("--data", str(data), "--scorer", "length", "--out", str(out))
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert json.loads(done.stdout) == results
    # Chosen twice as long in 8 instances; tied with a rejected one (half credit) in 4.
    assert results["accuracy"] == (8 + 4 * 0.5) / 12 and results["ties_at_top"] == 4
    assert set(results["per_dimension"]) == {"coherence", "fluency"}
    assert len((out / "scores.jsonl").read_text().splitlines()) == 12

    write_jsonl(data, [*rows[:2], {"id": "x", "prompt": "p", "chosen": "c", "rejected": "r"}])
    done = rm_bench("--data", str(data), "--scorer", "length", "--out", str(out))
    assert done.returncode == 2 and "bench.jsonl: instance 3" in done.stderr
    write_jsonl(data, rows)
    done = rm_bench("--data", str(data), "--scorer", str(tmp_path / "nowhere"), "--out", str(out))
    assert done.returncode == 2 and "no such directory" in done.stderr
