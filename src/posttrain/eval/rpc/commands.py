"""The `posttrain rpc` workflows: answer, judge, score, consistency.

Layout of an answers folder ``DIR``:

- ``run.json``: the data file, papers folder, answering model and protocol (``posttrain`` or
  ``official`` with its RPC-Bench checkout), so `judge` finds the questions and prompts
  again and a rerun cannot mix two models' (or two protocols') answers in one file;
- ``answers.jsonl``: one record per item (``key, id, part_idx, category, question,
  reference_answer, answer, model``), appended as produced and resumed;
- ``judgments/<judge>.jsonl``: per judge, one record per judged (non-claim) item, with the
  raw replies as ``score``: a line is a valid RPC-Bench score-file line, so the file can be
  put in a judge folder as ``<model>_score.json`` for `consistency` (`export` does that);
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
from posttrain.eval.rpc.answer import finish_answer
from posttrain.eval.rpc.consistency import consistency_table
from posttrain.eval.rpc.data import CLAIM, item_key, load_items
from posttrain.eval.rpc.judge import judge_label
from posttrain.eval.rpc.protocol import Protocol, load_protocol
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


def _run_protocol(run: dict[str, Any]) -> Protocol:
    """The protocol an answers folder was made with (``posttrain`` before it was recorded)."""
    return load_protocol(run.get("protocol", "posttrain"), run.get("rpc_bench"))


def answer(
    data: Path,
    model_spec: str,
    out: Path,
    papers: Path | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    max_tokens: int = 1024,
    protocol: str = "posttrain",
    rpc_bench: Path | None = None,
) -> dict[str, Any]:
    """Answer every item not yet in ``out/answers.jsonl``; returns a summary."""
    rules = load_protocol(protocol, rpc_bench)
    papers = papers if papers is not None else rules.default_papers
    items = load_items(data, papers, limit, rules.paper_text)
    run = {"data": str(Path(data).resolve()), "papers": str(papers.resolve()) if papers else None}
    run["model_spec"] = model_spec
    run["protocol"] = rules.name
    run["rpc_bench"] = str(rules.rpc_bench) if rules.rpc_bench else None
    previous = _read_run(out) if (out / RUN).is_file() else None
    if previous is not None:
        before = {k: previous.get(k) for k in run}
        before["protocol"] = previous.get("protocol", "posttrain")  # folders made before it
        if before != run:
            raise ValueError(
                f"{out} already holds answers of {previous.get('model_spec')!r} on "
                f"{previous.get('data')!r} (protocol {before['protocol']}); use another --out"
            )
    log = ItemLog(out / ANSWERS)
    before = len(log)
    model = chat_with_cache(model_spec, out / "answer-cache.sqlite")
    run["model"] = model.name
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN).write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    params = GenerationParams(temperature=0.0, max_tokens=max_tokens)

    def ask(batch):  # noqa: ANN001, ANN202
        results = model.chat([rules.conversation(item) for item in batch], params)
        return [
            {
                "id": item["id"],
                "part_idx": item["part_idx"],
                "category": item["category"],
                "question": item["question"],
                "reference_answer": item["reference_answer"],
                **finish_answer(item, result.text if result.choices else "", rules.claim_verdict),
                "model": result.model,
            }
            for item, result in zip(batch, results, strict=True)
        ]

    records = map_items(items, ask, log, "answering", batch_size)
    return {
        "model": model.name,
        "protocol": rules.name,
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
    rules = _run_protocol(run)
    items = {
        i["key"]: i for i in load_items(run["data"], run.get("papers"), None, rules.paper_text)
    }
    answers = ItemLog(answers_dir / ANSWERS)
    todo = [a for a in answers.records.values() if a["category"] != CLAIM]
    missing = [a["key"] for a in todo if a["key"] not in items]
    if missing:
        raise DataError(f"{run['data']}: no item {missing[0]!r} (answered in {answers_dir})")
    summary: dict[str, Any] = {}
    for spec in judge_specs:
        cache = answers_dir / JUDGMENTS / f"{slug(spec)}.cache.sqlite"
        rpc_judge = rules.judge(chat_with_cache(spec, cache), max_retries)
        log = ItemLog(answers_dir / JUDGMENTS / f"{slug(rpc_judge.name)}.jsonl")
        before = len(log)

        def rate(batch, rpc_judge=rpc_judge):  # noqa: ANN001, ANN202
            return rpc_judge.judge_batch([(items[a["key"]], a["answer"]) for a in batch])

        records = map_items(todo, rate, log, f"judging ({rpc_judge.name})", batch_size)
        summary[rpc_judge.name] = {
            "label": judge_label(rpc_judge.name),
            "protocol": rules.name,
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
        "protocol": run.get("protocol", "posttrain"),
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


SCORE_FIELDS = ("id", "part_idx", "question", "reference_answer", "predicted_answer", "category")


def export(answers_dir: Path, out: Path, name: str | None = None) -> dict[str, Any]:
    """Write each judge's records as RPC-Bench's ``OUT/<judge>/<name>_score.json``, the
    score files eval.py averages and the consistency tool reads (one judge folder each).

    ``name`` is the answering model as the human preferences name it (default: a file-name
    form of the model); it may not contain ``_``, which ends the name in a score-file name.
    """
    run = _read_run(answers_dir)
    name = name if name is not None else slug(str(run.get("model", run.get("model_spec"))))
    if not name or "_" in name or "/" in name:
        raise ValueError(f"--name must be non-empty, without '_' or '/', got {name!r}")
    answers = ItemLog(answers_dir / ANSWERS).records
    files: dict[str, str] = {}
    for path in sorted((answers_dir / JUDGMENTS).glob("*.jsonl")):
        records = list(ItemLog(path).records.values())
        if not records:
            continue
        judge_name = str(records[0].get("judge", path.stem))
        lines = []
        for record in records:
            answered = answers.get(item_key(record["id"], record["part_idx"]))
            if answered is None:
                raise DataError(
                    f"{path}: item {record['id']}_{record['part_idx']} has no answer in "
                    f"{answers_dir / ANSWERS}"
                )
            row = {k: answered.get(k) for k in SCORE_FIELDS}
            row["predicted_answer"] = record["predicted_answer"]
            row["score"] = record["score"]
            lines.append(json.dumps(row, ensure_ascii=False))
        target = out / slug(judge_name) / f"{name}_score.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files[judge_name] = str(target)
    if not files:
        raise DataError(f"{answers_dir / JUDGMENTS}: no judgments; run `posttrain rpc judge`")
    return {"model": name, "protocol": run.get("protocol", "posttrain"), "files": files}


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
