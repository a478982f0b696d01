"""The TF-IDF baseline features (posttrain.features.text_features)."""

from __future__ import annotations

import numpy as np
import pytest

from posttrain.errors import InputError
from posttrain.features.text_features import fit_tfidf, tfidf_features


def test_rows_strings_and_chats_give_one_row_each_with_the_same_terms():
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2 + 2?"},
    ]
    rows = ["What is 2 + 2?", {"prompt": "What is 2 + 2?"}, {"prompt": chat}, "Spell cat."]
    matrix, vectorizer = fit_tfidf(rows)
    assert matrix.shape == (4, len(vectorizer.vocabulary_)) and matrix.dtype == np.float32
    np.testing.assert_allclose(matrix[0], matrix[1])
    assert "+" in vectorizer.vocabulary_ and "2" in vectorizer.vocabulary_  # symbols count
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-5)
    # Independent check: the row of a text shares no term with a text of disjoint words.
    assert float(matrix[0] @ matrix[3]) == 0.0 and float(matrix[0] @ matrix[2]) > 0.5


def test_options_reach_the_vectorizer():
    texts = ["a b c d e f", "a b", "a"]
    assert tfidf_features(texts, max_features=2, ngram_range=(1, 1)).shape == (3, 2)


def test_bad_rows_are_input_errors():
    with pytest.raises(InputError, match="row 1 has no 'prompt' column"):
        tfidf_features(["x", {"question": "y"}])
    with pytest.raises(InputError, match="no rows"):
        tfidf_features([])
    with pytest.raises(InputError, match="no terms"):
        tfidf_features(["   ", ""])
