"""Rollout logs written by any trainer, read as the `{step, prompt, response, score}` records
a detector sees.

posttrain's own `rollouts.jsonl` has those keys; other trainers name them otherwise (verl's
generation dumps: `step`, `input`, `output`, `score`; TRL's completion tables: `step` as a
string, `prompt`, `completion`, one column per reward). `parse_fields` reads a mapping such
as `step=global_step,response=completion,score=reward` (unnamed keys keep their own name;
a dotted name such as `rewards.total` reaches into a nested object), and `read_trainer_log`
reads a JSONL file (a torn last line is skipped: a live run is writing it), a parquet file,
or a run directory holding `rollouts.jsonl`.

Steps may be integers, whole floats (12.0) or numeric strings. Fractional steps (0.25 of an
epoch) are numbered 1, 2, ... in order, since the detector's windows count logged steps;
`TrainerLog.logged_step` turns such a number back into the value the trainer wrote.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posttrain.data.io import DataError, iter_jsonl, require_file

FIELDS = ("step", "prompt", "response", "score")
"""The keys a detector reads; `prompt` may be absent (every rollout then shares one prompt)."""
ROLLOUTS_FILE = "rollouts.jsonl"


def parse_fields(text: str | None) -> dict[str, str]:
    """`step=global_step,response=completion` as {detector key: the log's name}, every key
    of FIELDS present (those not named map to themselves). ValueError naming the bad part."""
    mapping = {key: key for key in FIELDS}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, name = (s.strip() for s in part.partition("="))
        if not sep or not key or not name:
            raise ValueError(f"--fields: {part.strip()!r} is not KEY=NAME (e.g. score=reward)")
        if key not in FIELDS:
            raise ValueError(f"--fields: {key!r} is not one of {', '.join(FIELDS)}")
        mapping[key] = name
    return mapping


@dataclass(frozen=True)
class TrainerLog:
    """A log's records as a detector reads them, and the steps the trainer wrote."""

    records: list[dict[str, Any]]
    step_values: list[float] | None = None
    """For fractional steps: the value the trainer wrote for step number i + 1."""

    def logged_step(self, step: int) -> float | int:
        """The step as the trainer wrote it (the same number unless steps were fractional)."""
        return step if self.step_values is None else self.step_values[step - 1]


def read_trainer_log(
    path: str | Path, fields: Mapping[str, str] | None = None, *, allow_empty: bool = False
) -> TrainerLog:
    """The records of a JSONL or parquet rollout log (or a run directory's rollouts.jsonl)
    under a field mapping (`parse_fields`); a DataError names the file, row and field of
    a record that lacks one or holds a value of the wrong kind, or the file when it holds
    no record (unless `allow_empty`: a live run's log may not have one yet)."""
    fields = dict(fields or parse_fields(None))
    file = Path(path)
    if file.is_dir():
        file = file / ROLLOUTS_FILE
    require_file(file)
    if file.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            rows: Sequence[tuple[int, Any]] = list(
                enumerate(pq.read_table(file).to_pylist(), start=1)
            )
        except pa.ArrowException as err:
            raise DataError(f"not a parquet file: {err}", file) from None
        where = "row"
    else:
        rows = list(iter_jsonl(file, tolerate_torn_tail=True))
        where = "line"
    records = [_record(row, fields, file, f"{where} {number}") for number, row in rows]
    if not records and not allow_empty:
        raise DataError("the rollout log is empty", file)
    return _numbered(records)


def _record(row: Any, fields: Mapping[str, str], file: Path, where: str) -> dict[str, Any]:
    def value(key: str, required: bool = True) -> Any:
        found = _lookup(row, fields[key])
        if found is _MISSING and required:
            raise DataError(f"{where}: no field {fields[key]!r} (the {key})", file)
        return found

    step, score = value("step"), value("score")
    prompt = value("prompt", required=False)
    out = {
        "step": _number(step, "step", fields, file, where),
        "prompt": "" if prompt is _MISSING or prompt is None else _text(prompt, "user"),
        "response": _text(value("response"), "assistant"),
        "score": _number(score, "score", fields, file, where),
    }
    return out


_MISSING = object()


def _lookup(row: Any, name: str) -> Any:
    """row[name], or the dotted path name through nested objects, or _MISSING."""
    if isinstance(row, Mapping) and name in row:
        return row[name]
    current = row
    for part in name.split("."):
        if not isinstance(current, Mapping) or part not in current:
            return _MISSING
        current = current[part]
    return current


def _text(value: Any, role: str) -> str:
    """A response or prompt as text: a string, or the last `role` message of a chat."""
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence):
        for message in reversed(list(value)):
            if isinstance(message, Mapping) and message.get("role") in (role, None):
                return str(message.get("content", ""))
        return ""
    return "" if value is None else str(value)


def _number(value: Any, key: str, fields: Mapping[str, str], file: Path, where: str) -> float:
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
        raise DataError(f"{where}: {fields[key]} (the {key}) is not a number: {value!r}", file)
    return number


def _numbered(records: list[dict[str, Any]]) -> TrainerLog:
    """Integer steps as they are; fractional ones numbered 1, 2, ... in order."""
    steps = [r["step"] for r in records]
    if all(float(s).is_integer() for s in steps):
        return TrainerLog([{**r, "step": int(r["step"])} for r in records])
    values = sorted(set(steps))
    number = {value: i for i, value in enumerate(values, start=1)}
    return TrainerLog([{**r, "step": number[r["step"]]} for r in records], values)
