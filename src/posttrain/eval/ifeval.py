"""IFEval scores of a response file: the four accuracies papers report, by the official code.

Google's evaluation (`evaluation_main.py`, which lm-evaluation-harness's `ifeval` task
repeats) reads two JSONL files: the benchmark's `input_data.jsonl` (`key`, `prompt`,
`instruction_id_list`, `kwargs`) and the model's responses (`prompt`, `response`). Responses
are joined to inputs by prompt text (for a prompt given twice, the last response counts) and
every input must have one. Each instruction is checked strictly and loosely
(`posttrain.rewards.ifeval.follow`), and four accuracies come out:

- prompt-level strict / loose: the share of prompts whose instructions are all followed;
- instruction-level strict / loose: the share of all instructions followed.

`score_files` also accepts a responses file whose rows carry `instruction_id_list` and
`kwargs` themselves (no inputs file then). With `out`, it writes Google's per-prompt files
`eval_results_strict.jsonl` and `eval_results_loose.jsonl` and `results.json`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from posttrain.atomic import staged_file, write_text
from posttrain.data.io import DataError, iter_jsonl
from posttrain.rewards.ifeval import check_row, follow

ACCURACIES = (
    "prompt_level_strict_acc",
    "inst_level_strict_acc",
    "prompt_level_loose_acc",
    "inst_level_loose_acc",
)
"""The four accuracies, named as lm-evaluation-harness's `ifeval` task names them."""


def _text(record: Mapping[str, Any], key: str, path: Path, line: int) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise DataError(f"needs a string {key!r}, got {value!r:.60}", path, line=line, key=key)
    return value


def load_inputs(path: str | Path) -> list[dict[str, Any]]:
    """IFEval inputs (`input_data.jsonl` rows), validated; errors name the file and line."""
    path = Path(path)
    inputs = []
    for line, record in iter_jsonl(path):
        _text(record, "prompt", path, line)
        try:
            check_row(record)
        except ValueError as err:
            raise DataError(str(err), path, line=line) from None
        inputs.append({**record, "_line": line})
    if not inputs:
        raise DataError("no IFEval rows", path)
    return inputs


def load_responses(path: str | Path) -> dict[str, str]:
    """prompt -> response from a `{prompt, response}` JSONL file (a later row for the same
    prompt replaces an earlier one, as in Google's `read_prompt_to_response_dict`)."""
    path = Path(path)
    responses = {}
    for line, record in iter_jsonl(path):
        responses[_text(record, "prompt", path, line)] = _text(record, "response", path, line)
    return responses


def score(inputs: Sequence[Mapping[str, Any]], responses: Mapping[str, str]) -> dict[str, Any]:
    """The four accuracies, per-instruction-id accuracies and the per-prompt verdicts of
    `inputs` answered by `responses` (prompt -> response; every input prompt must be there)."""
    missing = [row for row in inputs if row["prompt"] not in responses]
    if missing:
        first = missing[0]
        raise ValueError(
            f"{len(missing)} of {len(inputs)} IFEval prompts have no response, the first "
            f"(key {first.get('key')!r}): {first['prompt'][:80]!r}; responses are joined to "
            "inputs by exact prompt text"
        )
    strict_rows, loose_rows = [], []
    by_id: dict[str, list[int]] = {}  # id -> [instructions, strict followed, loose followed]
    for row in inputs:
        response = responses[row["prompt"]]
        verdicts = {}
        for mode, rows in (("strict", strict_rows), ("loose", loose_rows)):
            followed = follow(row, response, loose=mode == "loose")
            verdicts[mode] = followed
            rows.append(
                {
                    "instruction_id_list": list(row["instruction_id_list"]),
                    "prompt": row["prompt"],
                    "response": response,
                    "follow_all_instructions": all(followed),
                    "follow_instruction_list": followed,
                }
            )
        for i, instruction_id in enumerate(row["instruction_id_list"]):
            counts = by_id.setdefault(instruction_id, [0, 0, 0])
            counts[0] += 1
            counts[1] += verdicts["strict"][i]
            counts[2] += verdicts["loose"][i]

    def accuracies(rows: list[dict], mode: str) -> dict[str, float]:
        flat = [ok for r in rows for ok in r["follow_instruction_list"]]
        return {
            f"prompt_level_{mode}_acc": sum(r["follow_all_instructions"] for r in rows) / len(rows),
            f"inst_level_{mode}_acc": sum(flat) / len(flat) if flat else 0.0,
        }

    scores = {**accuracies(strict_rows, "strict"), **accuracies(loose_rows, "loose")}
    return {
        **{name: scores[name] for name in ACCURACIES},
        "prompts": len(strict_rows),
        "instructions": sum(len(r["follow_instruction_list"]) for r in strict_rows),
        "by_instruction": {
            instruction_id: {"n": n, "strict_acc": strict / n, "loose_acc": loose / n}
            for instruction_id, (n, strict, loose) in sorted(by_id.items())
        },
        "strict": strict_rows,
        "loose": loose_rows,
    }


def score_files(
    responses: str | Path, data: str | Path | None = None, out: str | Path | None = None
) -> dict[str, Any]:
    """Score a `{prompt, response}` JSONL file against IFEval inputs (`data`, the official
    `input_data.jsonl` format), or, without `data`, a file whose rows are IFEval rows with a
    `response` each. Returns `score`'s summary without the per-prompt rows, which go to
    `out` when given."""
    if data is None:
        inputs = load_inputs(responses)
        for row in inputs:
            _text(row, "response", Path(responses), row["_line"])
        answered = {row["prompt"]: row["response"] for row in inputs}
    else:
        inputs, answered = load_inputs(data), load_responses(responses)
    result = score(inputs, answered)
    summary = {k: v for k, v in result.items() if k not in ("strict", "loose")}
    summary["responses"] = str(responses)
    summary["data"] = None if data is None else str(data)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        for mode in ("strict", "loose"):
            with staged_file(out / f"eval_results_{mode}.jsonl") as handle:
                for row in result[mode]:
                    handle.write(json.dumps(row) + "\n")
        write_text(out / "results.json", json.dumps(summary, indent=2) + "\n")
    return summary
