"""`report.html` for a run: one plot per numeric metric, the config and the summary files.

The report is one file that opens anywhere: each metric is an inline SVG line chart drawn
here, and figures a recipe drew with matplotlib (`plot_curves`, `plot_bars`) are embedded as
base64 PNGs. The metric charts are not matplotlib's because a run logs thirty-odd metrics
and a matplotlib PNG costs about 0.1 s of CPU each, paid again at every report refresh
(an RL run's report was a third of a short run's time); a polyline costs microseconds.
"""

from __future__ import annotations

import base64
import html
import json
import math
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


_W, _H = 420, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 14, 30, 38


def line_svg(steps: list[float], values: list[float], title: str) -> str:
    """A line chart of one metric over steps as an inline SVG: title, the y range's ends
    and middle, the first and last step; markers when there are few points. Non-finite
    values are left out (a NaN loss shows as a gap in the table, not a broken chart)."""
    points = [(x, y) for x, y in zip(steps, values, strict=True) if math.isfinite(y)]
    x0, x1 = (min(p[0] for p in points), max(p[0] for p in points)) if points else (0, 1)
    y0, y1 = (min(p[1] for p in points), max(p[1] for p in points)) if points else (0, 1)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:  # a flat line sits mid-height
        pad = abs(y0) * 0.1 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    width, height = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def at(x: float, y: float) -> tuple[float, float]:
        return _LEFT + (x - x0) / (x1 - x0) * width, _TOP + (1 - (y - y0) / (y1 - y0)) * height

    escaped = html.escape(title)
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_W}' height='{_H}' role='img' "
        f"viewBox='0 0 {_W} {_H}' font-family='sans-serif' font-size='11'>",
        f"<title>{escaped}</title>",
        f"<text x='{_W / 2}' y='18' text-anchor='middle' font-size='13'>{escaped}</text>",
        f"<rect x='{_LEFT}' y='{_TOP}' width='{width}' height='{height}' "
        "fill='none' stroke='#999'/>",
    ]
    for fraction in (0.0, 0.5, 1.0):  # y ticks with grid lines
        top = _TOP + (1 - fraction) * height
        parts.append(
            f"<line x1='{_LEFT}' x2='{_LEFT + width}' y1='{top:.1f}' y2='{top:.1f}' "
            f"stroke='#ddd'/><text x='{_LEFT - 4}' y='{top + 4:.1f}' text-anchor='end'>"
            f"{y0 + fraction * (y1 - y0):.4g}</text>"
        )
    for x, anchor in ((x0, "start"), (x1, "end")):
        parts.append(
            f"<text x='{at(x, y0)[0]:.1f}' y='{_TOP + height + 14}' text-anchor='{anchor}'>"
            f"{x:g}</text>"
        )
    parts.append(f"<text x='{_LEFT + width / 2}' y='{_H - 6}' text-anchor='middle'>step</text>")
    placed = [at(x, y) for x, y in points]
    if placed:
        line = " ".join(f"{px:.1f},{py:.1f}" for px, py in placed)
        parts.append(f"<polyline points='{line}' fill='none' stroke='#1f77b4' stroke-width='1.6'/>")
    if len(placed) < 30:
        parts.extend(
            f"<circle cx='{px:.1f}' cy='{py:.1f}' r='2.5' fill='#1f77b4'/>" for px, py in placed
        )
    parts.append("</svg>")
    return "".join(parts)


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


def write_report(run_dir: str | Path, title: str | None = None, extra_html: str = "") -> Path:
    """Render `run_dir/report.html` from its metrics, config and JSON summaries; `extra_html`
    (already escaped, e.g. example items with their images) goes after the figures."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    records = read_metrics(run_dir)
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{html.escape(title or run_dir.name)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "img,.chart svg{margin:4px;border:1px solid #ddd}pre{background:#f6f6f6;padding:1em}"
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
        parts.append(f"<span class='chart'>{line_svg(steps, values, name)}</span>")
    for figure in sorted(run_dir.glob("*.png")):  # figures a recipe drew, e.g. curves.png
        png = base64.b64encode(figure.read_bytes()).decode()
        parts.append(f"<h2>{html.escape(figure.name)}</h2><img src='data:image/png;base64,{png}'>")
    if extra_html:
        parts.append(extra_html)
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
