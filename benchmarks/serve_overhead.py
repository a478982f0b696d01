"""What serving over HTTP costs: the same generations in-process (HFChat) and through
`posttrain serve` + the official openai client (OpenAIChat), in one run.

Writes benchmarks/results/serve_overhead.json with completion tokens per second for each
and their ratio (served / in-process; 1.0 means HTTP costs nothing).
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from posttrain.data.arithmetic import ArithmeticTask, make_splits, tokenizer_corpus
from posttrain.models.chat.base import GenerationParams
from posttrain.models.chat.hf import HFChat
from posttrain.models.chat.openai_chat import OpenAIChat
from posttrain.models.server_process import serve_model
from posttrain.models.tiny import build_tiny_model

RESULTS = Path(__file__).parent / "results" / "serve_overhead.json"
PROMPTS = 64
PARAMS = GenerationParams(n=4, temperature=1.0, max_tokens=16, seed=0)


def tokens_per_second(chat, conversations) -> tuple[float, int]:
    started = time.perf_counter()
    results = chat.chat(conversations, PARAMS)
    elapsed = time.perf_counter() - started
    tokens = sum(len(c.token_ids or []) for r in results for c in r.choices)
    return tokens / elapsed, tokens


def main() -> None:
    task = ArithmeticTask()
    _, test = make_splits(task)
    conversations = [row["prompt"] for row in test[:PROMPTS]]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = build_tiny_model(Path(tmp) / "tiny", tokenizer_corpus(task), size="micro")
        local = HFChat(model_dir, batch_size=1)  # the server also answers one request at a time
        local.chat(conversations[:2], PARAMS)  # warm-up
        local_tps, local_tokens = tokens_per_second(local, conversations)
        del local
        with serve_model(model_dir, "--served-model-name", "tiny") as server:
            remote = OpenAIChat(model="tiny", base_url=server.base_url, max_concurrency=4)
            remote.chat(conversations[:2], PARAMS)
            served_tps, served_tokens = tokens_per_second(remote, conversations)
    result = {
        "benchmark": "serve_overhead",
        "what": "completion tokens/s, same prompts and sampling, in-process vs over HTTP",
        "prompts": PROMPTS,
        "params": {"n": PARAMS.n, "max_tokens": PARAMS.max_tokens, "temperature": 1.0},
        "in_process_tokens_per_s": round(local_tps, 1),
        "served_tokens_per_s": round(served_tps, 1),
        "tokens": {"in_process": local_tokens, "served": served_tokens},
        "ratio_served_over_in_process": round(served_tps / local_tps, 3),
        "machine": {
            "cpus": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
