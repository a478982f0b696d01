"""Prompt datasets for RL: rows with a `prompt` column plus any columns rewards read.

`PromptStream` yields rows in a seeded order that reshuffles every epoch and is fully
determined by (seed, rows consumed), so a resumed run sees exactly the rows it would have.
With `order="as_written"` it yields the rows in the file's order instead, the same every
epoch: the way a selection stage's ordered batches (`posttrain.data.selection`) reach RL.
"""

from __future__ import annotations

import random
from typing import Any, Literal

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


PROMPT_ORDERS = ("shuffle", "as_written")


class PromptStream:
    """An endless stream of rows with a resumable position: seeded and reshuffled every epoch
    (`shuffle`), or the rows' own order every epoch (`as_written`, so `take(B)` returns the
    file's consecutive batches of B when its length is a multiple of B)."""

    def __init__(
        self,
        rows: list[dict[str, Any]],
        seed: int,
        consumed: int = 0,
        order: Literal["shuffle", "as_written"] = "shuffle",
    ) -> None:
        if not rows:
            raise ValueError("no prompt rows")
        if order not in PROMPT_ORDERS:
            raise ValueError(f"data.order: {order!r}: one of {', '.join(PROMPT_ORDERS)}")
        self.rows = rows
        self.seed = seed
        self.consumed = consumed
        self.order = order
        self._epoch = -1
        self._order: list[int] = []

    def _order_for(self, epoch: int) -> list[int]:
        if epoch != self._epoch:
            self._order = list(range(len(self.rows)))
            if self.order == "shuffle":
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
