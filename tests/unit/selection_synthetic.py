"""Synthetic feature matrices whose truth is known, for the selection stage's tests.

Topics are Gaussian blobs; difficulty is a linear function of the features plus noise; low
quality is a separable flag (a shift along a direction of its own). A subset of rows carries
the labels, as a small labelled subset would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TOPICS = ("algebra", "geometry", "counting", "numbers")


@dataclass
class Synthetic:
    features: np.ndarray
    rows: list[dict]
    topic: np.ndarray
    difficulty: np.ndarray
    bad: np.ndarray


def make_synthetic(
    per_topic: int = 50,
    dims: int = 12,
    labelled: int = 80,
    bad_share: float = 0.15,
    seed: int = 0,
) -> Synthetic:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 6, size=(len(TOPICS), dims))
    centres[:, -1] = 0.0  # the last dimension is kept for the quality flag
    topic = np.repeat(np.arange(len(TOPICS)), per_topic)
    n = len(topic)
    features = centres[topic] + rng.normal(0, 1, size=(n, dims))
    weights = rng.normal(0, 1, size=dims)
    difficulty = features @ weights + rng.normal(0, 0.5, size=n)
    bad = rng.random(n) < bad_share
    direction = np.zeros(dims)
    direction[-1] = 1.0
    features = features + 4.0 * np.outer(bad, direction)  # after difficulty: quality is apart
    labelled_rows = set(rng.choice(n, labelled, replace=False).tolist())
    rows = []
    for index in range(n):
        row = {"prompt": f"q{index}", "answer": str(index), "topic": TOPICS[topic[index]]}
        if index in labelled_rows:
            row["difficulty"] = float(difficulty[index])
            row["quality_ok"] = bool(not bad[index])
        rows.append(row)
    return Synthetic(features, rows, topic, difficulty, bad)
