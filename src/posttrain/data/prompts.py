"""Prompt datasets for RL: rows with a `prompt` column plus any columns rewards read.

`PromptStream` yields rows in a seeded order that reshuffles every epoch and is fully
determined by (seed, rows consumed), so a resumed run sees exactly the rows it would have.
"""

from __future__ import annotations

import random
from typing import Any

from posttrain.data.arithmetic import ArithmeticTask, make_splits
from posttrain.data.io import DataError, read_records, require_columns


def load_prompt_rows(
    path: str | None, prompt_column: str = "prompt", split: str = "train"
) -> list[dict[str, Any]]:
    """Rows from a file or dataset dir; None means the embedded arithmetic task."""
    if path is None:
        train, test = make_splits(ArithmeticTask())
        rows = train if split == "train" else test
        return [{"prompt": r["prompt"], "answer": r["answer"]} for r in rows]
    rows = read_records(path)
    if not rows:
        raise DataError("no rows", path)
    require_columns(rows, [prompt_column], str(path))
    return rows


class PromptStream:
    """An endless, seeded, epoch-shuffled stream of rows with a resumable position."""

    def __init__(self, rows: list[dict[str, Any]], seed: int, consumed: int = 0) -> None:
        if not rows:
            raise ValueError("no prompt rows")
        self.rows = rows
        self.seed = seed
        self.consumed = consumed
        self._epoch = -1
        self._order: list[int] = []

    def _order_for(self, epoch: int) -> list[int]:
        if epoch != self._epoch:
            self._order = list(range(len(self.rows)))
            random.Random(self.seed * 100_003 + epoch).shuffle(self._order)
            self._epoch = epoch
        return self._order

    def take(self, count: int) -> list[dict[str, Any]]:
        batch = []
        for _ in range(count):
            epoch, index = divmod(self.consumed, len(self.rows))
            batch.append(self.rows[self._order_for(epoch)[index]])
            self.consumed += 1
        return batch
