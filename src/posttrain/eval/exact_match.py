"""Held-out accuracy of any `ChatModel` on rows with a chat `prompt` and a reference `answer`."""

from __future__ import annotations

from typing import Any

from posttrain.models.chat.base import ChatModel, GenerationParams


def normalise(text: str) -> str:
    return " ".join(text.strip().lower().split())


def exact_match_accuracy(
    model: ChatModel, rows: list[dict[str, Any]], params: GenerationParams | None = None
) -> tuple[float, list[dict[str, Any]]]:
    """Greedy answers compared to `answer` after whitespace and case normalisation."""
    if not rows:
        raise ValueError("no rows to evaluate")
    params = params or GenerationParams(max_tokens=16)
    results = model.chat([row["prompt"] for row in rows], params)
    records = []
    for row, result in zip(rows, results, strict=True):
        correct = normalise(result.text) == normalise(str(row["answer"]))
        records.append(
            {
                "prompt": row["prompt"][-1]["content"],
                "answer": row["answer"],
                "response": result.text,
                "correct": correct,
                "model": result.model,
            }
        )
    return sum(r["correct"] for r in records) / len(records), records
