"""The `posttrain rpc` workflows: answer, judge, score, consistency.

Layout of an answers folder ``DIR``:

- ``run.json``: the data file, papers folder and answering model, so `judge` finds the
  questions again and a rerun cannot mix two models' answers in one file;
- ``answers.jsonl``: one record per item (``key, id, part_idx, category, question,
  reference_answer, answer, model``), appended as produced and resumed;
- ``judgments/<judge>.jsonl``: per judge, one record per judged (non-claim) item, with the
  raw replies as ``score``: a line is a valid RPC-Bench score-file line, so the file can be
  put in a judge folder as ``<model>_score.json`` for `consistency`;
- ``scores.json``, ``scores_by_category.png`` and ``report.html`` from `score`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from posttrain.data.io import DataError, read_text
from posttrain.eval.core import ItemLog, chat_with_cache, map_items
from posttrain.eval.rpc.answer import conversation, finish_answer
from posttrain.eval.rpc.consistency import consistency_table
from posttrain.eval.rpc.data import CLAIM, load_items
from posttrain.eval.rpc.judge import RPCJudge, judge_label
from posttrain.eval.rpc.scores import score_run
from posttrain.models.chat.base import GenerationParams

ANSWERS = "answers.jsonl"
RUN = "run.json"
JUDGMENTS = "judgments"


def slug(name: str) -> str:
    """A file-name form of a model name (no ``_``, which score-file names reserve)."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-") or "model"


def _read_run(out: Path) -> dict[str, Any]:
    path = out / RUN
    if not path.is_file():
        raise DataError(f"{out} holds no answers ({RUN} missing); run `posttrain rpc answer`")
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: not valid JSON: {err.msg}") from None


def answer(
    data: Path,
    model_spec: str,
    out: Path,
    papers: Path | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    max_tokens: int = 1024,
) -> dict[str, Any]:
    """Answer every item not yet in ``out/answers.jsonl``; returns a summary."""
    items = load_items(data, papers, limit)
    run = {"data": str(Path(data).resolve()), "papers": str(papers.resolve()) if papers else None}
    run["model_spec"] = model_spec
    previous = _read_run(out) if (out / RUN).is_file() else None
    if previous is not None and {k: previous.get(k) for k in run} != run:
        raise ValueError(
            f"{out} already holds answers of {previous.get('model_spec')!r} on "
            f"{previous.get('data')!r}; use another --out"
        )
    log = ItemLog(out / ANSWERS)
    before = len(log)
    model = chat_with_cache(model_spec, out / "answer-cache.sqlite")
    run["model"] = model.name
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    params = GenerationParams(temperature=0.0, max_tokens=max_tokens)

    def ask(batch):  # noqa: ANN001, ANN202
        results = model.chat([conversation(item) for item in batch], params)
        return [
            {
                "id": item["id"],
                "part_idx": item["part_idx"],
                "category": item["category"],
                "question": item["question"],
                "reference_answer": item["reference_answer"],
                **finish_answer(item, result.text if result.choices else ""),
                "model": result.model,
            }
            for item, result in zip(batch, results, strict=True)
        ]

    records = map_items(items, ask, log, "answering", batch_size)
    return {
        "model": model.name,
        "items": len(items),
        "new": len(log) - before,
        "claim_invalid": sum(bool(r.get("claim_invalid")) for r in records),
        "answers": str(out / ANSWERS),
    }


def judge(
    answers_dir: Path, judge_specs: list[str], max_retries: int = 2, batch_size: int = 8
) -> dict[str, Any]:
    """Judge every answered non-claim item with each judge; resumable per judge."""
    run = _read_run(answers_dir)
    items = {i["key"]: i for i in load_items(run["data"], run.get("papers"))}
    answers = ItemLog(answers_dir / ANSWERS)
    todo = [a for a in answers.records.values() if a["category"] != CLAIM]
    missing = [a["key"] for a in todo if a["key"] not in items]
    if missing:
        raise DataError(f"{run['data']}: no item {missing[0]!r} (answered in {answers_dir})")
    summary: dict[str, Any] = {}
    for spec in judge_specs:
        cache = answers_dir / JUDGMENTS / f"{slug(spec)}.cache.sqlite"
        rpc_judge = RPCJudge(chat_with_cache(spec, cache), max_retries=max_retries)
        log = ItemLog(answers_dir / JUDGMENTS / f"{slug(rpc_judge.name)}.jsonl")
        before = len(log)

        def rate(batch, rpc_judge=rpc_judge):  # noqa: ANN001, ANN202
            return rpc_judge.judge_batch([(items[a["key"]], a["answer"]) for a in batch])

        records = map_items(todo, rate, log, f"judging ({rpc_judge.name})", batch_size)
        summary[rpc_judge.name] = {
            "label": judge_label(rpc_judge.name),
            "judged": len(records),
            "new": len(log) - before,
            "failed_dimensions": sum(len(r.get("failed", [])) for r in records),
            **{k: v for k, v in rpc_judge.stats.as_dict().items() if k in ("calls", "retries")},
            "file": str(log.path),
        }
    return summary


def score(answers_dir: Path) -> dict[str, Any]:
    """Write ``scores.json``, the per-category bar plot and ``report.html``; returns the
    scores."""
    from posttrain.report import plot_bars, write_report

    run = _read_run(answers_dir)
    answers = list(ItemLog(answers_dir / ANSWERS).records.values())
    if not answers:
        raise DataError(f"{answers_dir / ANSWERS}: no answers")
    judgments = {}
    for path in sorted((answers_dir / JUDGMENTS).glob("*.jsonl")):
        records = list(ItemLog(path).records.values())
        if records:
            judgments[str(records[0].get("judge", path.stem))] = records
    scores = {
        "model": run.get("model", run.get("model_spec")),
        "judge_labels": {name: judge_label(name) for name in judgments},
        **score_run(answers, judgments),
    }
    (answers_dir / "scores.json").write_text(json.dumps(scores, indent=2) + "\n", "utf-8")
    if judgments:
        metrics = ("correctness", "completeness", "f1", "conciseness_adjusted")
        groups = {"overall": {m: scores[m] for m in metrics}}
        for category, row in scores["categories"].items():
            if category != CLAIM:
                groups[category.replace("_", "\n")] = {m: row[m] for m in metrics}
        title = f"RPC-Bench: {scores['model']}, judged by " + ", ".join(
            scores["judge_labels"].values()
        )
        plot_bars(groups, answers_dir / "scores_by_category.png", title)
    write_report(answers_dir, title=f"RPC-Bench: {scores['model']}")
    return scores


def consistency(pairwise: Path, judge_dirs: list[Path], out: Path | None = None) -> dict[str, Any]:
    """The judge–human consistency table; also written to ``out`` (JSON) when given."""
    table = consistency_table(pairwise, judge_dirs)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        judges = {
            name: {k: v if math.isfinite(v) else None for k, v in metrics.items()}
            for name, metrics in table["judges"].items()
        }
        text = json.dumps({**table, "judges": judges}, indent=2, allow_nan=False)
        out.write_text(text + "\n", encoding="utf-8")
    return table
