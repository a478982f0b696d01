"""`posttrain longtrace build`: LongTraceRL-format splits, a datasets copy and stats."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from posttrain.data.distractors import distractor_overlap
from posttrain.data.io import read_jsonl, write_jsonl
from posttrain.data.longtrace import (
    LongTraceBuildConfig,
    WorldSettings,
    _prompt_documents,
    _stats,
    build_longtrace,
    format_prompt,
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
    # Same 60 questions (same seed), different distractors. Measured with 300 questions
    # (seed 0): 49% tiered against 96% random; the margin leaves room for the smaller sample.
    assert accuracy["random"] >= accuracy["tiered"] + 0.1, accuracy


def _chain_facts(rows):
    """Linked entity pairs along each row's chain, read from the rows (any direction)."""
    found = set()
    for row in rows:
        chain = [
            d.removeprefix("doc:") for d in row["metadata"]["extra_reward_info"]["gold_documents"]
        ]
        found |= {frozenset(pair) for pair in zip(chain, chain[1:], strict=False)}
    return found


def _assert_disjoint(out, stats):
    train, test = read_jsonl(out / "train.jsonl"), read_jsonl(out / "test.jsonl")
    prefixed = {frozenset("doc:" + e for e in pair) for pair in _chain_facts(test)}
    assert not _chain_facts(train) & _chain_facts(test)
    assert not {r["label"].lower() for r in train} & {r["label"].lower() for r in test}
    overlap = stats["split_overlap"]
    assert overlap["facts_shared"] == 0 and overlap["answers_shared"] == 0
    assert overlap["held_out_facts"] == len(prefixed)
    assert overlap["held_out_answers"] == len({r["label"].casefold() for r in test})


def test_the_default_build_holds_out_facts_and_answers(tmp_path):
    stats = build_longtrace(LongTraceBuildConfig(out=str(tmp_path)))
    assert stats["questions"] == {"train": 200, "test": 100}
    _assert_disjoint(tmp_path, stats)
    assert stats["split_overlap"]["entities_shared"] > 0  # information: entities may recur


def test_a_small_world_holds_out_too_or_says_how_many_questions_it_has(tmp_path):
    world = WorldSettings(countries=3, cities_per_country=3, people=40, organisations=8, works=10)
    config = LongTraceBuildConfig(out=str(tmp_path / "ok"), n=20, n_test=10, world=world)
    _assert_disjoint(tmp_path / "ok", build_longtrace(config))
    too_many = LongTraceBuildConfig(out=str(tmp_path / "no"), n=2000, n_test=10, world=world)
    with pytest.raises(ValueError, match=r"found only \d+ of 2000 training questions"):
        build_longtrace(too_many)
    assert not (tmp_path / "no" / "train.jsonl").exists()


def test_stats_are_read_from_the_files_written(built, tmp_path):
    from posttrain.eval.longtrace_reader import context_documents

    out, config, stats = built
    # An independent count: documents parsed from each prompt by the reader's parser.
    for name in ("train.jsonl", "test.jsonl", "test.random.jsonl", "test.oneshot.jsonl"):
        hits = []
        for row in read_jsonl(out / name):
            info = row["metadata"]["extra_reward_info"]
            titles = {d["id"]: d["title"] for d in info["documents"]}
            names = [titles[info["gold_documents"][0]], *info["rubrics"], row["label"]]
            for doc, listed in zip(
                context_documents(row["input_messages"][0]["content"]),
                info["documents"],
                strict=True,
            ):
                if listed["tier"] != "gold":
                    hits.append(distractor_overlap([doc], names))
        setting = "tiered" if name in ("train.jsonl", "test.jsonl") else name.split(".")[1]
        assert stats["distractor_mentions_gold_entity_by_file"][name][setting] == pytest.approx(
            sum(hits) / len(hits)
        )
    # Change the written files: the stats follow them (a held-out row copied into training).
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in ("test.jsonl", "test.tiered.jsonl", "test.random.jsonl", "test.oneshot.jsonl"):
        (copy / name).write_text((out / name).read_text())
    test = read_jsonl(out / "test.jsonl")
    write_jsonl(copy / "train.jsonl", [*read_jsonl(out / "train.jsonl"), test[0]])
    changed = _stats(copy, config)
    assert changed["questions"] == {"train": 25, "test": 12}
    assert changed["split_overlap"]["answers_shared"] == 1
    assert (
        changed["split_overlap"]["facts_shared"] == test[0]["metadata"]["extra_reward_info"]["hops"]
    )


def test_stats_read_each_document_whole_even_with_numbered_lines_inside():
    from posttrain.data.kg import Document

    docs = [
        Document("doc:a", "a", "Ana", "Ana was born in Toru.\n\n[2] See the register of Toru."),
        Document("doc:b", "b", "Bo", "Bo lives in Toru."),
    ]
    listed = [{"id": d.id, "title": d.title, "tier": "gold"} for d in docs]
    record = {
        "id": "q",
        "input_messages": [{"role": "user", "content": format_prompt("Who?", docs)}],
        "metadata": {"extra_reward_info": {"documents": listed}},
    }
    assert [d.text for d in _prompt_documents(record)] == [d.text for d in docs]
