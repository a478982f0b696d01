"""`posttrain rm train` as a user runs it: preference pairs in the layouts people have in,
a reward-model directory out, bad rows named by file and row."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from posttrain.cli import app
from posttrain.data.io import write_jsonl
from posttrain.rewards.reward_model import RewardModel

TINY = ["--set", "model_size=nano", "--set", "vocab_size=128", "--set", "batch_size=2"]
FRUITS = ["apple", "pear", "plum", "fig", "lime", "kiwi"]


def plain_pairs() -> list[dict]:
    return [
        {"prompt": f"Name fruit {k}.", "chosen": f"A {fruit} is a fruit.", "rejected": "No."}
        for k, fruit in enumerate(FRUITS)
    ]


def conversational_pairs() -> list[dict]:
    return [
        {
            "prompt": [{"role": "user", "content": row["prompt"]}],
            "chosen": [{"role": "assistant", "content": row["chosen"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]}],
        }
        for row in plain_pairs()
    ]


def rm_train(*args: str):
    return CliRunner().invoke(app, ["rm", "train", *args])


def test_trains_on_plain_jsonl_and_conversational_parquet(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "plain.jsonl", plain_pairs())
    pq.write_table(pa.Table.from_pylist(conversational_pairs()), tmp_path / "chat.parquet")
    for name, data in (("plain", "plain.jsonl"), ("chat", "chat.parquet")):
        out = tmp_path / name
        done = rm_train(
            "--data", str(tmp_path / data), "--eval-data", str(tmp_path / data),
            "--out", str(out), "--set", "steps=2", *TINY,
        )  # fmt: skip
        assert done.exit_code == 0, done.output
        assert f"model: {out / 'final'}" in done.output
        summary = json.loads((out / "final" / "reward_model.json").read_text())
        assert summary["steps"] == 2 and summary["n_train"] == len(FRUITS)
        assert "eval_accuracy" in summary and summary["config"]["train_file"].endswith(data)
        metrics = (out / "metrics.jsonl").read_text().splitlines()
        assert any("rm_loss" in json.loads(line) for line in metrics)
        (score,) = RewardModel(out / "final").score(["Name a fruit."], ["A fig is a fruit."])
        assert isinstance(score, float)


def test_config_file_and_bad_rows(tmp_path: Path) -> None:
    config = tmp_path / "rm.yaml"
    config.write_text(f"train_file: {tmp_path / 'pairs.jsonl'}\nsteps: 1\n")
    rows = plain_pairs()
    write_jsonl(tmp_path / "pairs.jsonl", [*rows[:2], {"prompt": "p", "chosen": "c"}])
    done = rm_train("--config", str(config), "--out", str(tmp_path / "out"), *TINY)
    assert done.exit_code == 2
    assert f"{tmp_path / 'pairs.jsonl'}: row 3 has no 'rejected' field" in done.output
    assert not (tmp_path / "out" / "final").exists()

    done = rm_train("--out", str(tmp_path / "out"), *TINY)
    assert done.exit_code == 2 and "no training pairs: pass --data" in done.output
    done = rm_train("--data", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o"))
    assert done.exit_code == 2 and "missing.jsonl: file not found" in done.output
