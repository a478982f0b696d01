"""Every rollout of a run, one JSON line each, appended as training goes.

Monitors that study how a policy changes (reward hacking onset, phrase drift) need the
responses themselves, not just the per-step means in metrics.jsonl. A line is written per
sample right after the batch is scored, flushed at once, and a resumed run drops the lines
of the steps it redoes, so the log always matches the checkpointed policy's history.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from posttrain import atomic
from posttrain.data.io import read_jsonl
from posttrain.rl.sample import Sample

FILE_NAME = "rollouts.jsonl"
Fields = Callable[[Sample], dict[str, Any]]


def rollouts_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / FILE_NAME


def prompt_text(prompt: Any) -> str:
    """The last user message of a chat prompt (or the prompt string itself)."""
    if isinstance(prompt, str):
        return prompt
    for message in reversed(list(prompt or [])):
        if message.get("role") == "user":
            return str(message.get("content", ""))
    return ""


def default_fields(sample: Sample) -> dict[str, Any]:
    return {"rewards": dict(sample.reward_breakdown)}


class RolloutLog:
    """Appends `{step, group, prompt, response, score, **fields(sample)}` per sample.

    `score` is the training reward; `fields` adds what a monitor needs (by default the
    per-function reward breakdown).
    """

    def __init__(self, path: str | Path, fields: Fields = default_fields) -> None:
        self.path = Path(path)
        self.fields = fields

    def __call__(self, step: int, samples: Iterable[Sample]) -> None:
        lines = []
        for sample in samples:
            record = {
                "step": step,
                "group": sample.group_id,
                "prompt": prompt_text(sample.prompt),
                "response": sample.completion,
                "score": sample.reward,
                **self.fields(sample),
            }
            lines.append(json.dumps(record) + "\n")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.writelines(lines)
            handle.flush()
            os.fsync(handle.fileno())

    def truncate_after(self, step: int) -> None:
        """Keep only lines of steps <= `step` (a torn last line is dropped too; a bad line
        before it is an error naming file:line, as everywhere in `posttrain.data.io`)."""
        if not self.path.exists():
            return
        records = read_jsonl(self.path, tolerate_torn_tail=True)
        kept = [json.dumps(r) + "\n" for r in records if r.get("step", 0) <= step]
        atomic.write_text(self.path, "".join(kept))
