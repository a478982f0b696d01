"""`posttrain mmthe run`: load the model, the judges and the items, run the pipeline, print,
plot and report (with example items: the image and every step's labels)."""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from posttrain.eval.mmthe.pipeline import VERIFIER, MMTheConfig, run_mmthe

SCRIPTED_LABELS = {
    "scripted:scene-reader": "scripted:scene-reader (deterministic: reads the scene graph, "
    "injects labelled errors)",
}


def load_data(data: Path) -> list[dict[str, Any]]:
    """Items of a JSONL file, or of every `*.jsonl` split in a directory (as
    `write_scene_data` writes them: train, test, ood)."""
    from posttrain.data.io import DataError
    from posttrain.data.scenes.user_data import load_items

    if data.is_dir():
        files = sorted(data.glob("*.jsonl"))
        if not files:
            raise DataError("no *.jsonl item file in the directory", data)
    elif data.is_file():
        files = [data]
    else:
        raise DataError("no such file or directory", data)
    items = [item for file in files for item in load_items(file)]
    ids = [item["id"] for item in items]
    if len(set(ids)) != len(ids):
        raise DataError("item ids repeat across the files; give one file", data)
    return items


def model_label(spec: str, name: str) -> str:
    """How outputs name a model: scripted ones say they are scripted and what they do."""
    from posttrain.eval.mmthe.gold_judge import LABEL, NAME

    labels = {**SCRIPTED_LABELS, f"scripted:{NAME}": LABEL}
    return labels.get(spec, name)


def _rate(block: dict[str, Any] | None) -> float:
    return float(block["rate"]) if block and block.get("rate") is not None else 0.0


def plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """Hallucination rate by category, by step position, and before/after self-reflection,
    one bar per label source (rates over no steps drawn as 0)."""
    from posttrain.report import plot_bars

    metrics = results["metrics"]
    if not metrics:
        return []
    by_category = {
        category: {source: _rate(m["by_category"][category]) for source, m in metrics.items()}
        for category in next(iter(metrics.values()))["by_category"]
    }
    by_position: dict[str, dict[str, float]] = {}
    for source, m in metrics.items():
        for block in m["by_position"]:
            by_position.setdefault(block["bin"], {})[source] = _rate(block)
    reflection = {
        "before reflection": {
            s: _rate(m["reflection"]["step_rate_before"]) for s, m in metrics.items()
        },
        "from reflection on": {
            s: _rate(m["reflection"]["step_rate_from_reflection_on"]) for s, m in metrics.items()
        },
    }
    format_invalid = {
        task: {"format-invalid": _rate(block)}
        for task, block in next(iter(metrics.values()))["format_invalid_by_task"].items()
    }
    return [
        plot_bars(
            by_category, out_dir / "hallucination_by_category.png", "Hallucinated steps by category"
        ),
        plot_bars(
            by_position,
            out_dir / "hallucination_by_position.png",
            "Hallucinated steps by position in the chain",
        ),
        plot_bars(
            reflection,
            out_dir / "hallucination_reflection.png",
            "Hallucinated steps around self-reflection",
        ),
        plot_bars(
            format_invalid,
            out_dir / "format_invalid_by_task.png",
            "Outputs with no findable answer, by task",
        ),
    ]


