"""Cluster-first batches of exactly B rows and the mixing of tail samples between neighbours.

SAERL (Tsinghua, 2026; issue 24) builds RL batches cluster-first and mixes "tail samples"
moderately between adjacent batches (moderate mixing beat none and heavy). The paper gives
no formula; the definition below is our reading of that sentence.

Fill: the clusters' rows, each cluster contiguous and in its own order, are laid end to end
and cut into consecutive batches of B (so a batch holds one cluster, or the end of one and
the start of the next).

Mixing with ratio p in [0, 1]: a batch's *tail* is its last half (B // 2 rows) and the next
batch's *head* is its first half. At every boundary between batch b and batch b + 1, the last
m = round(p * (B // 2)) rows of b change places with the first m rows of b + 1. Since
2m <= B the swaps at different boundaries touch different rows, so the result does not
depend on the order they are made in; every batch keeps exactly B rows, every row stays
exactly once, and rows only move between adjacent batches. A middle batch ends up with a
share of about p of its rows from its two neighbours (the first and last batch about p / 2).
Under the curriculum (rows easy to hard inside a batch) the rows exchanged are a batch's
hardest and the next one's easiest, so the step between batches is smoothed.

The presets' values are ours: none = 0, moderate = 0.25, heavy = 0.75.
"""

from __future__ import annotations

from collections.abc import Sequence

from posttrain.errors import InputError

MIXING_PRESETS: dict[str, float] = {"none": 0.0, "moderate": 0.25, "heavy": 0.75}


def mixing_ratio(value: str | float) -> float:
    """A preset name or a number in [0, 1] as the mixing ratio p."""
    if isinstance(value, str):
        if value not in MIXING_PRESETS:
            raise InputError(
                f"{value!r}: a preset ({', '.join(MIXING_PRESETS)}) or a number in [0, 1]",
                key="mixing",
            )
        return MIXING_PRESETS[value]
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InputError(
            f"{value!r}: a preset ({', '.join(MIXING_PRESETS)}) or a number in [0, 1]", key="mixing"
        )
    return float(value)


def check_batch_size(batch_size: int, n_rows: int) -> None:
    """B must be a positive integer dividing the row count (`select` trims the rows to a
    multiple of B first, so that every batch is whole and every row is used once)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"{batch_size!r}: a positive integer", key="batch_size")
    if n_rows < batch_size or n_rows % batch_size:
        raise InputError(
            f"{batch_size}: {n_rows} rows do not make whole batches of {batch_size}",
            key="batch_size",
        )


def fill_cluster_first(groups: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """Consecutive batches of `batch_size` from the groups (clusters) laid end to end."""
    flat = [row for group in groups for row in group]
    check_batch_size(batch_size, len(flat))
    return [flat[start : start + batch_size] for start in range(0, len(flat), batch_size)]


def exchanged_rows(batch_size: int, p: float) -> int:
    """m: how many tail rows each boundary exchanges at ratio p (round half up)."""
    return int(p * (batch_size // 2) + 0.5)


def mix_tails(batches: Sequence[Sequence[int]], p: float | str) -> list[list[int]]:
    """The batches after exchanging m = round(p * (B // 2)) rows at every boundary between
    neighbours: the last m of batch b with the first m of batch b + 1 (see the module doc)."""
    p = mixing_ratio(p)
    mixed = [list(batch) for batch in batches]
    if not mixed:
        return mixed
    size = len(mixed[0])
    if any(len(batch) != size for batch in mixed):
        raise ValueError("mix_tails needs batches of one size")
    m = exchanged_rows(size, p)
    if m == 0:
        return mixed
    for before, after in zip(mixed, mixed[1:], strict=False):
        tail, head = before[size - m :], after[:m]
        before[size - m :], after[:m] = head, tail
    return mixed
