"""Cluster-first batches, tail mixing and the curriculum order (posttrain.data.selection)."""

from __future__ import annotations

import numpy as np
import pytest

from posttrain.data.selection.batches import (
    MIXING_PRESETS,
    exchanged_rows,
    fill_cluster_first,
    mix_tails,
    mixing_ratio,
)
from posttrain.data.selection.curriculum import interleave, ordered_batches, within_cluster_order
from posttrain.errors import InputError


def test_mixing_presets_and_numbers():
    assert [mixing_ratio(name) for name in ("none", "moderate", "heavy")] == [0.0, 0.25, 0.75]
    assert mixing_ratio(0.4) == 0.4 and mixing_ratio(1) == 1.0
    assert set(MIXING_PRESETS) == {"none", "moderate", "heavy"}


@pytest.mark.parametrize("value", ["wild", 1.5, -0.1, True, None])
def test_a_bad_mixing_value_names_the_option(value):
    with pytest.raises(InputError, match="mixing"):
        mixing_ratio(value)


def test_fill_keeps_each_cluster_contiguous_in_whole_batches():
    groups = [[5, 1, 9], [0, 2, 3, 4, 6], [7, 8, 10, 11]]
    batches = fill_cluster_first(groups, 4)
    assert batches == [[5, 1, 9, 0], [2, 3, 4, 6], [7, 8, 10, 11]]
    with pytest.raises(InputError, match="batch_size: 5: 12 rows do not make whole batches"):
        fill_cluster_first(groups, 5)
    with pytest.raises(InputError, match="batch_size"):
        fill_cluster_first(groups, 0)


def test_full_mixing_swaps_tail_halves_with_next_heads_by_hand():
    batches = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    # m = 1 * (4 // 2) = 2: batch 0's [2, 3] <-> batch 1's [4, 5]; batch 1's [6, 7] <-> [8, 9].
    assert mix_tails(batches, 1.0) == [[0, 1, 4, 5], [2, 3, 8, 9], [6, 7, 10, 11]]
    assert mix_tails(batches, "none") == batches
    assert batches[0] == [0, 1, 2, 3]  # the input is left as it was


def test_exchanged_rows_per_preset_for_a_batch_of_16():
    assert [exchanged_rows(16, MIXING_PRESETS[name]) for name in MIXING_PRESETS] == [0, 2, 6]
    assert exchanged_rows(16, 1.0) == 8 and exchanged_rows(1, 1.0) == 0


@pytest.mark.parametrize("size, count, p", [(16, 7, 0.25), (16, 5, 0.75), (5, 6, 1.0), (2, 3, 0.5)])
def test_mixing_keeps_every_row_once_and_moves_rows_one_batch_at_most(size, count, p):
    batches = [list(range(b * size, (b + 1) * size)) for b in range(count)]
    mixed = mix_tails(batches, p)
    assert all(len(batch) == size for batch in mixed)
    assert sorted(row for batch in mixed for row in batch) == list(range(size * count))
    m = exchanged_rows(size, p)
    for b, batch in enumerate(mixed):
        homes = [row // size for row in batch]
        assert all(abs(home - b) <= 1 for home in homes)
        foreign = sum(home != b for home in homes)
        neighbours = (b > 0) + (b < count - 1)
        assert foreign == m * neighbours  # a middle batch: a share of about p is foreign


def test_within_cluster_order_is_easy_to_hard_or_a_seeded_shuffle():
    ids = np.array([1, 0, 1, 0, 1, 0])
    difficulty = np.array([0.9, 0.5, 0.1, 0.2, 0.5, 0.7])
    rows = np.arange(6)
    assert within_cluster_order(rows, ids, difficulty, seed=0) == [[3, 1, 5], [2, 4, 0]]
    shuffled = within_cluster_order(rows, ids, None, seed=3)
    assert shuffled == within_cluster_order(rows, ids, None, seed=3)
    assert [sorted(group) for group in shuffled] == [[1, 3, 5], [0, 2, 4]]
    # Only the rows asked for (the kept ones) are ordered.
    assert within_cluster_order(np.array([0, 3, 4]), ids, difficulty, 0) == [[3], [4, 0]]


def test_interleave_merges_cluster_batches_by_progress_then_packs_leftovers():
    a, b, c, d = list(range(8)), list(range(10, 14)), list(range(20, 26)), [30, 31]
    # Whole batches at (j + 1/2) / q: a 0.25, 0.75; b 0.5; c 0.5; d none (2 rows left).
    batches = interleave([a, b, c, d], 4)
    assert batches == [
        [0, 1, 2, 3],
        [10, 11, 12, 13],
        [20, 21, 22, 23],
        [4, 5, 6, 7],
        [24, 25, 30, 31],
    ]


def test_ordered_batches_go_easy_to_hard_with_clusters_interleaved():
    rng = np.random.default_rng(0)
    ids = np.repeat([0, 1, 2], 32)
    difficulty = rng.random(96)
    batches = ordered_batches(np.arange(96), ids, difficulty, 8, mixing="none")
    assert sorted(r for batch in batches for r in batch) == list(range(96))
    # Cluster-first: every batch is one cluster (32 is a multiple of 8: no leftovers) ...
    assert all(len(set(ids[batch])) == 1 for batch in batches)
    # ... and the clusters take turns, each going easy to hard.
    assert [int(ids[batch[0]]) for batch in batches[:3]] == [0, 1, 2]
    for cluster_id in range(3):
        means = [difficulty[batch].mean() for batch in batches if ids[batch[0]] == cluster_id]
        assert means == sorted(means)
    # Without interleaving the clusters come one after the other.
    sequential = ordered_batches(np.arange(96), ids, difficulty, 8, interleave_clusters=False)
    assert [int(ids[batch[0]]) for batch in sequential] == [0] * 4 + [1] * 4 + [2] * 4
