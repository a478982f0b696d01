"""Held-out evaluation of a policy on LongTraceRL rows: accuracy and rubric recall, by hop.

Correctness is the `longtrace_outcome` reward and recall the `longtrace_rubric_recall`
metric, so a policy is judged exactly as RL rewarded it. Recall is reported among correct
answers, as LongTraceRL does: a right answer reached through the wrong entities is what the
rubric reward is meant to discourage. Any `ChatModel` works (a local `HFChat` or a served
model through `OpenAIChat`).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

from posttrain.models.chat.base import ChatModel, GenerationParams
from posttrain.rewards.rubric import longtrace_outcome, longtrace_rubric_recall


def score_responses(rows: list[dict[str, Any]], responses: list[str]) -> list[dict[str, Any]]:
    """One record per row: its hop count and setting, the response, correct and recall."""
    if len(rows) != len(responses):
        raise ValueError(f"{len(responses)} responses for {len(rows)} rows")
    columns = {
        "prompts": [row["input_messages"] for row in rows],
        "completions": responses,
        "label": [row["label"] for row in rows],
        "metadata": [row["metadata"] for row in rows],
    }
    correct = longtrace_outcome(**columns)
    recall = longtrace_rubric_recall(**columns)
    records = []
    for row, text, o, r in zip(rows, responses, correct, recall, strict=True):
        info = row["metadata"]["extra_reward_info"]
        records.append(
            {
                "id": row.get("id"),
                "hops": info["hops"],
                "setting": info["distractor_setting"],
                "label": row["label"],
                "response": text,
                "correct": bool(o),
                "rubric_recall": r,
            }
        )
    return records


def summarise(records: list[dict[str, Any]]) -> dict[str, dict[str, float | int | None]]:
    """Accuracy, rubric recall among correct answers and counts: overall and per hop count."""
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        groups["all"].append(record)
        groups[f"hops={record['hops']}"].append(record)
    summary = {}
    for key in sorted(groups, key=lambda k: (k != "all", k)):
        chosen = groups[key]
        recalls = [
            r["rubric_recall"] for r in chosen if r["correct"] and r["rubric_recall"] is not None
        ]
        summary[key] = {
            "n": len(chosen),
            "accuracy": sum(r["correct"] for r in chosen) / len(chosen),
            "rubric_recall_correct": statistics.fmean(recalls) if recalls else None,
        }
    return summary


def evaluate_policy(
    model: ChatModel, rows: list[dict[str, Any]], max_tokens: int = 32
) -> tuple[dict[str, dict[str, float | int | None]], list[dict[str, Any]]]:
    """Greedy answers to every row; returns the summary and the per-row records."""
    if not rows:
        raise ValueError("no rows to evaluate")
    params = GenerationParams(max_tokens=max_tokens, temperature=0.0)
    results = model.chat([row["input_messages"] for row in rows], params)
    records = score_responses(rows, [result.text for result in results])
    return summarise(records), records


def mean_over_seeds(
    summaries: list[dict[str, dict[str, float | int | None]]],
) -> dict[str, dict[str, float | int | None]]:
    """Per key and metric, the mean over seeds and (with 2 or more) the sample std."""
    merged: dict[str, dict[str, float | int | None]] = {}
    for key in summaries[0]:
        entry: dict[str, float | int | None] = {
            "n": summaries[0][key]["n"],
            "seeds": len(summaries),
        }
        for metric in ("accuracy", "rubric_recall_correct"):
            values = [s[key][metric] for s in summaries if s.get(key, {}).get(metric) is not None]
            entry[metric] = statistics.fmean(values) if values else None
            entry[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else None
        merged[key] = entry
    return merged
