"""Held-out accuracy of any `ChatModel` on rows with a chat `prompt` and a reference `answer`.

Correctness is the `exact_match` reward itself, so an evaluation scores answers exactly as
RL training rewards them.
"""

from __future__ import annotations

from typing import Any

from posttrain.models.chat.base import ChatModel, GenerationParams
from posttrain.rewards.builtin import exact_match


def exact_match_accuracy(
    model: ChatModel, rows: list[dict[str, Any]], params: GenerationParams | None = None
) -> tuple[float, list[dict[str, Any]]]:
    """Greedy answers scored by the `exact_match` reward; returns accuracy and per-row records."""
    if not rows:
        raise ValueError("no rows to evaluate")
    params = params or GenerationParams(max_tokens=16)
    results = model.chat([row["prompt"] for row in rows], params)
    texts = [result.text for result in results]
    scores = exact_match(
        [row["prompt"] for row in rows], texts, answer=[row["answer"] for row in rows]
    )
    records = [
        {
            "prompt": row["prompt"][-1]["content"],
            "answer": row["answer"],
            "response": text,
            "correct": score == 1.0,
            "model": result.model,
        }
        for row, text, score, result in zip(rows, texts, scores, results, strict=True)
    ]
    return sum(r["correct"] for r in records) / len(records), records
