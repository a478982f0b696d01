"""Regenerates the tabular_classification data: data/train.csv, data/test_features.csv (public)
and private/test_labels.csv (hidden). Deterministic (fixed seed), standard library only.

Kept in private/ because the rule and the seed would give the hidden labels away.
"""

import math
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
PUBLIC = HERE.parent / "data"
SEED = 26
TRAIN_ROWS, TEST_ROWS = 1200, 800
FEATURES = [f"f{i}" for i in range(1, 9)]
NOISE = 0.05  # share of labels flipped at random


def label(x):
    """The noiseless rule: an interaction, a periodic term, a quadratic and a threshold; f6-f8
    are distractors."""
    value = x[0] * x[1] + math.sin(3.0 * x[2]) + 0.5 * (x[3] ** 2 - 1.0) - 0.4 * x[4]
    value += 0.8 if x[4] > 1.0 else 0.0
    return 1 if value > 0 else 0


def rows():
    """(features, label) for every row, train rows first; features rounded to 4 decimals."""
    rng = random.Random(SEED)
    out = []
    for _ in range(TRAIN_ROWS + TEST_ROWS):
        x = [round(rng.gauss(0.0, 1.0), 4) for _ in FEATURES]
        y = label(x)
        if rng.random() < NOISE:
            y = 1 - y
        out.append((x, y))
    return out


def files():
    """File path -> text of the three CSV files."""
    data = rows()
    header = ",".join(["id", *FEATURES])
    train = [header + ",label"]
    test, labels = [header], ["id,label"]
    for i, (x, y) in enumerate(data):
        values = ",".join(f"{v:.4f}" for v in x)
        if i < TRAIN_ROWS:
            train.append(f"{i},{values},{y}")
        else:
            test.append(f"{i},{values}")
            labels.append(f"{i},{y}")
    return {
        PUBLIC / "train.csv": "\n".join(train) + "\n",
        PUBLIC / "test_features.csv": "\n".join(test) + "\n",
        HERE / "test_labels.csv": "\n".join(labels) + "\n",
    }


if __name__ == "__main__":
    PUBLIC.mkdir(exist_ok=True)
    for path, text in files().items():
        path.write_text(text, encoding="utf-8")
