"""`report.html` for a run: one plot per numeric metric, the config and the summary files.

Plots are matplotlib PNGs embedded as base64, so the report is one file that opens anywhere.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from posttrain.runs import read_metrics

_SKIP = {"step", "time"}


def metric_series(records: list[dict[str, Any]]) -> dict[str, tuple[list[float], list[float]]]:
    """Metric name -> (steps, values) for every numeric metric in the records."""
    series: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for record in records:
        for key, value in record.items():
            if key in _SKIP or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            steps, values = series[key]
            steps.append(record.get("step", len(steps)))
            values.append(value)
    return dict(series)


def plot_png(steps: list[float], values: list[float], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 2.8), dpi=100)
    ax.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def plot_curves(
    panels: dict[str, dict[str, tuple[list[float], list[float]]]],
    path: str | Path,
    xlabel: str = "step",
    markers: dict[str, float | None] | None = None,
) -> Path:
    """One panel per title, one line per label (e.g. a metric per reward variant); a PNG.

    `markers` draws a labelled vertical line on every panel at each x (e.g. an onset step);
    None values are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4.4 * len(panels), 3.2), dpi=100)
    for ax, (title, lines) in zip(
        [axes] if len(panels) == 1 else axes, panels.items(), strict=True
    ):
        for label, (steps, values) in lines.items():
            ax.plot(
                steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=label
            )
        marks = [(label, x) for label, x in (markers or {}).items() if x is not None]
        for (label, x), style in zip(marks, ["--", ":", "-.", (0, (5, 1))] * 4, strict=False):
            ax.axvline(x, color="0.35", linestyle=style, linewidth=1, label=f"{label} ({x:g})")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_bars(
    groups: dict[str, dict[str, float]],
    path: str | Path,
    title: str,
    reference: float | None = None,
) -> Path:
    """Grouped bars: one group per key of `groups` (e.g. a dimension), one bar per label
    inside it (e.g. a scorer); `reference` draws a dashed line (e.g. chance). A PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(label for bars in groups.values() for label in bars))
    width = 0.8 / max(1, len(labels))
    fig, ax = plt.subplots(figsize=(2.6 + 1.3 * len(groups), 3.4), dpi=100)
    for k, label in enumerate(labels):
        xs = [g + (k - (len(labels) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [bars.get(label, 0.0) for bars in groups.values()], width, label=label)
    if reference is not None:
        ax.axhline(reference, color="grey", linestyle="--", linewidth=1, label="chance")
    ax.set_xticks(range(len(groups)), list(groups), fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    # outside the axes, on the right: inside it would hide the tallest bars
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(run_dir: str | Path, title: str | None = None) -> Path:
    """Render `run_dir/report.html` from its metrics, config and JSON summaries."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    records = read_metrics(run_dir)
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{html.escape(title or run_dir.name)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "img{margin:4px;border:1px solid #ddd}pre{background:#f6f6f6;padding:1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px}</style>",
        f"<h1>{html.escape(title or run_dir.name)}</h1>",
        f"<p>{len(records)} metric records in <code>{html.escape(str(run_dir))}</code></p>",
    ]
    for summary in sorted(run_dir.glob("*.json")):
        data = json.loads(summary.read_text())
        parts.append(f"<h2>{html.escape(summary.name)}</h2>{_table(data)}")
    series = metric_series(records)
    if series:
        last = {
            name: f"{values[-1]:.4g} (step {steps[-1]:g})"
            for name, (steps, values) in sorted(series.items())
        }
        parts.append(f"<h2>Metrics</h2><h3>Last values</h3>{_table(last)}")
    for name, (steps, values) in sorted(series.items()):
        if len(values) < 2:  # a single value reads better in the table than as a plot
            continue
        png = base64.b64encode(plot_png(steps, values, name)).decode()
        parts.append(f"<img alt='{html.escape(name)}' src='data:image/png;base64,{png}'>")
    for figure in sorted(run_dir.glob("*.png")):  # figures a recipe drew, e.g. curves.png
        png = base64.b64encode(figure.read_bytes()).decode()
        parts.append(f"<h2>{html.escape(figure.name)}</h2><img src='data:image/png;base64,{png}'>")
    inner = sorted(d for d in run_dir.iterdir() if (d / "report.html").exists())
    if inner:  # runs a recipe started inside this one, each with its own report
        links = "".join(
            f"<li><a href='{html.escape(d.name)}/report.html'>{html.escape(d.name)}</a></li>"
            for d in inner
        )
        parts.append(f"<h2>Runs inside</h2><ul>{links}</ul>")
    config = run_dir / "config.yaml"
    if config.exists():
        parts.append(f"<h2>config.yaml</h2><pre>{html.escape(config.read_text())}</pre>")
    out = run_dir / "report.html"
    out.write_text("\n".join(parts), encoding="utf-8")
    return out


def _table(data: Any, depth: int = 0) -> str:
    """A summary as an HTML table; nested dicts (per category, per judge...) become nested
    tables two levels deep, anything else is shown as JSON, cut at 300 characters."""
    if not isinstance(data, dict):
        return f"<pre>{html.escape(json.dumps(data, indent=2))}</pre>"
    rows = []
    for key, value in data.items():
        if isinstance(value, dict) and value and depth < 2:
            cell = _table(value, depth + 1)
        else:
            shown = value if isinstance(value, str | int | float) else json.dumps(value)
            if isinstance(shown, str) and len(shown) > 300:
                shown = shown[:300] + "…"
            cell = html.escape(str(shown))
        rows.append(f"<tr><th>{html.escape(str(key))}</th><td>{cell}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"
