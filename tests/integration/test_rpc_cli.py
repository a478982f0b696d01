"""`posttrain rpc` as a user runs it: answer, judge, score and consistency on a data slice
(3 papers of RPC-Bench's test split and its consistency demo), with the scripted answerer and
the lexical proxy judge, including resume after a crash."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).parent / "data" / "rpc-bench"
SLICE = DATA / "test.jsonl"


def rpc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "posttrain", "rpc", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_answer_judge_score_with_resume(tmp_path):
    out = tmp_path / "run"
    done = rpc("answer", "--data", str(SLICE), "--out", str(out))
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary == {
        "model": "scripted:rpc-extractive",
        "protocol": "posttrain",
        "items": 25,
        "new": 25,
        "claim_invalid": 0,
        "answers": str(out / "answers.jsonl"),
    }
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    claims = [a for a in answers if a["category"] == "Claim_Verification"]
    assert len(claims) == 7 and {a["answer"] for a in claims} <= {"True", "False"}
    assert all(a["model"] == "scripted:rpc-extractive" for a in answers)

    # A crash mid-write: 10 whole lines and a torn one. The rerun answers only what is missing.
    lines = (out / "answers.jsonl").read_text().splitlines()
    (out / "answers.jsonl").write_text("\n".join(lines[:10]) + "\n" + lines[10][:25])
    again = rpc("answer", "--data", str(SLICE), "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["new"] == 15
    assert json.loads(rpc("answer", "--data", str(SLICE), "--out", str(out)).stdout)["new"] == 0
    resumed = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert sorted(map(json.dumps, resumed)) == sorted(map(json.dumps, answers))

    judged = rpc("judge", "--answers", str(out))
    assert judged.returncode == 0, judged.stderr
    [(name, info)] = json.loads(judged.stdout).items()
    assert name == "scripted:rpc-lexical-judge"
    assert info["label"] == "lexical proxy judge (not an LLM)"
    assert info["judged"] == 18 and info["new"] == 18 and info["failed_dimensions"] == 0
    assert json.loads(rpc("judge", "--answers", str(out)).stdout)[name]["new"] == 0
    record = json.loads(Path(info["file"]).read_text().splitlines()[0])
    assert {"id", "part_idx", "predicted_answer", "score"} <= set(record)  # RPC-Bench's fields

    scored = rpc("score", str(out))
    assert scored.returncode == 0, scored.stderr
    assert "lexical proxy judge (not an LLM)" in scored.stdout
    scores = json.loads((out / "scores.json").read_text())
    assert scores["model"] == "scripted:rpc-extractive"
    assert scores["protocol"] == "posttrain"
    assert json.loads((out / "run.json").read_text())["protocol"] == "posttrain"
    assert scores["judge_labels"] == {name: "lexical proxy judge (not an LLM)"}
    assert 0 < scores["correctness"] <= 100 and 0 < scores["completeness"] <= 100
    cor, com = scores["correctness"], scores["completeness"]
    assert abs(scores["f1"] - 2 * cor * com / (cor + com)) < 1e-9
    assert scores["claim_items"] == 7
    categories = scores["categories"]
    assert sum(row["items"] for row in categories.values()) == 25
    assert "accuracy" in categories["Claim_Verification"]
    assert (out / "scores_by_category.png").stat().st_size > 1000
    assert "Claim_Verification" in (out / "report.html").read_text()


def test_consistency_reproduces_the_demo(tmp_path):
    demo = DATA / "consistency"
    out = tmp_path / "consistency.json"
    done = rpc(
        "consistency",
        "--pairwise",
        str(demo / "pairwise_demo.json"),
        "--judges",
        str(demo / "Model_A"),
        "--judges",
        str(demo / "Model_B"),
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert "0.6387" in done.stdout and "0.6374" in done.stdout
    judges = json.loads(out.read_text())["judges"]
    assert round(judges["Model_A"]["avg"], 4) == 0.6851
    assert round(judges["Model_B"]["Pairwise_auc"], 4) == 0.5


def test_bad_input_is_named_and_outputs_are_kept(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(SLICE.read_text().splitlines()[0] + "\n{oops\n")
    done = rpc("answer", "--data", str(bad), "--out", str(tmp_path / "x"))
    assert done.returncode == 2 and f"{bad}:2: not valid JSON" in done.stderr
    assert not (tmp_path / "x").exists()

    out = tmp_path / "run"
    assert rpc("answer", "--data", str(SLICE), "--out", str(out), "--limit", "3").returncode == 0
    other = rpc("answer", "--data", str(SLICE), "--out", str(out), "--model", "scripted:echo")
    assert (
        other.returncode == 2
        and "already holds answers of 'scripted:rpc-extractive'" in other.stderr
    )
    assert len((out / "answers.jsonl").read_text().splitlines()) == 3
    # a folder made before protocols were recorded is a posttrain one, and resumes
    from posttrain.eval.rpc import commands

    run = json.loads((out / "run.json").read_text())
    del run["protocol"], run["rpc_bench"]
    (out / "run.json").write_text(json.dumps(run))
    assert commands.answer(SLICE, "scripted:rpc-extractive", out, limit=3)["new"] == 0
    missing = rpc("score", str(tmp_path / "empty"))
    assert missing.returncode == 2 and "run `posttrain rpc answer`" in missing.stderr


def test_a_local_model_directory_answers_too(tmp_path):
    """The same command with a Hugging Face model directory (a tiny Qwen2 built here)."""
    from posttrain.models.tiny import build_tiny_model

    texts = [line[:2000] for line in SLICE.read_text().splitlines()]
    model_dir = build_tiny_model(tmp_path / "m", texts, size="nano", max_positions=4096, seed=0)
    out = tmp_path / "run"
    args = ("--data", str(SLICE), "--model", str(model_dir), "--out", str(out), "--limit", "2")
    done = rpc("answer", *args, "--max-tokens", "4", "--batch-size", "2")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["items"] == 2 and summary["new"] == 2
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert all(a["model"] == summary["model"] != "" for a in answers)
    assert all(len(a["answer"]) <= 3000 for a in answers)


def test_remote_answerer_and_judge_calls_are_paid_once(tmp_path):
    """Through a real OpenAI-compatible server: a rerun after the result files are lost asks
    the server nothing, because every call is in the response cache."""
    import httpx

    from posttrain.models.server_process import ServerProcess

    server = ServerProcess(
        [sys.executable, str(Path(__file__).with_name("flaky_server.py"))], ready_path="/health"
    ).start()
    try:

        def requests() -> int:
            return stats()["chat_requests"]

        def stats() -> dict:
            return httpx.get(server.url + "/stats", timeout=5).json()

        spec = f"openai:echo@{server.base_url}"
        out = tmp_path / "remote"
        answered = rpc("answer", "--data", str(SLICE), "--model", spec, "--out", str(out))
        assert answered.returncode == 0, answered.stderr
        judged = rpc("judge", "--answers", str(out), "--judge", spec, "--max-retries", "1")
        assert judged.returncode == 0, judged.stderr
        paid = requests()
        # the echo server repeats the prompt: no rating can be read, so each of the 18
        # non-claim items costs 3 dimensions x (1 call + 1 retry) on top of 25 answers
        assert paid == 25 + 18 * 3 * 2
        # the re-asks reached the server because they carry a seed, so the response cache
        # (keyed on the whole request) does not hand back the unreadable first reply
        assert stats()["seeds"] == {"none": 25 + 18 * 3, "1": 18 * 3}
        for result in [out / "answers.jsonl", *(out / "judgments").glob("*.jsonl")]:
            result.unlink()
        again = rpc("answer", "--data", str(SLICE), "--model", spec, "--out", str(out))
        assert again.returncode == 0 and json.loads(again.stdout)["new"] == 25
        rejudged = rpc("judge", "--answers", str(out), "--judge", spec, "--max-retries", "1")
        assert rejudged.returncode == 0, rejudged.stderr
        assert requests() == paid
    finally:
        server.stop()


def test_official_protocol_then_judge_output_feeds_consistency(tmp_path, rpc_bench_checkout):
    """`--protocol official` reads RPC-Bench's prompts and papers from a checkout; `rpc export`
    turns two models' judgments into score files that `rpc consistency` reads."""
    from posttrain.eval.rpc import commands

    checkout = rpc_bench_checkout
    split = checkout / "benchmark" / "test.json"
    official = ("--protocol", "official", "--rpc-bench", str(checkout))
    out = tmp_path / "extractive"
    done = rpc("answer", "--data", str(split), "--out", str(out), *official)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["protocol"] == "official"
    run = json.loads((out / "run.json").read_text())
    assert run["protocol"] == "official" and run["rpc_bench"] == str(checkout.resolve())
    assert run["papers"] == str((checkout / "benchmark" / "md" / "test").resolve())
    mixed = rpc("answer", "--data", str(split), "--out", str(out))
    assert mixed.returncode == 2 and "(protocol official)" in mixed.stderr

    echo = tmp_path / "echo"
    commands.answer(split, "scripted:echo", echo, protocol="official", rpc_bench=checkout)
    claims = [
        json.loads(line)
        for line in (echo / "answers.jsonl").read_text().splitlines()
        if '"Claim_Verification"' in line
    ]
    assert [c["claim_invalid"] for c in claims] == [True]  # the echo is not exactly True/False
    for folder, name in ((out, "alpha"), (echo, "beta")):
        [info] = commands.judge(folder, ["scripted:rpc-lexical-judge"]).values()
        assert info["protocol"] == "official" and info["failed_dimensions"] == 0
        assert commands.score(folder)["protocol"] == "official"
        exported = commands.export(folder, tmp_path / "scores", name)
        [path] = exported["files"].values()
        rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
        assert len(rows) == 6 and set(rows[0]) == {
            "id", "part_idx", "question", "reference_answer", "predicted_answer", "category",
            "score",
        }  # fmt: skip
    judge_dir = tmp_path / "scores" / "scripted-rpc-lexical-judge"
    assert sorted(p.name for p in judge_dir.iterdir()) == ["alpha_score.json", "beta_score.json"]
    pairwise = tmp_path / "pairwise.jsonl"
    prefs = [("alpha", "beta", "alpha"), ("beta", "alpha", "alpha"), ("alpha", "beta", "beta")]
    pairwise.write_text(
        "".join(
            json.dumps({"id": "rzQGHXNReU", "part_idx": i + 1, "file_a": a, "file_b": b,
                        "better": better}) + "\n"
            for i, (a, b, better) in enumerate(prefs)
        )
    )  # fmt: skip
    table = rpc("consistency", "--pairwise", str(pairwise), "--judges", str(judge_dir))
    assert table.returncode == 0, table.stderr
    assert "scripted-rpc-lexical-judge" in table.stdout
    bad = rpc("export", str(out), "--out", str(tmp_path / "x"), "--name", "a_b")
    assert bad.returncode == 2 and "without '_'" in bad.stderr
