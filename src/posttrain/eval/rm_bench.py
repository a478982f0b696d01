"""StoryRMB-format reward-model benchmark: one chosen response against any number of rejected.

An instance is `{id, prompt, chosen, rejected: [r1, r2, ...], dimension?}`, optionally
with `dimensions` / `routes` naming what each rejected response's flaw harms. Accuracy
follows RewardBench 2's tie credit: an instance scores 1 / (number of candidates tied at
the top score) when the chosen response is among them, else 0, so a scorer that cannot
tell the candidates apart earns exactly the random baseline, 1 / (1 + number rejected),
instead of a lucky 1 or 0. StoryRMB (THU-KEG, 2026) has 1,133 instances with three
rejected stories each; its best reward model scored 66.3%.

Scores are appended to `scores.jsonl` as each chunk finishes, so a crashed or interrupted
evaluation (an LLM judge over HTTP, say) resumes where it stopped.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.progress import Progress

from posttrain.data.io import DataError, append_jsonl, read_jsonl, repair_torn_tail
from posttrain.eval.set_scorers import SetScorer


def load_instances(path: str | Path) -> list[dict[str, Any]]:
    """Benchmark instances from JSONL; a malformed row is an error naming file and line."""
    rows = read_jsonl(path)
    if not rows:
        raise DataError("no instances", path)
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        where = f"{path}: instance {number}"
        for key in ("id", "prompt", "chosen", "rejected"):
            if key not in row:
                raise DataError(f"{where} lacks {key!r}")
        if not isinstance(row["prompt"], str) or not isinstance(row["chosen"], str):
            raise DataError(f"{where}: 'prompt' and 'chosen' must be strings")
        rejected = row["rejected"]
        if not isinstance(rejected, list) or not rejected:
            raise DataError(f"{where}: 'rejected' must be a non-empty list of strings")
        if not all(isinstance(r, str) for r in rejected):
            raise DataError(f"{where}: 'rejected' must be a non-empty list of strings")
        for key in ("dimensions", "routes"):
            if key in row and (not isinstance(row[key], list) or len(row[key]) != len(rejected)):
                raise DataError(f"{where}: {key!r} must list one label per rejected response")
        key = str(row["id"])
        if key in seen:
            raise DataError(f"{where}: id {key!r} repeats instance {seen[key]}")
        seen[key] = number
    return rows


def tie_credit(scores: list[float]) -> float:
    """Credit for one instance whose `scores[0]` is the chosen candidate's."""
    top = max(scores)
    tied = [i for i, s in enumerate(scores) if s == top]
    return 1.0 / len(tied) if 0 in tied else 0.0


def evaluate_scorer(
    scorer: SetScorer,
    instances: list[dict[str, Any]],
    out_dir: str | Path | None = None,
    chunk_size: int = 32,
) -> dict[str, Any]:
    """Score every instance and summarise; with `out_dir`, append scores and resume from them.

    Writes `out_dir/scores.jsonl` (one record per instance, as chunks finish) and
    `out_dir/results.json` (the summary this returns).
    """
    if not instances:
        raise ValueError("no instances to evaluate")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    records: dict[str, dict[str, Any]] = {}
    scores_path = None
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        scores_path = out_dir / "scores.jsonl"
        if scores_path.exists():
            repair_torn_tail(scores_path)  # a kill mid-append: that instance is scored again
            wanted = {str(i["id"]) for i in instances}
            records = {r["id"]: r for r in read_jsonl(scores_path) if r["id"] in wanted}
    todo = [i for i in instances if str(i["id"]) not in records]
    with Progress(transient=True, disable=not sys.stdout.isatty()) as progress:
        task = progress.add_task(
            f"rm-bench {scorer.name}", total=len(instances), completed=len(records)
        )
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start : start + chunk_size]
            scored = scorer.score_sets(
                [i["prompt"] for i in chunk], [[i["chosen"], *i["rejected"]] for i in chunk]
            )
            for instance, scores in zip(chunk, scored, strict=True):
                record = {
                    "id": str(instance["id"]),
                    "dimension": instance.get("dimension"),
                    "rejected_dimensions": instance.get("dimensions"),
                    "rejected_routes": instance.get("routes"),
                    "scores": scores,
                    "credit": tie_credit(scores),
                    "random": 1.0 / len(scores),
                }
                records[record["id"]] = record
                if scores_path is not None:
                    append_jsonl(scores_path, record)
            progress.advance(task, len(chunk))
    results = summarise([records[str(i["id"])] for i in instances], scorer.name)
    if out_dir is not None:
        (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    return results


def summarise(records: list[dict[str, Any]], scorer: str) -> dict[str, Any]:
    """Overall and per-dimension accuracy with their random baselines and counts."""

    def block(chosen: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "n": len(chosen),
            "accuracy": statistics.fmean(r["credit"] for r in chosen),
            "random_baseline": statistics.fmean(r["random"] for r in chosen),
        }

    by_dimension: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record.get("dimension"):
            by_dimension[record["dimension"]].append(record)
    return {
        "scorer": scorer,
        **block(records),
        "ties_at_top": sum(_tied(r["scores"]) for r in records),
        "per_dimension": {d: block(rs) for d, rs in sorted(by_dimension.items())},
        "pairwise_per_dimension": _pairwise(records, "rejected_dimensions"),
        "pairwise_per_route": _pairwise(records, "rejected_routes"),
    }


def _pairwise(records: list[dict[str, Any]], labels: str) -> dict[str, dict[str, Any]]:
    """Chosen against each rejected candidate on its own, grouped by that candidate's label
    (the dimension or route its flaw harms): which flaws a scorer notices. A tie is half."""
    wins: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if not record.get(labels):
            continue
        chosen, *rejected = record["scores"]
        for label, score in zip(record[labels], rejected, strict=True):
            wins[label].append(1.0 if chosen > score else 0.5 if chosen == score else 0.0)
    return {
        label: {"n": len(values), "accuracy": statistics.fmean(values)}
        for label, values in sorted(wins.items())
    }


def _tied(scores: list[float]) -> bool:
    return scores.count(max(scores)) > 1
