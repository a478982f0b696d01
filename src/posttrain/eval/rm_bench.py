"""Reward-model benchmarks of one chosen response against rejected ones: StoryRMB and
RewardBench 2 rows, scored as RewardBench 2 scores them.

A StoryRMB instance is `{id, prompt, chosen, rejected: [r1, r2, ...], dimension?}`,
optionally with `dimensions` / `routes` naming what each rejected response's flaw harms.
A RewardBench 2 row (allenai/reward-bench-2) is `{id, prompt, chosen: [c], rejected:
[r1, r2, r3], subset, num_correct?, ...}`; its Ties subset lists several correct answers
as `chosen`. Accuracy follows RewardBench 2's tie credit: an instance scores 1 / (number of
candidates tied at the top score) when the chosen response is among them, else 0, so a
scorer that cannot tell the candidates apart earns exactly the random baseline,
1 / (1 + number rejected), instead of a lucky 1 or 0. Ties-subset prompts are accurate
when every correct answer strictly outscores every incorrect one, and the subset's score
is RewardBench 2's weighted mix of accuracy and margins (`ties_score`). Results are per
StoryRMB dimension and per RewardBench 2 subset. StoryRMB (THU-KEG, 2026) has 1,133
instances with three rejected stories each; its best reward model scored 66.3%.

Scores are appended to `scores.jsonl` as each chunk finishes, so a crashed or interrupted
evaluation (an LLM judge over HTTP, say) resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from rich.progress import Progress

from posttrain.data.io import DataError, append_jsonl, read_jsonl, read_records, repair_torn_tail
from posttrain.eval.set_scorers import SetScorer


def load_instances(path: str | Path) -> list[dict[str, Any]]:
    """Benchmark instances from JSONL, parquet or a saved dataset (RewardBench 2 ships
    parquet); a malformed row is an error naming the file and the instance (row) number.

    A row whose `chosen` is a string is StoryRMB's layout; a list, RewardBench 2's (one
    chosen response, or several in its Ties subset, whose ids read `ref:N` / `tied:N`).
    """
    rows = read_records(path)
    if not rows:
        raise DataError("no instances", path)
    seen: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        where = f"{path}: instance {number}"
        for key in ("id", "prompt", "chosen", "rejected"):
            if key not in row:
                raise DataError(f"{where} lacks {key!r}")
        if not isinstance(row["prompt"], str):
            raise DataError(f"{where}: 'prompt' must be a string")
        for key in ("chosen", "rejected"):
            value = row[key]
            if key == "chosen" and isinstance(value, str):
                continue
            if not isinstance(value, list) or not value:
                raise DataError(f"{where}: {key!r} must be a non-empty list of strings")
            if not all(isinstance(r, str) for r in value):
                raise DataError(f"{where}: {key!r} must be a non-empty list of strings")
        rejected = row["rejected"]
        for key in ("dimensions", "routes"):
            if key in row and (not isinstance(row[key], list) or len(row[key]) != len(rejected)):
                raise DataError(f"{where}: {key!r} must list one label per rejected response")
        _check_rewardbench2(row, where)
        key = str(row["id"])
        if key in seen:
            raise DataError(f"{where}: id {key!r} repeats instance {seen[key]}")
        seen[key] = number
    return rows


def _check_rewardbench2(row: dict[str, Any], where: str) -> None:
    """RewardBench 2's rules for a row: several chosen responses only in the Ties subset,
    whose ids pair a reference prompt with its tied version (`ref:N`, `tied:N`), and
    `num_correct`, when given, counting the chosen responses."""
    correct = num_correct(row)
    if "num_correct" in row and row["num_correct"] != correct:
        raise DataError(
            f"{where}: num_correct is {row['num_correct']!r} but 'chosen' has {correct}"
        )
    subset = row.get("subset")
    if subset is not None and not isinstance(subset, str):
        raise DataError(f"{where}: 'subset' must be a string, got {subset!r}")
    if is_ties(row):
        kind, _, prompt_id = str(row["id"]).partition(":")
        if kind not in ("ref", "tied") or not prompt_id:
            raise DataError(
                f"{where}: a Ties-subset id must read ref:N or tied:N (RewardBench 2 pairs "
                f"the two by N), got {row['id']!r}"
            )
    elif correct > 1:
        raise DataError(
            f"{where}: {correct} chosen responses; only RewardBench 2's Ties subset scores "
            "several (give one chosen response, or subset 'Ties')"
        )


def is_ties(row: dict[str, Any]) -> bool:
    """Whether a row or record is in RewardBench 2's Ties subset (scored its own way)."""
    subset = row.get("subset")
    return isinstance(subset, str) and subset.lower() == "ties"


