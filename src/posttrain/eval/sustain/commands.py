"""`posttrain sustain run`: load the model, run the pipeline, print, plot and report."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from posttrain.eval.sustain.pipeline import SustainConfig, run_sustain


def _fmt(value: float | None) -> str:
    return "null" if value is None else f"{value:.3f}"


def sandbox_line(results: dict[str, Any]) -> str | None:
    """Which sandbox ran the code answers; the fallback is named as what it is."""
    sandbox = results.get("sandbox")
    if not sandbox:
        return None
    line = f"code ran in the {sandbox['backend']} sandbox"
    if "why" in sandbox:
        line += f" (NOT a jail: {sandbox['why']})"
    return line


def table(results: dict[str, Any]) -> Any:
    """A rich table: one row per domain and overall."""
    from rich.table import Table

    k_max = results["config"]["max_constraints"]
    out = Table(title=f"SustainScore — {results['model']}", caption=sandbox_line(results))
    for name in [
        "domain",
        "items",
        "solved",
        "baseline",
        "SustainScore",
        *[f"k={k}" for k in range(1, k_max + 1)],
        "satisfied",
        "all satisfied",
    ]:
        out.add_column(name)
    rows = [*results["domains"].items(), ("overall", results["overall"])]
    for name, block in rows:
        out.add_row(
            name,
            str(block["n_items"]),
            str(block["n_solved"]),
            _fmt(block["baseline_accuracy"]),
            _fmt(block["sustain_score"]),
            *[_fmt(block["by_k"][str(k)]["sustain_score"]) for k in range(1, k_max + 1)],
            _fmt(block["satisfaction"]),
            _fmt(block["all_satisfied"]),
        )
    return out


def plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    """SustainScore per domain and k; satisfaction per constraint type (rates over nothing
    are left out rather than drawn as 0)."""
    from posttrain.report import plot_bars

    k_max = results["config"]["max_constraints"]
    scores: dict[str, dict[str, float]] = {}
    for name, block in [*results["domains"].items(), ("overall", results["overall"])]:
        bars = {"baseline": block["baseline_accuracy"], "all k": block["sustain_score"]}
        bars.update({f"k={k}": block["by_k"][str(k)]["sustain_score"] for k in range(1, k_max + 1)})
        scores[name] = {label: v for label, v in bars.items() if v is not None}
    drawn = [
        plot_bars(
            scores,
            out_dir / "sustain_score.png",
            "Accuracy: baseline and with k inserted constraints (SustainScore)",
        )
    ]
    by_type = results["overall"]["satisfaction_by_type"]
    if by_type:
        groups = {t.split(":")[-1]: {"satisfied": v["rate"]} for t, v in by_type.items()}
        drawn.append(
            plot_bars(
                groups,
                out_dir / "satisfaction.png",
                "Constraint satisfaction of the new outputs, per type",
            )
        )
    return drawn


def sustain_run(
    model_spec: str,
    out_dir: Path,
    domains: list[str],
    n: int,
    max_constraints: int,
    seed: int,
    max_tokens: int,
    batch_size: int,
    attention: bool,
) -> dict[str, Any]:
    """Everything `posttrain sustain run` does except printing; returns the results."""
    from posttrain.eval.core import chat_with_cache
    from posttrain.eval.sustain import scripted  # registers scripted:sustain-solver
    from posttrain.models.chat.spec import parse_chat_spec
    from posttrain.report import write_report
    from posttrain.specs import SpecKind

    config = SustainConfig(
        domains=tuple(domains),
        n=n,
        max_constraints=max_constraints,
        seed=seed,
        max_tokens=max_tokens,
        batch_size=batch_size,
        attention=attention,
    )
    model = chat_with_cache(model_spec, out_dir / "cache.sqlite")
    parsed = parse_chat_spec(model_spec)
    model_dir = parsed.path if parsed.kind is SpecKind.DIRECTORY else None
    label = scripted.SOLVER_LABEL if model_spec == "scripted:" + scripted.SOLVER else model.name
    start = time.perf_counter()
    results = run_sustain(model, out_dir, config, model_dir=model_dir, label=label)
    seconds = time.perf_counter() - start
    (out_dir / "timing.json").write_text(json.dumps({"wall_seconds": round(seconds, 2)}) + "\n")
    plots(results, out_dir)
    write_report(out_dir, title=f"SustainScore: {label}")
    return results