def examples_html(
    items: Sequence[dict[str, Any]], out_dir: Path, shown: int, judge_logs: Sequence[str] = ()
) -> str:
    """`shown` items with their image, question, gold answer, the model's output and each
    step's labels from the verifier and the judges' logs `judge_logs` (the run's
    `judge_logs`): the first items with a hallucinated step, then others."""
    from posttrain.models.chat.images import decode_data_url

    answers = {r["id"]: r for r in _read(out_dir / "answers.jsonl")}
    sources = {VERIFIER: {r["id"]: r["labels"] for r in _read(out_dir / "verifier.jsonl")}}
    for name in judge_logs:
        sources[Path(name).stem] = {r["id"]: r["labels"] for r in _read(out_dir / name)}

    def bad(item: dict[str, Any]) -> bool:
        return any(
            x["label"] == "hallucinated" for s in sources.values() for x in s.get(item["id"], [])
        )

    chosen = sorted((i for i in items if i["id"] in answers), key=lambda i: not bad(i))[:shown]
    parts = ["<h2>Example items</h2>"]
    for item in chosen:
        image = item["image"]
        raw = decode_data_url(image) if image.startswith("data:") else Path(image).read_bytes()
        src = "data:image/png;base64," + base64.b64encode(raw).decode()
        answer = answers[item["id"]]
        rows = []
        for index, step in enumerate(answer["chain"]["steps"]):
            cells = []
            for labels in sources.values():
                found = next((x for x in labels.get(item["id"], []) if x["index"] == index), None)
                cells.append(_label_cell(found))
            rows.append(
                f"<tr><td>{index + 1}</td><td>{html.escape(step)}</td>{''.join(cells)}</tr>"
            )
        head = "".join(f"<th>{html.escape(name)}</th>" for name in sources)
        verdict = "correct" if answer["answer_correct"] else "wrong"
        parts.append(
            f"<h3>{html.escape(item['id'])} ({html.escape(str(item.get('task')))})</h3>"
            f"<img src='{src}' width='192'><p><b>Q:</b> {html.escape(item['question'])}<br>"
            f"<b>gold:</b> {html.escape(str(item['answer']))} — <b>model:</b> "
            f"{html.escape(str(answer['chain']['answer']))} ({verdict})</p>"
            f"<table><tr><th>#</th><th>step</th>{head}</tr>{''.join(rows)}</table>"
        )
    return "\n".join(parts)


def _label_cell(label: dict[str, Any] | None) -> str:
    if label is None:
        return "<td>–</td>"
    colour = {"correct": "#dfd", "hallucinated": "#fdd"}.get(label["label"], "#eee")
    text = label["label"]
    if label.get("category"):
        text += f": {label['category']}/{label.get('subcategory') or '?'}"
    return f"<td style='background:{colour}'>{html.escape(text)}</td>"


def _read(path: Path) -> list[dict[str, Any]]:
    """The records of a stage's log; none where the stage did not run (no verifier on user
    items)."""
    from posttrain.data.io import read_jsonl

    return read_jsonl(path) if path.exists() else []


def mmthe_run(
    model_spec: str,
    judge_specs: Sequence[str],
    data: Path,
    out_dir: Path,
    config: MMTheConfig | None = None,
    examples: int = 8,
) -> dict[str, Any]:
    """Everything `posttrain mmthe run` does except printing; returns the results."""
    from posttrain.eval.core import chat_with_cache
    from posttrain.eval.mmthe import gold_judge, scene_reader  # noqa: F401 - register scripts
    from posttrain.report import write_report

    items = load_data(data)
    model = chat_with_cache(model_spec, out_dir / "cache.sqlite")
    judges = [
        chat_with_cache(spec, out_dir / f"judge-cache-{i}.sqlite")
        for i, spec in enumerate(judge_specs)
    ]
    results = run_mmthe(model, items, out_dir, judges, config)
    results["model"] = model_label(model_spec, model.name)
    results["judges"] = [
        model_label(spec, j.name) for spec, j in zip(judge_specs, judges, strict=True)
    ]
    results["data"] = str(data)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    plots(results, out_dir)
    write_report(
        out_dir,
        title=f"MM-THEBench: {results['model']}",
        extra_html=examples_html(items, out_dir, examples, results["judge_logs"]),
    )
    return results


def table(results: dict[str, Any]) -> Any:
    """A rich table: per label source, the rates at every level."""
    from rich.table import Table

    out = Table(title=f"MM-THEBench — {results['model']} ({results['items']} items)")
    columns = ["labels", "answer acc", "CoT halluc.", "step halluc.", "perception", "knowledge",
               "reasoning", "right answer, bad chain", "format-invalid"]  # fmt: skip
    for name in columns:
        out.add_column(name)
    for source, m in results["metrics"].items():
        cats = m["by_category"]
        out.add_row(
            source,
            _fmt(m["answer_accuracy"]),
            _fmt(m["cot_hallucination"]),
            _fmt(m["step_hallucination"]),
            *(_fmt(cats[c]) for c in ("perception", "knowledge", "reasoning")),
            _fmt(m["correct_answer_hallucinated_chain"]["of_correct_answers"]),
            _fmt(m["format_invalid"]),
        )
    return out


def _fmt(block: dict[str, Any] | None) -> str:
    if not block or block.get("rate") is None:
        return "–"
    return f"{block['rate']:.1%} ({block['count']}/{block['total']})"