def candidates(instance: dict[str, Any]) -> list[str]:
    """An instance's responses, the chosen ones first (`num_correct` of them)."""
    chosen = instance["chosen"]
    return [*([chosen] if isinstance(chosen, str) else chosen), *instance["rejected"]]


def num_correct(instance: dict[str, Any]) -> int:
    """How many of an instance's candidates are chosen (correct) responses."""
    chosen = instance["chosen"]
    return 1 if isinstance(chosen, str) else len(chosen)


def tie_credit(scores: list[float]) -> float:
    """Credit for one instance whose `scores[0]` is the chosen candidate's."""
    top = max(scores)
    tied = [i for i, s in enumerate(scores) if s == top]
    return 1.0 / len(tied) if 0 in tied else 0.0


def ties_margins(scores: list[float], correct: int) -> dict[str, Any]:
    """RewardBench 2's statistics of one Ties-subset prompt whose first `correct` scores are
    the correct answers': accurate when every correct answer outscores every incorrect one
    (strictly: a tie is a miss here), and the two margins its score weighs."""
    right, wrong = scores[:correct], scores[correct:]
    return {
        "accurate": min(right) > max(wrong),
        "correct_incorrect_margin": min(right) - max(wrong),
        "different_correct_margin": max(right) - min(right) if correct > 1 else None,
    }


