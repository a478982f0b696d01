"""`posttrain rm-bench` as a user runs it: a StoryRMB-format file in, results.json out."""

import json
import math
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


def test_scores_rewardbench2_parquet_per_subset(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    def row(id_, subset, chosen, rejected):
        return {
            "id": id_,
            "prompt": "Answer the question.",
            "chosen": chosen,
            "rejected": rejected,
            "num_correct": len(chosen),
            "num_incorrect": len(rejected),
            "total_completions": len(chosen) + len(rejected),
            "models": ["a"] * (len(chosen) + len(rejected)),
            "subset": subset,
        }

    long, mid = "a long careful answer", "a short answer"
    rows = [
        row("0", "Focus", [long], [mid, "no", "nah"]),  # longest chosen: 1
        row("1", "Focus", [mid], [long, "no", "x"]),  # 0
        row("2", "Precise IF", [mid], [mid, "no", "x"]),  # tied at the top with one: 1/2
        row("ref:3", "Ties", [long], ["no", "nah"]),
        row("tied:3", "Ties", [long, long + " indeed"], ["no", "nah"]),
    ]
    data = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(rows), data)
    out = tmp_path / "out"
    done = rm_bench("--data", str(data), "--scorer", "length", "--out", str(out))
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    subsets = results["per_subset"]
    assert subsets["Focus"]["score"] == 0.5 and subsets["Precise IF"]["score"] == 0.5
    # Both Ties prompts right; the tied pair's answers are 1 word apart, 3 words from the
    # best wrong one: 0.3 + 0.3 + 0.2 + 0.2 + 0.01 * tanh(3 / 1 - 1).
    assert subsets["Ties"]["accuracy"] == 1.0
    assert abs(subsets["Ties"]["score"] - (1.0 + 0.01 * math.tanh(2))) < 1e-9
    assert results["mean_subset_score"] == (0.5 + 0.5 + subsets["Ties"]["score"]) / 3

    rows[1].update(chosen=[mid, long], num_correct=2)
    pq.write_table(pa.Table.from_pylist(rows), data)
    done = rm_bench("--data", str(data), "--scorer", "length", "--out", str(out))
    assert done.returncode == 2
    assert "test-00000-of-00001.parquet: instance 2: 2 chosen responses" in done.stderr
