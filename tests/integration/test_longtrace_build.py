"""`posttrain longtrace build`: LongTraceRL-format splits, a datasets copy and stats."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from posttrain.data.io import read_jsonl
from posttrain.data.longtrace import (
    LongTraceBuildConfig,
    build_longtrace,
    reference_completion,
    sft_rows,
    token_counter,
    tokenizer_corpus,
)
from posttrain.rewards.rubric import make_longtrace_reward


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("longtrace")
    config = LongTraceBuildConfig(
        out=str(out),
        n=24,
        n_test=12,
        hops=[2, 3, 4],
        context_tokens=700,
        eval_settings=["tiered", "random", "oneshot"],
    )
    return out, config, build_longtrace(config)


def test_rows_follow_longtrace_format_with_every_gold_document_in_context(built):
    out, config, _ = built
    count = token_counter(None)
    for split, size in (("train", 24), ("test", 12)):
        rows = read_jsonl(out / f"{split}.jsonl")
        assert len(rows) == size
        for row in rows:
            [message] = row["input_messages"]
            info = row["metadata"]["extra_reward_info"]
            assert message["role"] == "user" and "Documents:" in message["content"]
            assert message["content"].endswith(f"Question: {info['question']}")
            titles = [d["title"] for d in info["documents"]]
            assert all(f"] {title}\n" in message["content"] for title in titles)
            golds = [d["id"] for d in info["documents"] if d["tier"] == "gold"]
            assert sorted(golds) == sorted(info["gold_documents"])
            assert len(info["gold_documents"]) == info["hops"] + 1
            assert {d["tier"] for d in info["documents"]} <= {"gold", "tier1", "tier2"}
            assert len(info["rubrics"]) == info["hops"] - 1
            assert row["label"] and info["distractor_setting"] == "tiered"
            documents = message["content"].split("Documents:\n\n", 1)[1].rsplit("\n\nQuestion:")[0]
            assert count(documents) <= config.context_tokens * 1.05  # separators aside
    train_ids = {r["id"] for r in read_jsonl(out / "train.jsonl")}
    assert not train_ids & {r["id"] for r in read_jsonl(out / "test.jsonl")}


def test_dataset_copy_and_stats(built):
    from datasets import load_from_disk

    out, _, stats = built
    dataset = load_from_disk(str(out / "dataset"))
    assert dataset["train"].num_rows == 24 and dataset["test"].num_rows == 12
    assert dataset["test"][0]["label"] == read_jsonl(out / "test.jsonl")[0]["label"]
    assert json.loads((out / "stats.json").read_text()) == stats
    assert stats["per_hop"] == {"2": 12, "3": 12, "4": 12}
    overlap = stats["distractor_mentions_gold_entity"]
    # Distractors from the agent's trajectory are the confusable ones (the point of tiers).
    assert overlap["tiered"] > overlap["random"] + 0.2
    assert overlap["tiered"] > overlap["oneshot"]


def test_rows_score_with_the_rubric_reward(built):
    out, _, _ = built
    row = read_jsonl(out / "test.jsonl")[0]
    info = row["metadata"]["extra_reward_info"]
    reward = make_longtrace_reward("positive_only", group_size=1)
    chain = " -> ".join([*info["rubrics"], row["label"]])
    completions = [
        f"<think>{chain}</think>{chain}\nAnswer: {row['label']}",
        f"<think>{chain}</think>{chain}\nAnswer: Nobody",  # right chain, wrong answer: 0
    ]
    scores = reward(
        prompts=[row["input_messages"]] * 2,
        completions=completions,
        label=[row["label"]] * 2,
        metadata=[row["metadata"]] * 2,
    )
    assert scores[0] > 0.9 and scores[1] == 0.0


def test_eval_settings_put_the_same_questions_among_other_distractors(built):
    out, _, _ = built
    tiered = read_jsonl(out / "test.jsonl")
    assert read_jsonl(out / "test.tiered.jsonl") == tiered  # the training setting: the same rows
    for setting in ("random", "oneshot"):
        rows = read_jsonl(out / f"test.{setting}.jsonl")
        assert [r["id"] for r in rows] == [r["id"] for r in tiered]
        assert [r["label"] for r in rows] == [r["label"] for r in tiered]
        tiers = {d["tier"] for r in rows for d in r["metadata"]["extra_reward_info"]["documents"]}
        assert tiers == {"gold", setting}


def test_the_reference_completion_earns_full_reward(built):
    out, _, _ = built
    rows = read_jsonl(out / "train.jsonl")
    sft = sft_rows(rows)
    assert sft[0]["prompt"] == rows[0]["input_messages"]
    [message] = sft[0]["completion"]
    assert message["role"] == "assistant"
    assert message["content"] == reference_completion(rows[0])
    assert message["content"].endswith(f"\nAnswer: {rows[0]['label']}")
    reward = make_longtrace_reward("positive_only", group_size=1)
    scores = reward(
        prompts=[r["input_messages"] for r in rows],
        completions=[reference_completion(r) for r in rows],
        label=[r["label"] for r in rows],
        metadata=[r["metadata"] for r in rows],
    )
    assert scores == [1.0] * len(rows)


def test_tokenizer_corpus_holds_documents_and_training_questions_only(built):
    out, config, _ = built
    corpus = "\n".join(tokenizer_corpus(config))
    for row in read_jsonl(out / "train.jsonl")[:5]:
        assert row["metadata"]["extra_reward_info"]["question"] in corpus
    for row in read_jsonl(out / "test.jsonl"):
        assert row["metadata"]["extra_reward_info"]["question"] not in corpus


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--distractors", "nearby"], "distractors"),
        (["--hops", "9"], "hop"),
        (["--eval-settings", "tiered,nearby"], "nearby"),
    ],
)
def test_cli_refuses_bad_settings(tmp_path, flags, message):
    command = [sys.executable, "-m", "posttrain", "longtrace", "build", "--out", str(tmp_path)]
    done = subprocess.run([*command, *flags], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert message in done.stderr.lower()
    assert not (tmp_path / "train.jsonl").exists()


def test_cli_builds_random_distractor_contexts(tmp_path):
    command = [sys.executable, "-m", "posttrain", "longtrace", "build", "--out", str(tmp_path)]
    flags = ["--n", "6", "--n-test", "3", "--hops", "3", "--distractors", "random", "--seed", "4"]
    done = subprocess.run([*command, *flags], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-1500:]
    rows = read_jsonl(tmp_path / "train.jsonl")
    tiers = {d["tier"] for r in rows for d in r["metadata"]["extra_reward_info"]["documents"]}
    assert tiers == {"gold", "random"}
    assert all(r["metadata"]["extra_reward_info"]["hops"] == 3 for r in rows)


def test_the_chain_reader_is_misled_more_by_tiered_than_by_random_distractors(tmp_path):
    from posttrain.eval.longtrace_reader import context_documents, reader_accuracy

    accuracy = {}
    for setting in ("tiered", "random"):
        config = LongTraceBuildConfig(
            out=str(tmp_path / setting), n=0, n_test=60, distractors=setting, seed=1
        )
        build_longtrace(config)
        rows = read_jsonl(tmp_path / setting / "test.jsonl")
        docs = context_documents(rows[0]["input_messages"][0]["content"])
        info = rows[0]["metadata"]["extra_reward_info"]
        assert [d.title for d in docs] == [d["title"] for d in info["documents"]]
        accuracy[setting] = reader_accuracy(rows)["all"]
    # Same 60 questions (same seed), different distractors. Measured with 300 questions:
    # 54% tiered against 86% random; the margin here leaves room for the smaller sample.
    assert accuracy["random"] >= accuracy["tiered"] + 0.1, accuracy
