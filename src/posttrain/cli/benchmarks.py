"""The benchmark commands: `posttrain rm-bench`, `posttrain rpc ...`, `posttrain sustain run`,
`posttrain ifeval score`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from posttrain.cli.app import (
    app,
    console,
    fail,
)


@app.command("rm-bench")
def rm_bench(
    data: Path = typer.Option(
        ...,
        "--data",
        help="Benchmark rows (JSONL, parquet or a saved dataset): StoryRMB's (id, prompt, "
        "chosen, rejected a list, optional dimension) or RewardBench 2's (chosen and "
        "rejected lists, subset).",
    ),
    scorer: str = typer.Option(
        ...,
        "--scorer",
        help="A reward-model dir (DIR?torch_dtype=bfloat16&device=cuda sets how it loads), "
        "http(s)://HOST:PORT (posttrain serve-rm), judge:MODEL_SPEC, "
        "judge-listwise:MODEL_SPEC, length, vocabulary or random[:SEED].",
    ),
    out: Path = typer.Option(..., "--out", help="Writes OUT/results.json and OUT/scores.jsonl."),
    chunk_size: int = typer.Option(32, "--chunk-size", help="Instances scored per batch."),
) -> None:
    """Reward-model benchmark with RewardBench 2's tie rule: overall, per-dimension and
    per-subset accuracy against the random baseline (Ties scored as RewardBench 2 does).
    Resumes from OUT/scores.jsonl."""
    from posttrain.eval.rm_bench import evaluate_scorer, load_instances
    from posttrain.eval.set_scorers import load_scorer

    try:
        instances = load_instances(data)
        chosen = load_scorer(scorer)
    except ValueError as err:  # DataError is a ValueError too
        raise fail("error", err) from None
    results = evaluate_scorer(chosen, instances, out, chunk_size=chunk_size)
    typer.echo(json.dumps(results, indent=2))


rpc = typer.Typer(help="RPC-Bench: review–rebuttal QA on CS papers, LLM judge, consistency.")
app.add_typer(rpc, name="rpc")


@rpc.command("answer")
def rpc_answer(
    data: Path = typer.Option(..., "--data", help="RPC-Bench JSONL (one paper a line)."),
    model: str = typer.Option(
        "scripted:rpc-extractive", "--model", help="Answering model SPEC (default: scripted)."
    ),
    out: Path = typer.Option(..., "--out", help="Writes OUT/answers.jsonl (resumed on rerun)."),
    papers: Path | None = typer.Option(
        None,
        "--papers",
        help="Folder of full texts, <id>.md or <id>/<id>.md (default: title + abstract; "
        "official: <id>/<id>.md only, default RPC_BENCH/benchmark/md/test).",
    ),
    limit: int | None = typer.Option(None, "--limit", help="Answer only the first N items."),
    batch_size: int = typer.Option(8, "--batch-size", help="Questions per model call."),
    max_tokens: int = typer.Option(1024, "--max-tokens", help="Answer length limit in tokens."),
    protocol: str = typer.Option(
        "posttrain",
        "--protocol",
        help="posttrain (this toolkit's prompts) or official (RPC-Bench's prompts and rules, "
        "read from --rpc-bench); judge and score follow the answers' protocol.",
    ),
    rpc_bench: Path | None = typer.Option(
        None, "--rpc-bench", help="A checkout of the RPC-Bench repository (--protocol official)."
    ),
) -> None:
    """Answer every RPC-Bench question from its paper's context."""
    from posttrain.eval.rpc import commands

    try:
        summary = commands.answer(
            data, model, out, papers, limit, batch_size, max_tokens, protocol, rpc_bench
        )
    except (ValueError, OSError) as err:
        raise fail("error", err) from None
    typer.echo(json.dumps(summary, indent=2))


@rpc.command("judge")
def rpc_judge(
    answers: Path = typer.Option(..., "--answers", help="An answers folder from `rpc answer`."),
    judges: list[str] = typer.Option(
        ["scripted:rpc-lexical-judge"],
        "--judge",
        help="Judge model SPEC, repeatable (default: the lexical proxy, not an LLM).",
    ),
    max_retries: int = typer.Option(2, "--max-retries", help="Re-asks of an unreadable reply."),
    batch_size: int = typer.Option(8, "--batch-size", help="Answers per judge call batch."),
) -> None:
    """Rate correctness, completeness and conciseness (0–5) with each judge; resumable."""
    from posttrain.eval.rpc import commands

    try:
        summary = commands.judge(answers, judges, max_retries, batch_size)
    except (ValueError, OSError) as err:
        raise fail("error", err) from None
    typer.echo(json.dumps(summary, indent=2))


@rpc.command("score")
def rpc_score(answers: Path = typer.Argument(..., help="An answers folder (judged).")) -> None:
    """RPC-Bench scores overall and per category: writes scores.json and a bar plot."""
    from rich.table import Table

    from posttrain.eval.rpc import commands

    try:
        scores = commands.score(answers)
    except (ValueError, OSError) as err:
        raise fail("error", err) from None
    judges = ", ".join(scores["judge_labels"].values()) or "no judge"
    table = Table(
        title=f"RPC-Bench: {scores['model']} (judge: {judges}; protocol: {scores['protocol']})"
    )
    for column in ("category", "items", "Cor", "Com", "F1", "Con-adj", "accuracy"):
        table.add_column(column, justify="left" if column == "category" else "right")

    def cell(row: dict, key: str) -> str:
        if key not in row:
            return ""
        return "n/a" if row[key] is None else f"{row[key]:.2f}"

    keys = ("correctness", "completeness", "f1", "conciseness_adjusted")
    overall = {**scores, "accuracy": scores["claim_accuracy"]}
    table.add_row(
        "overall",
        str(scores["answered"]),
        *(cell(overall, k) for k in keys),
        cell(overall, "accuracy"),
    )
    for category, row in scores["categories"].items():
        table.add_row(
            category, str(row["items"]), *(cell(row, k) for k in keys), cell(row, "accuracy")
        )
    console().print(table)
    typer.echo(f"wrote {answers / 'scores.json'}")


