"""Turn extraction: every assistant reply that a user message follows becomes one item.

The next user message is the implicit feedback on the reply; the generator's ground truth
(`turn_quality`) is carried through for evaluation only, never used to label.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from posttrain.data.io import DataError

ROLES = ("user", "assistant", "system")


def _messages(record: dict[str, Any], where: str) -> list[dict[str, str]]:
    conversation = record.get("conversation")
    if not isinstance(conversation, list | tuple):
        raise DataError(f"{where}: 'conversation' must be a list of messages")
    messages = []
    for number, message in enumerate(conversation):
        if not isinstance(message, dict):
            raise DataError(f"{where}: message {number} is not an object")
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise DataError(f"{where}: message {number} has role {role!r} (expected {ROLES})")
        if not isinstance(content, str):
            raise DataError(f"{where}: message {number} has no text 'content'")
        messages.append({"role": role, "content": content})
    return messages


def conversation_hash(record: dict[str, Any], messages: Sequence[dict[str, str]]) -> str:
    """The record's own `conversation_hash`, or a digest of its messages when it has none."""
    value = record.get("conversation_hash")
    if isinstance(value, str) and value:
        return value
    return hashlib.md5(json.dumps(list(messages), ensure_ascii=False).encode()).hexdigest()


def extract_turns(
    records: Sequence[dict[str, Any]], source: str = "input", seen: set[str] | None = None
) -> tuple[list[dict[str, Any]], int]:
    """(items, conversations skipped as duplicates). Items are `{"id": f"{hash}_turn{N}",
    "history", "messages": [user, assistant], "user_feedback", "language", "user_id",
    "conversation_hash", "turn", "turn_quality"?}`.

    N counts assistant replies from 0, so it indexes the generator's `turn_quality`. A reply
    counts only when a user message precedes it and another follows it. A conversation whose
    hash is already in `seen` (earlier in this file, or in an earlier shard when the caller
    passes one set for all) is skipped and counted: WildChat's shards repeat some
    conversations, and their turns would otherwise share ids. Errors name `source` and the
    1-based row.
    """
    if not records:
        raise DataError("no conversations", source)
    items: list[dict[str, Any]] = []
    seen = set() if seen is None else seen
    duplicates = 0
    for row, record in enumerate(records, start=1):
        where = f"{source}: row {row}"
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected an object, got {type(record).__name__}")
        messages = _messages(record, where)
        digest = conversation_hash(record, messages)
        if digest in seen:
            duplicates += 1
            continue
        seen.add(digest)
        qualities = record.get("turn_quality")
        user_id = record.get("user_id") or record.get("hashed_ip") or ""
        reply_index = -1
        for i, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            reply_index += 1
            if i == 0 or i + 1 >= len(messages):
                continue
            if messages[i - 1]["role"] != "user" or messages[i + 1]["role"] != "user":
                continue
            item: dict[str, Any] = {
                "id": f"{digest}_turn{reply_index}",
                "conversation_hash": digest,
                "turn": reply_index,
                "history": messages[: i - 1],
                "messages": [messages[i - 1], message],
                "user_feedback": messages[i + 1]["content"],
                "language": record.get("language") or "",
                "user_id": str(user_id),
            }
            if isinstance(qualities, list | tuple) and reply_index < len(qualities):
                item["turn_quality"] = qualities[reply_index]
            items.append(item)
    return items, duplicates
