"""A user's multimodal QA data as MM-THEBench items: JSONL rows, and ScienceQA / MathVista files.

An item from user data has no `scene` (the rule verifier does not apply; an LLM judge does)
and its `image` is either an absolute file path or a data URL, both of which
`posttrain.models.chat.images.image_part` takes as they are. Nothing is fetched: an http(s)
image is an error.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path
from typing import Any

from posttrain.data.io import DataError, iter_jsonl, read_text
from posttrain.data.scenes.steps import parse_step
from posttrain.models.chat.images import data_url, load_image

NEEDS = ("perception", "knowledge", "reasoning")  # the taxonomy's top level (eval/mmthe)


def _image(value: Any, base: Path, where: dict[str, Any]) -> str:
    """A readable image as a path or data URL; a DataError (via `where`) otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise DataError("'image' must be a path, a base64 string or a data URL", **where)
    value = value.strip()
    if re.match(r"^https?://", value, re.IGNORECASE):
        raise DataError(
            f"image {value[:60]!r} is a URL; nothing is downloaded: give a path or base64 data",
            **where,
        )
    if not value.startswith("data:"):
        path = (base / value).resolve() if len(value) < 4096 else None
        if path is not None and path.is_file():
            url = data_url(path.read_bytes())
            _readable(url, f"image file {path}", where)
            return str(path)
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise DataError(f"image file not found: {value[:80]!r}", **where) from None
        value = data_url(raw)
    _readable(value, "image data", where)
    return value


def _readable(url: str, what: str, where: dict[str, Any]) -> None:
    try:
        load_image(url)
    except ValueError as error:
        raise DataError(f"{what} is not a readable image: {error}", **where) from None


def _steps(value: Any, where: dict[str, Any]) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise DataError("'steps' must be a list of strings or of {text, needs}", **where)
    steps = []
    for n, step in enumerate(value):
        text, needs = (step, None) if isinstance(step, str) else (None, None)
        if isinstance(step, dict):
            text, needs = step.get("text"), step.get("needs")
        if not isinstance(text, str) or (needs is not None and needs not in NEEDS):
            raise DataError(f"steps[{n}] needs a text and a 'needs' of {NEEDS} or none", **where)
        extra = step if isinstance(step, dict) else {}  # a generated item's claim, uses
        steps.append({**extra, "text": text, "needs": needs,
                      "claim": extra.get("claim") or parse_step(text)})  # fmt: skip
    return steps


def load_items(path: str | Path) -> list[dict[str, Any]]:
    """Items of a JSONL file of {image, question, answer[, steps, choices, id, task]} rows;
    `image` is a path relative to the file, base64 data or a data URL. `id` defaults to
    the line number; other keys are kept (so a split written by `write_scene_data` loads
    with its scenes). A bad row is a DataError naming the file, line and field."""
    path = Path(path)
    items, seen = [], set()
    for line, row in iter_jsonl(path):
        where: dict[str, Any] = {"path": path, "line": line}
        for key in ("image", "question", "answer"):
            if row.get(key) in (None, ""):
                raise DataError(f"missing field {key!r}", path, line=line, key=key)
        choices = row.get("choices")
        if choices is not None and not (
            isinstance(choices, list) and all(isinstance(c, str) for c in choices)
        ):
            raise DataError("'choices' must be a list of strings", path, line=line, key="choices")
        item_id = str(row.get("id", line))
        if item_id in seen:
            raise DataError(f"duplicate id {item_id!r}", path, line=line, key="id")
        seen.add(item_id)
        items.append(
            {
                **row,  # kept as written: a generated item's scene, scene_id, ...
                "id": item_id,
                "split": str(row.get("split", "user")),
                "image": _image(row["image"], path.parent, where),
                "question": str(row["question"]),
                "answer": str(row["answer"]),
                "choices": choices,
                "task": str(row.get("task", "user")),
                "steps": _steps(row["steps"], where) if row.get("steps") is not None else [],
            }
        )
    return items


def _sentences(text: str) -> list[str]:
    parts = re.split(r"(?<=[.!?])\s+|\n+", text.strip())
    return [p.strip() for p in parts if p.strip()]


def convert_scienceqa_like(
    path_to_json: str | Path, image_root: str | Path
) -> list[dict[str, Any]]:
    """Items of a ScienceQA `problems.json` or a MathVista annotation file: one JSON object
    keyed by problem id. ScienceQA rows: `question`, `choices`, `answer` (an index into
    choices), `hint` (context), `image` (a file name under `<root>/<split>/<pid>/`, or null
    for a text-only problem, which is skipped), `split`, `solution` (its sentences become
    the gold steps, needs unknown), `lecture`. MathVista rows: `question`, `image` (a path
    under the root), `choices` (null for free-form), `answer` (the answer's text), `query`
    (the full prompt, kept as `prompt`), `question_type`, `metadata.split`."""
    path, root = Path(path_to_json), Path(image_root)
    try:
        problems = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise DataError(f"not valid JSON: {error.msg}", path, line=error.lineno) from None
    if not isinstance(problems, dict):
        raise DataError("expected a JSON object keyed by problem id", path)
    items = []
    for pid, row in problems.items():
        where: dict[str, Any] = {"path": path, "key": str(pid)}
        if not isinstance(row, dict) or "question" not in row or "answer" not in row:
            raise DataError("a problem needs 'question' and 'answer'", **where)
        if not row.get("image"):
            continue  # text-only: nothing for a multimodal benchmark to look at
        split = row.get("split") or (row.get("metadata") or {}).get("split") or "user"
        choices, answer = row.get("choices"), row["answer"]
        if choices is not None and not isinstance(choices, list):
            raise DataError("'choices' must be a list or null", **where)
        mathvista = "query" in row or "question_type" in row or isinstance(answer, str)
        if not mathvista:  # ScienceQA: the answer is an index into the choices
            if not (isinstance(answer, int) and choices and 0 <= answer < len(choices)):
                raise DataError(f"answer {answer!r} is not an index into choices", **where)
            answer = choices[answer]
        candidates = [root / str(split) / str(pid) / row["image"], root / str(pid) / row["image"],
                      root / row["image"]]  # fmt: skip
        image = next((c for c in candidates if c.is_file()), None)
        if image is None:
            raise DataError(f"image {row['image']!r} not found under {root}", **where)
        _readable(data_url(image.read_bytes()), f"image file {image}", where)
        item = {
            "id": str(pid),
            "split": str(split),
            "image": str(image.resolve()),
            "question": str(row["question"]),
            "answer": str(answer),
            "choices": [str(c) for c in choices] if choices else None,
            "task": "mathvista" if mathvista else "scienceqa",
            "steps": [
                {"text": s, "needs": None, "claim": None}
                for s in _sentences(row.get("solution") or "")
            ],
        }
        for key, source in (("context", "hint"), ("lecture", "lecture"), ("prompt", "query")):
            if row.get(source):
                item[key] = str(row[source])
        items.append(item)
    return items
