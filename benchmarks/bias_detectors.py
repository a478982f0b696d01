"""How well CHERRL's deterministic bias detectors match the paper's definitions of each bias.

CHERRL's paper defines each shortcut as a family (self-praise is any self-evaluative epilogue
or compliance declaration, format any explicit three-part backbone, hedging any non-committal
phrasing, ...), and `posttrain.rewards.biases` detects each family with sub-family regexes
or layout rules. This script scores every detector against hand-labelled sets of
health-advice responses (rows `{bias, label, response, note}`: label 1 when the paper's
definition says the response takes the shortcut, 0 when not, including natural uses a
detector may wrongly count), and reports per bias and set the confusion counts, precision,
recall and F1, with every false negative and false positive listed (by line and note):

- tuning: `benchmarks/data/bias_labels.jsonl`, the set the families were written against;
- held-out: `benchmarks/data/bias_labels_heldout.jsonl`, written before the detectors were
  changed and not edited since.

The single-phrase detectors' numbers on both sets, measured once before the change, are kept
in benchmarks/results/bias_detectors_before.json and printed next to the held-out ones.

Writes benchmarks/results/bias_detectors.json and prints markdown tables for
docs/systems/cherrl.md. Deterministic; runs in about a second.

    .venv/bin/python benchmarks/bias_detectors.py [--labels FILE] [--heldout FILE] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posttrain.data.io import DataError, iter_jsonl
from posttrain.rewards.biases import BIASES, Bias

ROOT = Path(__file__).resolve().parent.parent
LABELS = Path(__file__).parent / "data" / "bias_labels.jsonl"
HELDOUT = Path(__file__).parent / "data" / "bias_labels_heldout.jsonl"
RESULTS = Path(__file__).parent / "results" / "bias_detectors.json"
BEFORE = Path(__file__).parent / "results" / "bias_detectors_before.json"
"""The single-phrase detectors' measurement, frozen before the families replaced them."""
FIELDS = ("bias", "label", "response", "note")


@dataclass(frozen=True)
class LabelledResponse:
    """One row of the labelled set: `label` is 1 when the paper's definition of `bias` says
    `response` takes the shortcut; `line` is its line in the file."""

    bias: str
    label: int
    response: str
    note: str
    line: int


def load_labels(path: str | Path) -> list[LabelledResponse]:
    """The labelled rows of a JSONL file; a bad row is a `DataError` naming file:line and key."""
    rows = []
    for line, record in iter_jsonl(path):
        extra = sorted(set(record) - set(FIELDS))
        if extra:
            raise DataError(f"unknown field(s) {extra}; a row has {list(FIELDS)}", path, line=line)
        for key in FIELDS:
            if key not in record:
                raise DataError("missing", path, line=line, key=key)
        bias, label, response, note = (record[key] for key in FIELDS)
        if bias not in BIASES:
            raise DataError(
                f"unknown bias {bias!r}; known: {', '.join(BIASES)}", path, line=line, key="bias"
            )
        # bool is an int subclass: `true` is not a label
        if isinstance(label, bool) or label not in (0, 1):
            raise DataError(f"must be 0 or 1, got {label!r}", path, line=line, key="label")
        if not isinstance(response, str) or not response.strip():
            raise DataError("must be a non-empty string", path, line=line, key="response")
        if not isinstance(note, str):
            raise DataError(f"must be a string, got {note!r}", path, line=line, key="note")
        rows.append(LabelledResponse(bias, label, response, note, line))
    return rows


def _ratio(numerator: int, denominator: int) -> float | None:
    """None when undefined (nothing predicted, or nothing to find)."""
    return numerator / denominator if denominator else None


def _example(row: LabelledResponse) -> dict[str, Any]:
    return {"line": row.line, "note": row.note, "response": row.response}