@rpc.command("export")
def rpc_export(
    answers: Path = typer.Argument(..., help="An answers folder (judged)."),
    out: Path = typer.Option(
        ..., "--out", help="Writes OUT/<judge>/<name>_score.json (one judge folder each)."
    ),
    name: str | None = typer.Option(
        None, "--name", help="The model's name in the human preferences (no '_')."
    ),
) -> None:
    """RPC-Bench's score files from `rpc judge` output, for `rpc consistency --judges`."""
    from posttrain.eval.rpc import commands

    try:
        summary = commands.export(answers, out, name)
    except (ValueError, OSError) as err:
        raise fail("error", err) from None
    typer.echo(json.dumps(summary, indent=2))


@rpc.command("consistency")
def rpc_consistency(
    pairwise: Path = typer.Option(..., "--pairwise", help="Human pairwise preferences (JSONL)."),
    judges: list[Path] = typer.Option(
        ..., "--judges", help="Judge folders of <model>_score.json files (repeatable)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Also write the table as JSON here."),
) -> None:
    """Judge–human consistency: Pearson/Spearman against human Bradley–Terry, pairwise AUC."""
    from rich.table import Table

    from posttrain.eval.rpc import commands
    from posttrain.eval.rpc.consistency import METRICS

    try:
        result = commands.consistency(pairwise, judges, out)
    except (ValueError, OSError) as err:
        raise fail("error", err) from None
    table = Table(title="RPC-Bench judge–human consistency")
    table.add_column("judge")
    for metric in METRICS:
        table.add_column(metric, justify="right")
    for name, metrics in result["judges"].items():
        table.add_row(name, *(f"{metrics[m]:.4f}" for m in METRICS))
    console().print(table)
    if out is not None:
        typer.echo(f"wrote {out}")


sustain = typer.Typer(
    help="SustainScore: accuracy after inserting self-evident constraints (math, QA, code)."
)
app.add_typer(sustain, name="sustain")


@sustain.command("run")
def sustain_run(
    model: str = typer.Option(
        "scripted:sustain-solver", "--model", help="Model SPEC (default: the scripted solver)."
    ),
    domains: str = typer.Option("math,qa,code", "--domains", help="Comma-separated domains."),
    out: Path = typer.Option(..., "--out", help="Output directory (resumable)."),
    n: int = typer.Option(100, "--n", help="Items per domain (HumanEval has 164)."),
    max_constraints: int = typer.Option(3, "--max-constraints", help="Largest k inserted."),
    seed: int = typer.Option(0, "--seed", help="Seed for items and constraint choice."),
    max_tokens: int = typer.Option(512, "--max-tokens", help="Answer length limit in tokens."),
    batch_size: int = typer.Option(16, "--batch-size", help="Conversations per model call."),
    attention: bool = typer.Option(
        True, "--attention/--no-attention", help="Attention shares (local model dirs only)."
    ),
) -> None:
    """Solve, extract constraints from the solved outputs, re-ask with them inserted, score;
    writes baseline/constrained JSONL, results.json, plots and report.html."""
    from posttrain.eval.sustain import commands
    from posttrain.eval.sustain.tasks import parse_domains

    try:
        results = commands.sustain_run(
            model,
            out,
            parse_domains(domains),
            n,
            max_constraints,
            seed,
            max_tokens,
            batch_size,
            attention,
        )
    except (ValueError, LookupError, OSError) as err:  # LookupError: no Punkt data
        raise fail("error", err) from None
    console().print(commands.table(results))
    if "attention" in results:
        typer.echo("attention share on the constraint: " + json.dumps(results["attention"]))
    typer.echo(f"wrote {out / 'results.json'} and {out / 'report.html'}")


ifeval = typer.Typer(help="IFEval: instruction following, checked by the official implementation.")
app.add_typer(ifeval, name="ifeval")


@ifeval.command("score")
def ifeval_score(
    responses: Path = typer.Option(
        ..., "--responses", help="JSONL of {prompt, response} rows (Google's response format)."
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="IFEval inputs (input_data.jsonl: key, prompt, instruction_id_list, kwargs); "
        "responses are joined to them by prompt. Without it, each responses row carries "
        "instruction_id_list and kwargs itself.",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Writes OUT/eval_results_strict.jsonl, OUT/eval_results_loose.jsonl, "
        "OUT/results.json.",
    ),
) -> None:
    """IFEval's four accuracies (prompt- and instruction-level, strict and loose) of a
    response file, by lm-evaluation-harness's packaging of Google's checking code."""
    from rich.table import Table

    from posttrain.eval.ifeval import ACCURACIES, score_files

    try:
        summary = score_files(responses, data, out)
    except (ValueError, LookupError, ImportError, OSError) as err:
        raise fail("error", err) from None
    table = Table(
        title=f"IFEval: {summary['prompts']} prompts, {summary['instructions']} instructions"
    )
    table.add_column("accuracy")
    table.add_column("value", justify="right")
    for name in ACCURACIES:
        table.add_row(name, f"{summary[name]:.4f}")
    console().print(table)
    typer.echo(json.dumps({name: summary[name] for name in ACCURACIES}))
    if out is not None:
        typer.echo(f"wrote {out / 'results.json'}")
