"""TF-IDF features of the same rows the activations read: SAERL's lexical baseline (issue 24 §3).

The selection stage runs on SAE codes, raw activations or these, with one interface: rows in,
an [n, d] matrix out. scikit-learn's `TfidfVectorizer` does the work; rows are reduced to their
text the way `activations.render_texts` is, without a chat template (there is no model, and
the template's markup would be the same tokens in every row).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from posttrain.errors import InputError


def row_text(item: Any, prompt_key: str = "prompt", index: int = 0) -> str:
    """A string as it is; a row's `prompt_key` column; chat messages joined by their contents."""
    if isinstance(item, Mapping):
        if prompt_key not in item:
            raise InputError(f"row {index} has no {prompt_key!r} column", key=prompt_key)
        item = item[prompt_key]
    if isinstance(item, str):
        return item
    if isinstance(item, Sequence) and all(
        isinstance(m, Mapping) and isinstance(m.get("content"), str) for m in item
    ):
        return "\n".join(m["content"] for m in item)
    raise InputError(
        f"item {index} is neither a string, chat messages nor a row: {type(item).__name__}",
        key=prompt_key,
    )


def fit_tfidf(
    texts_or_rows: Sequence[Any],
    prompt_key: str = "prompt",
    max_features: int | None = 4096,
    ngram_range: tuple[int, int] = (1, 2),
    min_df: int | float = 1,
    **options: Any,
):
    """(matrix [n, d] float32 dense, fitted vectorizer); `options` go to `TfidfVectorizer`
    (the token pattern keeps single characters, so digits and operators count)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [row_text(item, prompt_key, i) for i, item in enumerate(texts_or_rows)]
    if not texts:
        raise InputError("no rows to featurise")
    options.setdefault("token_pattern", r"(?u)\b\w+\b|[^\w\s]")
    vectorizer = TfidfVectorizer(
        max_features=max_features, ngram_range=ngram_range, min_df=min_df, **options
    )
    try:
        matrix = vectorizer.fit_transform(texts)
    except ValueError as err:  # "empty vocabulary": every row is blank or stop words
        raise InputError(f"TF-IDF found no terms in the rows: {err}") from None
    return matrix.toarray().astype(np.float32), vectorizer


def tfidf_features(texts_or_rows: Sequence[Any], prompt_key: str = "prompt", **options: Any):
    """[n, d] float32 TF-IDF matrix of the rows (`fit_tfidf` without the vectorizer)."""
    return fit_tfidf(texts_or_rows, prompt_key, **options)[0]