def ties_score(records: list[dict[str, Any]]) -> dict[str, Any]:
    """RewardBench 2's Ties-subset score from its scored records (ids `ref:N` / `tied:N`):
    0.3 x accuracy on the tied prompts + 0.3 x accuracy on the reference prompts + 0.2 x the
    share of prompt pairs whose correct answers are closer to each other than to the best
    incorrect one (on the tied prompt; 0.2 more when that also holds with the smaller gap of
    the pair) + 0.01 x mean tanh(gap / spread - 1), as RewardBench 2's script computes it."""
    stats: dict[str, dict[str, dict[str, Any]]] = {"ref": {}, "tied": {}}
    for record in records:
        kind, _, prompt_id = record["id"].partition(":")
        stats[kind][prompt_id] = ties_margins(record["scores"], record.get("num_correct", 1))
    ref, tied = stats["ref"], stats["tied"]

    def mean(values: list[float]) -> float:
        return statistics.fmean(values) if values else 0.0

    pairs = [p for p in ref if p in tied and tied[p]["different_correct_margin"] is not None]
    spread = {p: tied[p]["different_correct_margin"] for p in pairs}
    gap = {
        p: min(ref[p]["correct_incorrect_margin"], tied[p]["correct_incorrect_margin"])
        for p in pairs
    }
    parts = {
        "ref_accuracy": mean([float(s["accurate"]) for s in ref.values()]),
        "tied_accuracy": mean([float(s["accurate"]) for s in tied.values()]),
        "correctness_preferred": mean(
            [float(tied[p]["correct_incorrect_margin"] > spread[p]) for p in pairs]
        ),
        "correctness_preferred_hard": mean([float(gap[p] > spread[p]) for p in pairs]),
        "correctness_margin_score": mean(
            [math.tanh(gap[p] / spread[p] - 1) for p in pairs if spread[p] > 0]
        ),
    }
    score = (
        0.3 * parts["tied_accuracy"]
        + 0.3 * parts["ref_accuracy"]
        + 0.2 * parts["correctness_preferred"]
        + 0.2 * parts["correctness_preferred_hard"]
        + 0.01 * parts["correctness_margin_score"]
    )
    return {"score": score, **parts}


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
            scored = scorer.score_sets([i["prompt"] for i in chunk], [candidates(i) for i in chunk])
            for instance, scores in zip(chunk, scored, strict=True):
                record = {
                    "id": str(instance["id"]),
                    "dimension": instance.get("dimension"),
                    "subset": instance.get("subset"),
                    "num_correct": num_correct(instance),
                    "rejected_dimensions": instance.get("dimensions"),
                    "rejected_routes": instance.get("routes"),
                    "scores": scores,
                    **_credit(instance, scores),
                }
                records[record["id"]] = record
                if scores_path is not None:
                    append_jsonl(scores_path, record)
            progress.advance(task, len(chunk))
    results = summarise([records[str(i["id"])] for i in instances], scorer.name)
    if out_dir is not None:
        (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    return results


def _credit(instance: dict[str, Any], scores: list[float]) -> dict[str, float]:
    """An instance's credit and its expectation under random scores. One chosen response:
    the tie credit. RewardBench 2's Ties subset: 1 when every correct answer strictly
    outscores every incorrect one, which random scores do with chance 1 / C(n, correct)."""
    if is_ties(instance):
        correct = num_correct(instance)
        return {
            "credit": float(ties_margins(scores, correct)["accurate"]),
            "random": 1.0 / math.comb(len(scores), correct),
        }
    return {"credit": tie_credit(scores), "random": 1.0 / len(scores)}


def summarise(records: list[dict[str, Any]], scorer: str) -> dict[str, Any]:
    """Overall, per-dimension and per-subset accuracy with random baselines and counts.

    With RewardBench 2 subsets, `per_subset[S]["score"]` is the subset's score as
    RewardBench 2 reports it (the accuracy; the weighted `ties_score` for Ties), and
    `mean_subset_score` their unweighted mean: RewardBench 2's overall score when the file
    holds all six subsets.
    """

    def block(chosen: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "n": len(chosen),
            "accuracy": statistics.fmean(r["credit"] for r in chosen),
            "random_baseline": statistics.fmean(r["random"] for r in chosen),
        }

    by_dimension: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_subset: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record.get("dimension"):
            by_dimension[record["dimension"]].append(record)
        if record.get("subset"):
            by_subset[record["subset"]].append(record)
    per_subset = {}
    for subset, chosen in sorted(by_subset.items()):
        row = block(chosen)
        row["score"] = row["accuracy"]
        if is_ties(chosen[0]):
            row.update(ties_score(chosen))
        per_subset[subset] = row
    summary = {
        "scorer": scorer,
        **block(records),
        "ties_at_top": sum(_tied(r["scores"]) for r in records),
        "per_dimension": {d: block(rs) for d, rs in sorted(by_dimension.items())},
        "pairwise_per_dimension": _pairwise(records, "rejected_dimensions"),
        "pairwise_per_route": _pairwise(records, "rejected_routes"),
    }
    if per_subset:
        summary["per_subset"] = per_subset
        summary["mean_subset_score"] = statistics.fmean(r["score"] for r in per_subset.values())
    return summary


def _pairwise(records: list[dict[str, Any]], labels: str) -> dict[str, dict[str, Any]]:
    """Chosen against each rejected candidate on its own, grouped by that candidate's label
    (the dimension or route its flaw harms): which flaws a scorer notices. A tie is half."""
    wins: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if not record.get(labels):
            continue
        chosen, rejected = record["scores"][0], record["scores"][record.get("num_correct", 1) :]
        for label, score in zip(record[labels], rejected, strict=True):
            wins[label].append(1.0 if chosen > score else 0.5 if chosen == score else 0.0)
    return {
        label: {"n": len(values), "accuracy": statistics.fmean(values)}
        for label, values in sorted(wins.items())
    }


def _tied(scores: list[float]) -> bool:
    return scores.count(max(scores)) > 1