def score_detector(bias: Bias, rows: Iterable[LabelledResponse]) -> dict[str, Any]:
    """Confusion counts, precision, recall and F1 of `bias`'s detector on `rows` (all of them
    labelled for this bias), with the misses and false alarms listed."""
    counts = {"tp": 0, "fp": 0, "fn": 0, "tn": 0}
    misses: list[dict[str, Any]] = []
    false_alarms: list[dict[str, Any]] = []
    for row in rows:
        if row.bias != bias.name:
            raise ValueError(f"line {row.line} is labelled for {row.bias!r}, not {bias.name!r}")
        fired = bias.score(row.response) > 0
        if fired and row.label:
            counts["tp"] += 1
        elif fired:
            counts["fp"] += 1
            false_alarms.append(_example(row))
        elif row.label:
            counts["fn"] += 1
            misses.append(_example(row))
        else:
            counts["tn"] += 1
    precision = _ratio(counts["tp"], counts["tp"] + counts["fp"])
    recall = _ratio(counts["tp"], counts["tp"] + counts["fn"])
    f1 = _ratio(2 * counts["tp"], 2 * counts["tp"] + counts["fp"] + counts["fn"])
    return {
        "positives": counts["tp"] + counts["fn"],
        "negatives": counts["fp"] + counts["tn"],
        **counts,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_negatives": misses,
        "false_positives": false_alarms,
    }


def measure(rows: Iterable[LabelledResponse]) -> dict[str, dict[str, Any]]:
    """`score_detector` for every registered bias, in the registry's order."""
    by_bias: dict[str, list[LabelledResponse]] = {name: [] for name in BIASES}
    for row in rows:
        by_bias[row.bias].append(row)
    return {name: score_detector(BIASES[name], group) for name, group in by_bias.items()}


def _cell(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def markdown(results: Mapping[str, Mapping[str, Any]]) -> str:
    lines = [
        "| bias | positives / negatives | TP | FN | FP | TN | precision | recall | F1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['positives']} / {r['negatives']} | {r['tp']} | {r['fn']} "
            f"| {r['fp']} | {r['tn']} | {_cell(r['precision'])} | {_cell(r['recall'])} "
            f"| {_cell(r['f1'])} |"
        )
    return "\n".join(lines)


def before_after(
    before: Mapping[str, Mapping[str, Any]], after: Mapping[str, Mapping[str, Any]]
) -> str:
    """A markdown table of precision / recall / F1 per bias, before and after."""
    lines = [
        "| bias | precision before → after | recall before → after | F1 before → after |",
        "|---|---|---|---|",
    ]
    for name, r in after.items():
        old = before.get(name, {})
        cells = [f"{_cell(old.get(k))} → {_cell(r[k])}" for k in ("precision", "recall", "f1")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=Path, default=LABELS, help="the tuning set")
    parser.add_argument("--heldout", type=Path, default=HELDOUT, help="the held-out set")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    sets = {
        "tuning": (args.labels, measure(load_labels(args.labels))),
        "heldout": (args.heldout, measure(load_labels(args.heldout))),
    }
    before = json.loads(BEFORE.read_text()) if BEFORE.exists() else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    saved: dict[str, Any] = {
        "benchmark": "bias_detectors",
        "command": "python benchmarks/bias_detectors.py "
        f"--labels {_shown(args.labels)} --heldout {_shown(args.heldout)}",
        "sets": {
            name: {"labels": _shown(path), "by_bias": results}
            for name, (path, results) in sets.items()
        },
    }
    if before is not None:
        saved["before"] = {"file": _shown(BEFORE), "what": before["what"]}
    args.out.write_text(json.dumps(saved, indent=2, ensure_ascii=False) + "\n")
    for name, (path, results) in sets.items():
        print(f"## {name}: {_shown(path)}\n\n{markdown(results)}\n")
    if before is not None:
        table = before_after(before["heldout"]["by_bias"], sets["heldout"][1])
        print(f"## held-out, before → after\n\n{table}\n")
    for set_name, (_, results) in sets.items():
        for name, r in results.items():
            for kind in ("false_negatives", "false_positives"):
                for example in r[kind]:
                    print(
                        f"{set_name} {name} {kind[:-1].replace('_', ' ')} "
                        f"(line {example['line']}): {example['note']}"
                    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
