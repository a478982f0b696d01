"""What serving over HTTP costs, and what batching concurrent requests buys, in one run.

1. Overhead: the same generations in-process (HFChat, one prompt per call) and through
   `posttrain serve --max-batch 1` + the official openai client (OpenAIChat): completion
   tokens/s of each and their ratio (1.0 means HTTP costs nothing). The two sides are
   measured in turns, alternating which goes first, for `--rounds` rounds, one torch thread
   each (`OMP_NUM_THREADS=1`, inherited by the server); the ratio of each round and the
   median ratio are reported.
2. Concurrency: requests/s with 1, 4 and 16 concurrent clients, against a batching server
   (`--max-batch 32`) and an unbatched one (`--max-batch 1`, one request at a time, the
   server's old behaviour). Both servers run side by side but are measured in turns,
   alternating which goes first, for `--rounds` rounds; medians and min/max are reported,
   with the mean batch size the batching server formed.

Other processes share the CPUs, so single numbers are noisy: read the medians and spreads.
Writes benchmarks/results/serve_overhead.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import torch

from posttrain.data.arithmetic import ArithmeticTask, make_splits, tokenizer_corpus
from posttrain.models.chat.base import GenerationParams
from posttrain.models.chat.hf import HFChat
from posttrain.models.chat.openai_chat import OpenAIChat
from posttrain.models.server_process import ServerProcess, serve_model
from posttrain.models.tiny import build_tiny_model

RESULTS = Path(__file__).parent / "results" / "serve_overhead.json"
PROMPTS = 64
PARAMS = GenerationParams(n=4, temperature=1.0, max_tokens=16, seed=0)
CLIENTS = (1, 4, 16)
REQUESTS_PER_CLIENT = 4  # each measurement sends clients x this many requests
MAX_TOKENS = 16


def tokens_per_second(chat, conversations) -> tuple[float, int]:
    started = time.perf_counter()
    results = chat.chat(conversations, PARAMS)
    elapsed = time.perf_counter() - started
    tokens = sum(len(c.token_ids or []) for r in results for c in r.choices)
    return tokens / elapsed, tokens


def interleaved_overhead(local, remote, conversations, rounds: int) -> dict:
    """Tokens/s in-process and over HTTP, in turns (the first side alternates), per round."""
    local.chat(conversations[:2], PARAMS)  # warm-up, both sides
    remote.chat(conversations[:2], PARAMS)
    sides = {"in_process": local, "served": remote}
    per_round: list[dict[str, float]] = []
    for number in range(rounds):
        order = list(sides) if number % 2 == 0 else list(reversed(sides))
        measured = {name: tokens_per_second(sides[name], conversations)[0] for name in order}
        measured["ratio"] = measured["served"] / measured["in_process"]
        per_round.append({k: round(v, 3) for k, v in measured.items()})

    def spread(key: str) -> dict[str, float]:
        values = [r[key] for r in per_round]
        return {"median": round(statistics.median(values), 3), "min": min(values),
                "max": max(values)}  # fmt: skip

    return {
        "in_process_tokens_per_s": spread("in_process"),
        "served_tokens_per_s": spread("served"),
        "ratio_served_over_in_process": spread("ratio"),
        "overhead_rounds": per_round,
    }


def requests_per_second(server: ServerProcess, prompts: list[list[int]], clients: int) -> float:
    """`clients` threads each send REQUESTS_PER_CLIENT sampled completions, one at a time."""

    def client(index: int) -> None:
        with httpx.Client(timeout=600) as http:
            for k in range(REQUESTS_PER_CLIENT):
                i = index * REQUESTS_PER_CLIENT + k
                body = {
                    "prompt": prompts[i % len(prompts)],
                    "max_tokens": MAX_TOKENS,
                    "temperature": 1.0,
                    "seed": i,  # distinct seeds, as RL rollout sends them
                }
                response = http.post(f"{server.url}/v1/completions", json=body)
                response.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    return clients * REQUESTS_PER_CLIENT / (time.perf_counter() - started)


def _stats(server: ServerProcess) -> dict[str, int]:
    return httpx.get(f"{server.url}/stats", timeout=30).json()


def _summary(values: list[float]) -> dict[str, object]:
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
        "runs": [round(v, 2) for v in values],
    }


def concurrency(model_dir: Path, prompts: list[list[int]], rounds: int) -> dict[str, object]:
    """Requests/s per client count, batched vs unbatched, interleaved over `rounds`."""
    modes = {"batched": "32", "unbatched": "1"}
    runs: dict[str, dict[int, list[float]]] = {m: {c: [] for c in CLIENTS} for m in modes}
    batch_counts = {"requests": 0, "batches": 0}
    servers = {m: serve_model(model_dir, "--max-batch", size) for m, size in modes.items()}
    try:
        for server in servers.values():
            server.start()
            requests_per_second(server, prompts, 2)  # warm-up
        for round_ in range(rounds):
            order = list(modes) if round_ % 2 == 0 else list(reversed(modes))
            for clients in CLIENTS:
                for mode in order:
                    before = _stats(servers[mode])
                    rate = requests_per_second(servers[mode], prompts, clients)
                    runs[mode][clients].append(rate)
                    if mode == "batched" and clients > 1:
                        after = _stats(servers[mode])
                        for key in batch_counts:
                            batch_counts[key] += after[key] - before[key]
                    print(f"round {round_ + 1} {mode:9s} {clients:2d} clients: {rate:6.2f} req/s")
    finally:
        for server in servers.values():
            server.stop()
    speedup = {
        str(c): round(
            statistics.median(runs["batched"][c]) / statistics.median(runs["unbatched"][c]), 2
        )
        for c in CLIENTS
    }
    return {
        "what": "requests/s of sampled completions, batching server vs --max-batch 1",
        "clients": list(CLIENTS),
        "requests_per_client": REQUESTS_PER_CLIENT,
        "max_tokens": MAX_TOKENS,
        "rounds": rounds,
        "batched_requests_per_s": {str(c): _summary(runs["batched"][c]) for c in CLIENTS},
        "unbatched_requests_per_s": {str(c): _summary(runs["unbatched"][c]) for c in CLIENTS},
        "median_speedup": speedup,
        "batched_mean_batch_size_at_4_and_16_clients": round(
            batch_counts["requests"] / max(1, batch_counts["batches"]), 2
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repeats")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    # One torch thread here and in the servers (they inherit the variable): on a shared
    # machine, OpenMP hand-offs between busy cores only add noise.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    task = ArithmeticTask()
    _, test = make_splits(task)
    conversations = [row["prompt"] for row in test[:PROMPTS]]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny", tokenizer_corpus(task), size="micro")
        local = HFChat(model_dir, batch_size=1)  # as the unbatched server: one at a time
        prompts = [local.encode(c) for c in conversations]
        with serve_model(model_dir, "--served-model-name", "tiny", "--max-batch", "1") as server:
            remote = OpenAIChat(model="tiny", base_url=server.base_url, max_concurrency=4)
            overhead = interleaved_overhead(local, remote, conversations, args.rounds)
        del local
        batching = concurrency(model_dir, prompts, args.rounds)
    result = {
        "benchmark": "serve_overhead",
        "what": "completion tokens/s, same prompts and sampling, in-process vs over HTTP "
        "(server with --max-batch 1)",
        "prompts": PROMPTS,
        "params": {"n": PARAMS.n, "max_tokens": PARAMS.max_tokens, "temperature": 1.0},
        **overhead,
        "concurrency": batching,
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
