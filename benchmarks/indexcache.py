"""IndexCache against DSA with every indexer and dense attention, on one trained model.

Runs the recipe `posttrain indexcache run` on its embedded default
(`configs/indexcache/tiny.yaml`: an 8-layer DSA model trained from scratch on CPU), in
`runs/indexcache-bench` so an interrupted benchmark resumes where it stopped (training,
search, distillation and each speed row are kept). At 1k, 2k, 4k and 8k tokens it times
prefill and decode for dense attention, DSA (all indexers), and IndexCache keeping 1/2 and
1/4 of the indexers (uniform and greedy patterns); every IndexCache variant's held-out loss
is measured training-free and after multi-layer distillation (distillation changes the
indexers' weights, not their cost, so speed is measured once per pattern).

Writes benchmarks/results/indexcache.json (speed-ups are ratios against DSA in the same
run) and copies the figures next to it; prints a markdown table for
docs/systems/indexcache.md. The goal set for this benchmark: 1/4 of the indexers, >= 1.5x
prefill over DSA at the longest length, held-out loss within 1% of DSA.

    .venv/bin/python benchmarks/indexcache.py [--set lengths=[1024,2048]] [--fresh]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402

from posttrain.config import load_config, to_dict  # noqa: E402
from posttrain.recipes.indexcache import IndexCacheRecipe, IndexCacheRunConfig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "indexcache" / "tiny.yaml"
RESULTS = Path(__file__).parent / "results" / "indexcache.json"


def markdown(table: list[dict], lengths: list[int]) -> str:
    longest = max(lengths)
    head = (
        "| variant | pattern | indexers | held-out loss (training-free / distilled) "
        "| Δ vs DSA % | "
        + " | ".join(f"prefill @{n} s (x DSA)" for n in lengths)
        + f" | decode @{longest} tok/s (x DSA) |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in table:
        loss = f"{row['loss_training_free']:.4f}"
        delta = f"{row['loss_vs_dsa_%_training_free']:+.2f}"
        if "loss_distilled" in row:
            loss += f" / {row['loss_distilled']:.4f}"
            delta += f" / {row['loss_vs_dsa_%_distilled']:+.2f}"
        cells = [row["variant"], f"`{row['pattern']}`", str(row["indexers"]), loss, delta]
        cells += [
            f"{row[f'prefill_s@{n}']:.3f} ({row[f'prefill_x@{n}']:.2f}x)"
            if f"prefill_s@{n}" in row
            else "-"
            for n in lengths
        ]
        decode = f"decode_tok_s@{longest}"
        cells.append(
            f"{row[decode]:.1f} ({row[f'decode_x@{longest}']:.2f}x)" if decode in row else "-"
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--runs-root", type=Path, default=ROOT / "runs")
    parser.add_argument("--fresh", action="store_true", help="discard an earlier bench run")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    overrides = [*args.overrides, "run_name=indexcache-bench", f"runs_root={args.runs_root}"]
    config = load_config(IndexCacheRunConfig, CONFIG, overrides)
    run_dir = args.runs_root / config.run_name
    if args.fresh and run_dir.exists():
        shutil.rmtree(run_dir)
    started = time.perf_counter()
    summary = IndexCacheRecipe(config)()
    results = json.loads((run_dir / "results.json").read_text())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figures = {}
    for name in ("overlap.png", "loss_vs_kept_indexers.png", "speed.png"):
        target = args.out.with_name(f"indexcache_{name}")
        shutil.copyfile(run_dir / name, target)
        inside = target.is_relative_to(ROOT)
        figures[name] = str(target.relative_to(ROOT) if inside else target)
    args.out.write_text(
        json.dumps(
            {
                "benchmark": "indexcache",
                "command": "python benchmarks/indexcache.py"
                + "".join(f" --set {o}" for o in args.overrides),
                "config": to_dict(config),
                "reference": "dsa (every layer runs its indexer), same weights, same run",
                "goal": results["goal"],
                "table": results["table"],
                "overlap": summary["overlap"],
                "patterns": summary["patterns"],
                "train_seconds": summary.get("train_seconds"),
                "figures": figures,
                "total_s": round(time.perf_counter() - started, 1),
                "machine": {
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "torch": torch.__version__,
                    "torch_threads": config.threads or torch.get_num_threads(),
                },
            },
            indent=2,
        )
    )
    print(markdown(results["table"], config.lengths))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
