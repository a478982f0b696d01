"""The curriculum order: easy to hard within clusters, clusters interleaved, in whole batches.

SAERL (Tsinghua, 2026; issue 24) orders samples easy to hard within clusters and interleaves
the clusters. What "interleaved" means is ours, defined so that it keeps batches
cluster-first:

1. Each cluster's rows are sorted by predicted difficulty, easiest first (ties by row
   index); without a curriculum they are shuffled (seeded) instead.
2. Each cluster is cut, in that order, into whole batches of B; the q_c whole batches of
   cluster c take the positions (j + 1/2) / q_c, j = 0..q_c - 1, in [0, 1] (their share of
   the cluster's progress), and all clusters' batches are merged by position (ties: lower
   cluster id first). So every stretch of steps sees every cluster, and each cluster moves
   from its easy rows to its hard ones at the same relative pace as the others.
3. What is left of each cluster (fewer than B rows: its hardest under the curriculum) is laid
   end to end, cluster by cluster, and cut into the last batches.

Without interleaving, the clusters are filled one after the other (batches.fill_cluster_first).
The mixing of tails (batches.mix_tails) is applied to the batches in their final order.
"""

from __future__ import annotations

import numpy as np

from posttrain.data.selection.batches import check_batch_size, fill_cluster_first, mix_tails


def within_cluster_order(
    rows: np.ndarray, cluster_ids: np.ndarray, difficulty: np.ndarray | None, seed: int
) -> list[list[int]]:
    """For each cluster id in increasing order, its rows (from `rows`, indices into the full
    arrays): easiest first by `difficulty`, or seeded-shuffled when it is None."""
    rng = np.random.default_rng(seed)
    groups = []
    for cluster_id in np.unique(cluster_ids[rows]):
        members = np.sort(rows[cluster_ids[rows] == cluster_id])
        if difficulty is None:
            members = rng.permutation(members)
        else:
            members = members[np.argsort(difficulty[members], kind="stable")]
        groups.append([int(row) for row in members])
    return groups


def interleave(groups: list[list[int]], batch_size: int) -> list[list[int]]:
    """Whole cluster batches merged by their progress in their cluster, then the clusters'
    leftovers packed into the last batches (steps 2 and 3 of the module doc)."""
    check_batch_size(batch_size, sum(len(group) for group in groups))
    placed, leftovers = [], []
    for cluster_index, group in enumerate(groups):
        whole = len(group) // batch_size
        for j in range(whole):
            batch = group[j * batch_size : (j + 1) * batch_size]
            placed.append(((j + 0.5) / whole, cluster_index, batch))
        leftovers.extend(group[whole * batch_size :])
    placed.sort(key=lambda item: (item[0], item[1]))
    tail = [leftovers[i : i + batch_size] for i in range(0, len(leftovers), batch_size)]
    return [batch for _, _, batch in placed] + tail


def ordered_batches(
    rows: np.ndarray,
    cluster_ids: np.ndarray,
    difficulty: np.ndarray | None,
    batch_size: int,
    *,
    interleave_clusters: bool = True,
    mixing: float | str = 0.0,
    seed: int = 0,
) -> list[list[int]]:
    """The batches of `rows` (a multiple of `batch_size` of them) in training order: the
    curriculum (or a seeded shuffle) within clusters, clusters interleaved or one after the
    other, then the tails mixed between neighbours at ratio `mixing`."""
    groups = within_cluster_order(np.asarray(rows), cluster_ids, difficulty, seed)
    if interleave_clusters:
        batches = interleave(groups, batch_size)
    else:
        batches = fill_cluster_first(groups, batch_size)
    return mix_tails(batches, mixing)
