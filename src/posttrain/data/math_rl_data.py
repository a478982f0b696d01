"""Real math RL data -> prompt rows: a JSONL or parquet file of questions and final answers.

The usual shape is DeepMath-103K's (zwhe99/DeepMath-103K on the Hugging Face Hub; its card
lists the columns `question`, `final_answer`, `difficulty` (float64, about 1-10), `topic`
and `r1_solution_1..3`), or the plainer `prompt` / `answer` (+ `difficulty`) that most RL
trainers read. Each row becomes a posttrain prompt row: `prompt` as chat messages, `answer`
(what `exact_match` / `numeric_match` compare against; LaTeX answers such as `\\frac{1}{2}`
need a reward that reads LaTeX), `difficulty` (None when the file has none), `topic` and
`source` (`file:line`), so the SAERL selection stage can use a shipped difficulty as labels.

Column names are options (`MathColumns`); a column may name a nested key with dots
(`reward_model.ground_truth`, verl's layout). Errors name the file, the line (the 1-based
row of a parquet file or dataset) and the column.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posttrain.data.io import DataError, iter_jsonl, read_records

_ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class MathColumns:
    """Which columns hold the question, the answer and the optional difficulty and topic."""

    question: str = "prompt"
    answer: str = "answer"
    difficulty: str | None = "difficulty"
    """Read when the file has it (always, with `require_difficulty`); None: never read."""
    topic: str | None = "topic"


DEEPMATH = MathColumns(
    question="question", answer="final_answer", difficulty="difficulty", topic="topic"
)
PROMPT_ANSWER = MathColumns()
VERL = MathColumns(question="prompt", answer="reward_model.ground_truth", difficulty=None)
PRESETS: dict[str, MathColumns] = {
    "deepmath": DEEPMATH,
    "prompt_answer": PROMPT_ANSWER,
    "verl": VERL,
}


def _lookup(record: dict[str, Any], column: str) -> tuple[bool, Any]:
    """(found, value) of `column`, a key or a dotted path into nested objects."""
    if column in record:
        return True, record[column]
    value: Any = record
    for part in column.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _numbered(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, record): JSONL line numbers, else 1-based row numbers."""
    if Path(path).suffix in (".jsonl", ".json"):
        yield from iter_jsonl(path)
    else:
        yield from enumerate(read_records(path), start=1)


def detect_columns(record: dict[str, Any], path: str | Path) -> MathColumns:
    """The preset whose question and answer columns the first record has."""
    for columns in PRESETS.values():
        if _lookup(record, columns.question)[0] and _lookup(record, columns.answer)[0]:
            return columns
    raise DataError(
        f"no known question/answer columns among {sorted(record)}; name them "
        f"(presets: {', '.join(f'{k} = {v.question}/{v.answer}' for k, v in PRESETS.items())})",
        path,
        line=1,
    )


def _messages(value: Any, path: str | Path, line: int, key: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        if not value.strip():
            raise DataError("empty question", path, line=line, key=key)
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise DataError(
            f"expected a string or a list of chat messages, got {type(value).__name__}",
            path,
            line=line,
            key=key,
        )
    messages = []
    for i, message in enumerate(value):
        if (
            not isinstance(message, dict)
            or message.get("role") not in _ROLES
            or not isinstance(message.get("content"), str)
        ):
            raise DataError(
                f"message {i} is not {{'role': system|user|assistant, 'content': str}}: "
                f"{message!r:.80}",
                path,
                line=line,
                key=key,
            )
        messages.append({"role": message["role"], "content": message["content"]})
    if messages[-1]["role"] != "user":
        raise DataError("the last message must be the user's question", path, line=line, key=key)
    return messages


def _scalar_answer(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _answer(value: Any, path: str | Path, line: int, key: str) -> str | list[str]:
    """A string (numbers written as text), or a non-empty list of accepted aliases."""
    if isinstance(value, list) and value:
        aliases = [_scalar_answer(v) for v in value]
        if all(a is not None for a in aliases):
            return aliases  # type: ignore[return-value]
    else:
        answer = _scalar_answer(value)
        if answer is not None:
            return answer
    raise DataError(
        f"expected a non-empty answer (text, a number or a list of them), got {value!r:.60}",
        path,
        line=line,
        key=key,
    )


def _difficulty(value: Any, path: str | Path, line: int, key: str) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise DataError(f"expected a finite number, got {value!r:.60}", path, line=line, key=key)
    return number


def load_math_rl_rows(
    path: str | Path,
    columns: MathColumns | str | None = None,
    *,
    require_difficulty: bool = False,
    instruction: str | None = None,
    system_prompt: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Prompt rows `{prompt, answer, difficulty, topic, source}` from a JSONL or parquet file
    (or a `datasets` dir). `columns`: a `MathColumns`, a preset name (`PRESETS`), or None to
    detect the preset from the first row. `instruction` is appended to the question (after a
    blank line) and `system_prompt` put before it, for a policy that expects them.

    The difficulty column is optional: when the first row lacks it, every row's difficulty
    is None (an error with `require_difficulty`); when the first row has it, every row must
    hold a finite number there. Errors are `DataError`s naming file:line and the column.
    """
    if isinstance(columns, str):
        if columns not in PRESETS:
            raise DataError(f"unknown column preset {columns!r}; known: {sorted(PRESETS)}", path)
        columns = PRESETS[columns]
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    rows: list[dict[str, Any]] = []
    has_difficulty = False
    name = Path(path).name
    for line, record in _numbered(path):
        if not rows:
            columns = columns or detect_columns(record, path)
            has_difficulty = (
                columns.difficulty is not None and _lookup(record, columns.difficulty)[0]
            )
            if require_difficulty and not has_difficulty:
                raise DataError(
                    "no difficulty column (require_difficulty)",
                    path,
                    line=line,
                    key=columns.difficulty or "difficulty",
                )
        assert columns is not None
        row: dict[str, Any] = {}
        wanted = [columns.question, columns.answer]
        wanted += [columns.difficulty] if has_difficulty and columns.difficulty else []
        for key in wanted:
            if not _lookup(record, key)[0]:
                raise DataError(
                    f"missing column (the row has {sorted(record)})", path, line=line, key=key
                )
        messages = _messages(_lookup(record, columns.question)[1], path, line, columns.question)
        if instruction:
            question = messages[-1]["content"]
            messages[-1] = {"role": "user", "content": f"{question}\n\n{instruction}"}
        if system_prompt and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": system_prompt})
        row["prompt"] = messages
        row["answer"] = _answer(_lookup(record, columns.answer)[1], path, line, columns.answer)
        row["difficulty"] = (
            _difficulty(_lookup(record, columns.difficulty)[1], path, line, columns.difficulty)
            if has_difficulty and columns.difficulty
            else None
        )
        topic = _lookup(record, columns.topic)[1] if columns.topic else None
        row["topic"] = topic if isinstance(topic, str) else None
        row["source"] = f"{name}:{line}"
        rows.append(row)
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        raise DataError("no rows", path)
    return rows
