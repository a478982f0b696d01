"""Does the embedded-default warm start reproduce across thread counts?

Builds `WarmStartConfig()` from scratch (a fresh cache directory under a temp dir) in a
subprocess per build, with OMP_NUM_THREADS and torch.set_num_threads set to the thread
count, one build at a time, and records held-out accuracy, the step SFT stopped at and the
wall time. Writes benchmarks/results/warm_start_reproducibility.json.

    python benchmarks/warm_start_reproducibility.py --threads 1 2 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "warm_start_reproducibility.json"

BUILD = """
import json, sys, torch
torch.set_num_threads(int(sys.argv[2]))
from posttrain.sft.warm_start import WarmStartConfig, warm_start
result = warm_start(WarmStartConfig(cache_dir=sys.argv[1]))
meta = json.loads((result.model_dir / "warm_start.json").read_text())
curve = [r for r in meta["history"] if "validation_accuracy" in r]
print(json.dumps({"accuracy": result.accuracy, "stopped_at_step": result.stopped_at_step,
                  "train_seconds": result.train_seconds, "validation": curve}))
"""


def build(threads: int, keep: Path | None = None) -> dict:
    """One fresh build in a subprocess with `threads` torch/OpenMP threads; its cache is
    `keep` (which must not exist yet) or a temporary directory."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if keep is not None:
        keep.mkdir(parents=True)  # an existing entry would be a cache hit, not a build
    with tempfile.TemporaryDirectory(prefix="warm-start-repro-") as scratch:
        cache = str(keep or scratch)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", BUILD, cache, str(threads)],
            env=env,
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"build with {threads} threads failed:\n{done.stderr[-3000:]}")
    record = json.loads(done.stdout.strip().splitlines()[-1])
    # Other work on the machine slows a build (two threads most): the load explains the time.
    load = round(os.getloadavg()[0], 2)
    return {"threads": threads, "seconds": round(seconds, 1), "load_1min_after": load, **record}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2, help="builds per thread count")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--keep-caches",
        type=Path,
        help="keep each build's cache under DIR/threads<T>-repeat<R> (e.g. for "
        "POSTTRAIN_TEST_CACHE) instead of a temporary directory",
    )
    args = parser.parse_args(argv)
    builds: list[dict] = []
    for repeat in range(args.repeats):
        for threads in args.threads:  # interleaved, so load drift hits both thread counts
            keep = (
                args.keep_caches / f"threads{threads}-repeat{repeat}" if args.keep_caches else None
            )
            record = build(threads, keep)
            print(json.dumps({k: v for k, v in record.items() if k != "validation"}), flush=True)
            builds.append({"repeat": repeat, **record})
            summary = _summary(args, builds)
            # Written after every build: a long run stopped early keeps what it measured.
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}: accuracy {summary['accuracy_min']}-{summary['accuracy_max']}")
    return summary


def _summary(args: argparse.Namespace, builds: list[dict]) -> dict:
    accuracies = [b["accuracy"] for b in builds]
    return {
        "command": "python benchmarks/warm_start_reproducibility.py "
        + " ".join(["--threads", *map(str, args.threads), "--repeats", str(args.repeats)]),
        "cpu_count": os.cpu_count(),
        "builds": builds,
        "accuracy_min": min(accuracies),
        "accuracy_max": max(accuracies),
        "stop_steps": [b["stopped_at_step"] for b in builds],
    }


if __name__ == "__main__":
    main()
