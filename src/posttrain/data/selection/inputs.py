"""The selection stage's inputs checked once: the feature matrix and the labelled columns.

Every selector takes a plain `[n, d]` matrix, so SAE codes, raw activations and TF-IDF
vectors (the issue's baselines) pass through the same checks. Labels come from the rows
themselves: a row carries a label when its column is present and not null, which is how a
small labelled subset sits inside a large unlabelled file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from posttrain.errors import InputError


def check_features(features: Any, n_rows: int | None = None) -> np.ndarray:
    """`features` as a finite float64 `[n, d]` array (a scipy sparse matrix, as TF-IDF gives,
    is made dense: the stage works at the scale of an RL prompt set). `n_rows`, when given,
    is the number of rows the matrix must describe."""
    if hasattr(features, "toarray"):
        features = features.toarray()
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise InputError(
            f"must be a 2-D [rows, dims] matrix, not shape {array.shape}", key="features"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"is empty (shape {array.shape})", key="features")
    if n_rows is not None and array.shape[0] != n_rows:
        raise InputError(
            f"has {array.shape[0]} rows but the data has {n_rows}; compute the features "
            "from the same rows, in the same order",
            key="features",
        )
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        raise InputError(f"row {int(np.argmax(bad))} has non-finite values", key="features")
    return array


def labelled_values(rows: Sequence[dict[str, Any]], column: str) -> tuple[np.ndarray, np.ndarray]:
    """(indices, values) of the rows whose `column` is present and not null; a value that is
    not a finite number (booleans count as 0/1) is an InputError naming the column and row."""
    indices, values = [], []
    for index, row in enumerate(rows):
        value = row.get(column)
        if value is None:
            continue
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise InputError(f"row {index}: {value!r} is not a finite number", key=column)
        indices.append(index)
        values.append(float(value))
    return np.asarray(indices, dtype=np.int64), np.asarray(values, dtype=np.float64)


def column_values(rows: Sequence[dict[str, Any]], column: str) -> list[Any] | None:
    """The column's value for every row, or None when any row lacks it (true topics are only
    used when the whole set carries them)."""
    values = [row.get(column) for row in rows]
    return None if any(value is None for value in values) else values
