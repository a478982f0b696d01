"""Filters, the label map and the train/test split: what turns a labelled turn into a row.

Neutral turns carry no preference and are dropped; so are replies and queries too short
to judge, histories too long to fit a small reward model's context, and turns that show
personal data (e-mail addresses, phone numbers). The four levels left become ordinal
labels 1..4, and the split is by conversation, so no conversation leaks across it.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

DROP_REASONS = (
    "unparsed",
    "neutral",
    "short_reply",
    "short_query",
    "long_history",
    "personal_data",
)
"""Every reason an item is dropped, in the order they are checked."""

LABEL_MAP = {1: 1, 2: 2, 4: 3, 5: 4}
"""Raw 5-level feedback -> the ordinal label a reward model trains on (3 is dropped)."""

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,}")
PHONE = re.compile(
    r"(?<![\w.])(?:\+?\d{1,3}[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?![\w])"
)


def has_personal_data(text: str) -> bool:
    """Whether `text` shows an e-mail address or a phone number."""
    return EMAIL.search(text) is not None or PHONE.search(text) is not None


def drop_reason(
    item: dict[str, Any],
    min_reply_chars: int,
    min_query_chars: int,
    max_history_messages: int,
    max_history_chars: int,
) -> str | None:
    """The first reason (after `unparsed`, decided by labelling) to drop a labelled item."""
    if item.get("raw_label") is None:
        return "unparsed"
    if item["raw_label"] == 3:
        return "neutral"
    query, reply = item["messages"][0]["content"], item["messages"][1]["content"]
    if len(reply.strip()) < min_reply_chars:
        return "short_reply"
    if len(query.strip()) < min_query_chars:
        return "short_query"
    history = item.get("history") or []
    if len(history) > max_history_messages:
        return "long_history"
    if sum(len(m["content"]) for m in history) > max_history_chars:
        return "long_history"
    texts = [query, reply] + [m["content"] for m in history]
    if any(has_personal_data(text) for text in texts):
        return "personal_data"
    return None


def map_label(raw_label: int) -> int:
    """The ordinal label (1..4) of a kept raw level (1, 2, 4 or 5)."""
    if raw_label not in LABEL_MAP:
        raise ValueError(f"raw label {raw_label!r} has no ordinal label (kept: {list(LABEL_MAP)})")
    return LABEL_MAP[raw_label]


def split_of(conversation_hash: str, seed: int, test_fraction: float) -> str:
    """ "train" or "test" from a hash of the conversation and the seed: every turn of a
    conversation lands on the same side, the same way on every run and machine."""
    digest = hashlib.sha256(f"{seed}:{conversation_hash}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") / 2**64 < test_fraction else "train"
