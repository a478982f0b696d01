"""How long a short request waits behind a long one on `posttrain serve`.

A long `/v1/completions` request (`--long-prompts` prompts, the server's default cap on
prompts per request, each `--long-tokens` sampled tokens) is sent first; once it is running, a
4-token greedy chat request follows. Reported per round: the short request's latency alone,
its latency behind the long one, the long one's latency, and whether the short one finished
first. Medians over `--rounds`.

Results are merged into benchmarks/results/serve_fairness.json under `--label` (e.g. "before"
and "after" a scheduler change), with the git commit the run measured.

Other processes share the CPUs, so single numbers are noisy: read the medians and spreads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import torch

from posttrain.data.arithmetic import ArithmeticTask, make_splits, tokenizer_corpus
from posttrain.models.server_process import ServerProcess, serve_model
from posttrain.models.tiny import build_tiny_model

RESULTS = Path(__file__).parent / "results" / "serve_fairness.json"
SHORT_TOKENS = 4
HEAD_START_S = 0.5  # the long request is generating by then


def short_chat(server: ServerProcess, prompt: str) -> float:
    """Seconds for one greedy 4-token chat completion."""
    body = {
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": SHORT_TOKENS,
        "temperature": 0.0,
    }
    started = time.perf_counter()
    response = httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=600)
    response.raise_for_status()
    return time.perf_counter() - started


def one_round(server: ServerProcess, prompts: list[str], long_tokens: int) -> dict[str, float]:
    alone = short_chat(server, prompts[0])
    long_done: dict[str, float] = {}

    def long_request() -> None:
        body = {"prompt": prompts, "max_tokens": long_tokens, "temperature": 1.0, "seed": 0}
        started = time.perf_counter()
        response = httpx.post(f"{server.base_url}/completions", json=body, timeout=600)
        response.raise_for_status()
        long_done["at"] = time.perf_counter()
        long_done["latency_s"] = long_done["at"] - started

    thread = threading.Thread(target=long_request)
    thread.start()
    time.sleep(HEAD_START_S)
    behind = short_chat(server, prompts[1])
    short_done = time.perf_counter()
    thread.join()
    return {
        "short_alone_s": alone,
        "short_behind_long_s": behind,
        "long_s": long_done["latency_s"],
        "short_finished_first": short_done < long_done["at"],
    }


def _summary(values: list[float]) -> dict[str, object]:
    return {
        "median": round(statistics.median(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
    }


def _commit() -> str:
    root = Path(__file__).resolve().parent.parent
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "src"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    return head + ("+uncommitted changes under src/" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="current", help="key of this run in the JSON")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--long-prompts", type=int, default=64)
    parser.add_argument("--long-tokens", type=int, default=128)
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # the server inherits it
    task = ArithmeticTask()
    _, test = make_splits(task)
    prompts = [row["prompt"][-1]["content"] for row in test[: args.long_prompts]]
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny", tokenizer_corpus(task), size="micro")
        with serve_model(model_dir, log_path=Path(tmp) / "server.log") as server:
            short_chat(server, prompts[0])  # warm-up
            for index in range(args.rounds):
                rounds.append(one_round(server, prompts, args.long_tokens))
                print(f"round {index + 1}: {json.dumps(rounds[-1])}")
    result = {
        "what": "latency of a 4-token greedy chat sent 0.5 s after a long completions request",
        "commit": _commit(),
        "long_request": {"prompts": len(prompts), "max_tokens": args.long_tokens},
        "rounds": rounds,
        "short_alone_s": _summary([r["short_alone_s"] for r in rounds]),
        "short_behind_long_s": _summary([r["short_behind_long_s"] for r in rounds]),
        "long_s": _summary([r["long_s"] for r in rounds]),
        "short_finished_first": sum(r["short_finished_first"] for r in rounds),
        "machine": {
            "cpus": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
    }
    merged = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    merged[args.label] = result
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(merged, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
