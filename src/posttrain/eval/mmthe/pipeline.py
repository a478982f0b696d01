"""The MM-THEBench run: ask the model, segment its chains, label every step, measure.

Stages, each an append-only `ItemLog` in the output directory, so a rerun resumes and pays
for nothing it already has:

1. `answers.jsonl`: every item asked once (the image and the question, `scene_prompt`), the
   output segmented into steps and an answer (`segment.segment_chain`), the answer graded.
   A chain's `format_ok` is False where no answer was found or, for an item with choices
   (spatial questions: "Answer with left or right"), where the answer is none of them.
2. `verifier.jsonl`: the rule verifier's step labels, for items that carry a scene graph
   (the generated ones; a user's items have none and are left to the judges).
3. `judge-<i>-<name>.jsonl`: each LLM judge's step labels (`judge.StepJudge`), the file
   named by the judge too, so another judge in place i never reuses them; with several
   judges, their majority vote is a label source of its own.

`results.json` holds, per label source, the metrics at every level (`metrics.mmthe_metrics`)
and each judge's agreement with the verifier (`agreement.judge_agreement`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from posttrain.eval.core import ItemLog, Record, map_items
from posttrain.eval.mmthe.agreement import judge_agreement
from posttrain.eval.mmthe.judge import JudgeResult, StepJudge, vote_items
from posttrain.eval.mmthe.metrics import mmthe_metrics
from posttrain.eval.mmthe.segment import Chain, segment_chain
from posttrain.eval.mmthe.taxonomy import StepLabel
from posttrain.eval.mmthe.verifier import answer_allowed, answer_correct, verify_steps
from posttrain.models.chat.base import ChatModel, Conversation, GenerationParams

VERIFIER = "rule-verifier"
VOTE = "judge-vote"


@dataclass
class MMTheConfig:
    batch_size: int = 16
    max_tokens: int = 160
    """Enough for the gold chains (at most about 8 steps) and some rambling."""
    judge_retries: int = 2
    judge_max_tokens: int = 1024
    position_bins: int = 3
    resamples: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_tokens < 1:
            raise ValueError(
                f"batch_size and max_tokens must be >= 1, got {self.batch_size}, {self.max_tokens}"
            )


def judge_log_name(number: int, name: str) -> str:
    """The log of judge `number` (its place among the judges) named `name`."""
    return f"judge-{number}-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)[:80]}.jsonl"


def _asker(model: ChatModel, params: GenerationParams, prompt: Callable[[Record], Conversation]):  # noqa: ANN202
    def ask(batch: Sequence[Record]) -> list[Record]:
        replies = model.chat([prompt(item) for item in batch], params)
        records = []
        for item, reply in zip(batch, replies, strict=True):
            chain = segment_chain(reply.text)
            chain.format_ok = answer_allowed(item, chain.answer)
            records.append(
                {
                    "output": reply.text,
                    "model": reply.model,
                    "chain": chain.to_dict(),
                    "answer_correct": answer_correct(item, chain.answer),
                }
            )
        return records

    return ask


def _verifier(answers: dict[str, Record]):  # noqa: ANN202
    def label(batch: Sequence[Record]) -> list[Record]:
        return [
            {
                "labels": [
                    x.to_dict() for x in verify_steps(item, answers[item["id"]]["chain"]["steps"])
                ]
            }
            for item in batch
        ]

    return label


def _judging(judge: StepJudge, answers: dict[str, Record]):  # noqa: ANN202
    def label(batch: Sequence[Record]) -> list[Record]:
        chains = [answers[item["id"]]["chain"]["steps"] for item in batch]
        return [r.to_dict() for r in judge.judge_steps(batch, chains)]

    return label


def _metric_rows(
    items: Sequence[Record], answers: dict[str, Record], labels: dict[str, list[StepLabel]]
) -> list[dict[str, Any]]:
    return [
        {
            "item": item,
            "chain": Chain.from_dict(answers[item["id"]]["chain"]),
            "labels": labels[item["id"]],
            "answer_correct": answers[item["id"]]["answer_correct"],
        }
        for item in items
        if item["id"] in labels
    ]


def run_mmthe(
    model: ChatModel,
    items: Sequence[Record],
    out_dir: Path,
    judges: Sequence[ChatModel] = (),
    config: MMTheConfig | None = None,
    prompt: Callable[[Record], Conversation] | None = None,
) -> dict[str, Any]:
    """Run every stage over `items` (from `load_items`: images as paths or data URLs) and
    return the results (also written to `out_dir/results.json` by the caller)."""
    from posttrain.data.scenes.sft import scene_prompt

    config = config or MMTheConfig()
    prompt = prompt or scene_prompt
    out_dir.mkdir(parents=True, exist_ok=True)
    params = GenerationParams(max_tokens=config.max_tokens)
    answers = {
        r["id"]: r
        for r in map_items(
            items,
            _asker(model, params, prompt),
            ItemLog(out_dir / "answers.jsonl", key="id"),
            f"asking {model.name}",
            config.batch_size,
        )
    }
    sources: dict[str, dict[str, list[StepLabel]]] = {}
    verifiable = [item for item in items if item.get("scene")]
    if verifiable:
        records = map_items(
            verifiable,
            _verifier(answers),
            ItemLog(out_dir / "verifier.jsonl", key="id"),
            "rule verifier",
            config.batch_size,
        )
        sources[VERIFIER] = {
            r["id"]: [StepLabel.from_dict(x) for x in r["labels"]] for r in records
        }
    per_judge: list[list[JudgeResult]] = []
    failures: dict[str, list[str]] = {}
    judge_params = GenerationParams(max_tokens=config.judge_max_tokens)
    for number, judge_model in enumerate(judges):
        judge = StepJudge(judge_model, retries=config.judge_retries, params=judge_params)
        records = map_items(
            items,
            _judging(judge, answers),
            ItemLog(out_dir / judge_log_name(number, judge.name), key="id"),
            f"judging with {judge.name}",
            config.batch_size,
        )
        results = [JudgeResult.from_dict(r) for r in records]
        per_judge.append(results)
        name = f"judge-{number}:{judge.name}"
        sources[name] = {r.item_id: r.labels for r in results if r.ok}
        failures[name] = [r.error for r in results if r.error]
    if len(per_judge) > 1:
        sources[VOTE] = {r.item_id: r.labels for r in vote_items(per_judge)}
    metrics = {
        name: mmthe_metrics(
            _metric_rows(items, answers, labels),
            position_bins=config.position_bins,
            resamples=config.resamples,
            seed=config.seed,
        )
        for name, labels in sources.items()
    }
    agreement = {
        name: judge_agreement(labels, sources[VERIFIER])
        for name, labels in sources.items()
        if name != VERIFIER and VERIFIER in sources
    }
    return {
        "model": model.name,
        "items": len(items),
        "by_split": _count(items, "split"),
        "by_task": _count(items, "task"),
        "label_sources": list(sources),
        "metrics": metrics,
        "agreement_with_verifier": agreement,
        "judge_failures": failures,
        "judge_logs": [judge_log_name(i, j.name) for i, j in enumerate(judges)],
        "config": asdict(config),
    }


def _count(items: Sequence[Record], key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[str(item.get(key))] = counts.get(str(item.get(key)), 0) + 1
    return counts
