"""The SustainScore run: solve, extract self-evident constraints, re-ask, score.

Stages, each an append-only `ItemLog` in the output directory so a rerun resumes and pays
for nothing it already has:

1. `baseline.jsonl`: every item asked once without constraints, graded.
2. For each solved item, constraints are extracted from its own answer and verified against
   it (failures dropped and counted); with a per-item seeded order, variant k gets the first
   k of them (k = 1 .. max_constraints; nested, so k=2 adds one to k=1).
3. `constrained.jsonl`: every variant asked, graded, and each constraint checked.
4. `attention.jsonl` (local model directories only): the answer's attention share on the
   constraint tokens.

`results.json` holds the summary (`metrics.summarise`), extraction counts and the model label,
and, with the code domain, which sandbox ran the programs (`sandbox`): bubblewrap, or the
subprocess fallback, which is no jail, and why.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from posttrain.eval.core import ItemLog, Record, map_items
from posttrain.eval.sustain import attention, constraints, metrics, tasks
from posttrain.models.chat.base import ChatModel, GenerationParams
from posttrain.sandbox import describe as describe_sandbox


@dataclass
class SustainConfig:
    domains: tuple[str, ...] = ("math", "qa", "code")
    n: int = 100
    """Items per domain (HumanEval has 164)."""
    max_constraints: int = 3
    seed: int = 0
    batch_size: int = 16
    max_tokens: int = 512
    attention: bool = True
    """Attention shares, for local model directories."""

    def __post_init__(self) -> None:
        if not 1 <= self.max_constraints <= 5:
            raise ValueError(f"--max-constraints must be 1..5, got {self.max_constraints}")
        if self.n < 1:
            raise ValueError(f"--n must be >= 1, got {self.n}")


def _conversation(prompt: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}]


def _asker(model: ChatModel, params: GenerationParams, prompts: dict[str, str]):  # noqa: ANN202
    """A `map_items` function: ask the batch, grade each answer, check its constraints."""

    def run(batch: Sequence[Record]) -> list[Record]:
        results = model.chat([_conversation(prompts[r["key"]]) for r in batch], params)
        out = []
        for record, result in zip(batch, results, strict=True):
            graded = tasks.grade(record["item"], result.text)
            row: Record = {
                "domain": record["item"]["domain"],
                "answer": result.text,
                "model": result.model,
                **graded,
            }
            if "constraints" in record:
                row.update({k: record[k] for k in ("item_key", "k", "constraints")})
                row["satisfied"] = [
                    constraints.check(result.text, s) for s in record["constraints"]
                ]
            out.append(row)
        return out

    return run


def make_variants(
    items: dict[str, Record], baseline: Sequence[Record], max_k: int, seed: int
) -> tuple[list[Record], dict[str, Any]]:
    """Constrained variants of the solved items, and extraction counts per domain."""
    variants: list[Record] = []
    counts: dict[str, Counter] = {}
    dropped_types: dict[str, Counter] = {}
    for record in baseline:
        if not record["correct"]:
            continue
        item = items[record["key"]]
        rng = random.Random(f"sustain-{seed}-{item['key']}")
        proposed = constraints.extract_constraints(record["answer"], item, rng)
        kept, dropped = constraints.verify_constraints(record["answer"], proposed)
        count = counts.setdefault(item["domain"], Counter())
        count.update(proposed=len(proposed), kept=len(kept), dropped=len(dropped))
        dropped_types.setdefault(item["domain"], Counter()).update(s["id"] for s in dropped)
        rng.shuffle(kept)
        for k in range(1, max_k + 1):
            if len(kept) < k:
                count["missing_variants"] += 1
                continue
            prompt, block = constraints.insert_constraints(item["prompt"], kept[:k])
            variants.append(
                {
                    "key": f"{item['key']}/k{k}",
                    "item_key": item["key"],
                    "k": k,
                    "item": item,
                    "constraints": kept[:k],
                    "prompt": prompt,
                    "constraint_text": block,
                }
            )
    extraction = {
        d: {
            **{k: c.get(k, 0) for k in ("proposed", "kept", "dropped", "missing_variants")},
            "dropped_by_type": dict(sorted(dropped_types[d].items())),
        }
        for d, c in counts.items()
    }
    return variants, extraction


def _attention(model_dir: Path, variants: list[Record], done: dict[str, Record], log: ItemLog):
    """Attention shares of every answered variant (the model is loaded only if needed)."""
    todo = [v for v in variants if v["key"] in done]
    loaded: list[Any] = []

    def run(batch: Sequence[Record]) -> list[Record]:
        if not loaded:
            loaded.extend(attention.load_eager(model_dir))
        model, tokenizer = loaded
        return [
            {
                "correct": done[v["key"]]["correct"],
                "share": attention.constraint_attention_share(
                    model, tokenizer, v["prompt"], v["constraint_text"], done[v["key"]]["answer"]
                ),
            }
            for v in batch
        ]

    return map_items(todo, run, log, "attention", batch_size=8)


def sandbox_summary(rows: Sequence[Record]) -> dict[str, Any]:
    """The sandbox now in use (`posttrain.sandbox.describe`) and how many graded code answers
    each backend ran (a resumed run may hold rows graded before)."""
    runs = Counter(r.get("sandbox", "unrecorded") for r in rows if r["domain"] == "code")
    return {**describe_sandbox(), "code_runs_by_sandbox": dict(sorted(runs.items()))}


def run_sustain(
    model: ChatModel,
    out_dir: Path,
    config: SustainConfig,
    model_dir: Path | None = None,
    label: str | None = None,
) -> dict[str, Any]:
    """Run every stage into `out_dir` and return the results (also written to results.json)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    params = GenerationParams(max_tokens=config.max_tokens)
    items = {
        it["key"]: it for d in config.domains for it in tasks.make_items(d, config.n, config.seed)
    }
    base_rows = [{"key": k, "item": it} for k, it in items.items()]
    prompts = {k: it["prompt"] for k, it in items.items()}
    baseline = map_items(
        base_rows,
        _asker(model, params, prompts),
        ItemLog(out_dir / "baseline.jsonl"),
        "baseline",
        config.batch_size,
    )
    variants, extraction = make_variants(items, baseline, config.max_constraints, config.seed)
    prompts = {v["key"]: v["prompt"] for v in variants}
    constrained = map_items(
        variants,
        _asker(model, params, prompts),
        ItemLog(out_dir / "constrained.jsonl"),
        "constrained",
        config.batch_size,
    )
    results: dict[str, Any] = {
        "model": label or model.name,
        "config": {**asdict(config), "domains": list(config.domains)},
        **metrics.summarise(baseline, constrained, config.max_constraints, config.domains),
        "extraction": extraction,
    }
    if "code" in config.domains:
        results["sandbox"] = sandbox_summary([*baseline, *constrained])
    if model_dir is not None and config.attention:
        done = {r["key"]: r for r in constrained}
        shares = _attention(model_dir, variants, done, ItemLog(out_dir / "attention.jsonl"))
        results["attention"] = attention.compare(shares)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return results
