"""HealthBench rubrics as data: the items, their validation, the parquet rows and the score.

HealthBench (OpenAI 2025, arXiv:2505.08775) grades a response against physician-written
rubric items `{criterion, points, tags}`; negative points mark undesirable behaviour. A
response's score is the points of the items it meets over the positive points available,
clipped at 0 (`main_score`). CHERRL ships HealthBench as parquet rows (`load_healthbench`).

An item may carry a `verifier`, a rule that decides it by code instead of by a judge. This
module knows a verifier only as a mapping; its rules live with the rewards
(`posttrain.rewards.instructions.check_verifier` / `verify`), so callers that want verifiers
checked while a rubric is read pass that checker in as `check_verifier`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RubricItem",
    "VerifierCheck",
    "as_list",
    "load_healthbench",
    "main_score",
    "rubric_items",
]

VerifierCheck = Callable[[Mapping[str, Any]], None]
"""Raises ValueError (saying what is wrong) for a verifier it rejects."""


@dataclass(frozen=True)
class RubricItem:
    """One HealthBench-style rubric item. Negative `points` mark undesirable behaviour: such an
    item is PRESENT when the response shows it, and then subtracts. An item with a `verifier`
    (see `posttrain.rewards.instructions.verify`) is decided by code, never sent to an LLM."""

    criterion: str
    points: float
    tags: dict[str, Any] = field(default_factory=dict, hash=False)
    verifier: dict[str, Any] | None = field(default=None, hash=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"criterion": self.criterion, "points": self.points}
        out["tags"] = dict(self.tags)
        if self.verifier is not None:
            out["verifier"] = dict(self.verifier)
        return out


def as_list(raw: Any, what: str) -> list[Any]:
    """A list from a list, tuple, numpy array (parquet cells) or JSON text; `what` names the
    value in the error."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{what} is a string that is not JSON: {exc}") from exc
    if isinstance(raw, Mapping) or not isinstance(raw, Iterable):
        raise ValueError(f"{what} must be a list, got {type(raw).__name__}")
    return list(raw)


def rubric_items(
    raw: Any, where: str = "", check_verifier: VerifierCheck | None = None
) -> list[RubricItem]:
    """Validate a rubric: a list of mappings `{criterion, points, tags?, verifier?}` (or
    `RubricItem`s, or JSON text of such a list). Errors name `where`, the item and the key.

    A verifier must be a mapping (or null); `check_verifier`, when given, also checks its
    rule (items that are already `RubricItem`s are taken as checked)."""
    prefix = f"{where}: " if where else ""
    items: list[RubricItem] = []
    for i, entry in enumerate(as_list(raw, f"{prefix}rubric")):
        if isinstance(entry, RubricItem):
            items.append(entry)
            continue
        at = f"{prefix}rubric item {i}"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{at} must be a mapping, got {type(entry).__name__}")
        criterion = entry.get("criterion")
        if not isinstance(criterion, str) or not criterion.strip():
            raise ValueError(f"{at}: key 'criterion' must be a non-empty string, got {criterion!r}")
        points = entry.get("points")
        if isinstance(points, bool) or not isinstance(points, int | float):
            try:  # numpy scalars
                points = float(points)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                raise ValueError(f"{at}: key 'points' must be a number, got {points!r}") from None
        if not math.isfinite(points):
            raise ValueError(f"{at}: key 'points' must be finite, got {points!r}")
        tags = entry.get("tags") or {}
        if not isinstance(tags, Mapping):
            raise ValueError(f"{at}: key 'tags' must be a mapping, got {type(tags).__name__}")
        verifier = entry.get("verifier")
        if verifier is not None:
            if not isinstance(verifier, Mapping):
                raise ValueError(f"{at}: key 'verifier' must be a mapping or null")
            if check_verifier is not None:
                try:
                    check_verifier(verifier)
                except ValueError as exc:
                    raise ValueError(f"{at}: key 'verifier': {exc}") from None
            verifier = dict(verifier)
        items.append(RubricItem(criterion, float(points), dict(tags), verifier))
    return items


def _plain(value: Any) -> Any:
    """numpy arrays / scalars from a parquet cell as plain Python lists and numbers."""
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def load_healthbench(
    path: str | Path, check_verifier: VerifierCheck | None = None
) -> list[dict[str, Any]]:
    """Rows `{"id", "prompt", "rubrics"}` of a HealthBench parquet as CHERRL ships it.

    `prompt` is the conversation (a list of {role, content} messages), `rubrics` the validated
    items of `reward_model.rubrics` as plain dicts (verifiers checked by `check_verifier` when
    given), `id` is `extra_info.healthbench_prompt_id` (the row's index when a row has none).
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    table = pq.read_table(path)
    missing = [c for c in ("prompt", "reward_model") if c not in table.column_names]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing} (HealthBench rows need 'prompt' and "
            f"'reward_model'); columns are {table.column_names}"
        )
    extra = table.column("extra_info").to_pylist() if "extra_info" in table.column_names else None
    rows: list[dict[str, Any]] = []
    prompts = table.column("prompt").to_pylist()
    models = table.column("reward_model").to_pylist()
    for i, (prompt, model) in enumerate(zip(prompts, models, strict=True)):
        where = f"{path} row {i}"
        if not isinstance(model, Mapping) or model.get("rubrics") is None:
            raise ValueError(f"{where}: 'reward_model' has no 'rubrics'")
        info = extra[i] if extra is not None and isinstance(extra[i], Mapping) else {}
        row_id = info.get("healthbench_prompt_id") or str(i)
        messages = _plain(prompt)
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        items = rubric_items(_plain(model["rubrics"]), where=where, check_verifier=check_verifier)
        rows.append({"id": row_id, "prompt": messages, "rubrics": [x.to_dict() for x in items]})
    return rows


def main_score(items: Sequence[RubricItem | Mapping[str, Any]], met: Sequence[bool]) -> float:
    """HealthBench's score: max(0, points of the met items / sum of the positive points).

    Met negative items subtract; 0.0 when the rubric has no positive points.
    """
    parsed = rubric_items(items)
    if len(parsed) != len(met):
        raise ValueError(f"{len(met)} verdicts for {len(parsed)} rubric items")
    possible = sum(item.points for item in parsed if item.points > 0)
    if possible <= 0:
        return 0.0
    achieved = sum(item.points for item, ok in zip(parsed, met, strict=True) if ok)
    return max(0.0, achieved / possible)
