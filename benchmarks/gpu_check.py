"""The GPU check: run it whenever a machine with CUDA is at hand.

    python benchmarks/gpu_check.py [--model POLICY_DIR] [--steps 10] [--out FILE]

1. Trains the tiny policy with the RL engine on the GPU for a few steps twice, in fp32 and
   with bf16 mixed precision (same seeds, so step 1 trains on the same rollouts), checks
   that the loss and reward curves agree, and times a step (median after the first).
2. Times dense attention, DSA and IndexCache 1/2 and 1/4 prefill on the GPU
   (CUDA-synchronised medians) on transformers' GLM-5 architecture with the gathered
   `posttrain_sparse` kernel, for `tiny_dsa`'s `small` shape and a wider one, at several
   lengths, on untrained weights (prefill cost does not depend on the weights' values).
3. Runs `benchmarks/indexcache.py` on the GPU (transformers' GLM-5 architecture: dense, DSA
   masked / gathered, IndexCache 1/2 and 1/4), writing results/indexcache_glm5_cuda.json.

Without CUDA it says so and exits 0. The JSON goes to benchmarks/results/gpu_check.json.
`--model` defaults to the cached warm-start policy (`posttrain warm-start` builds it; any
causal-LM directory with a chat template works).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
RESULTS = ROOT / "benchmarks" / "results" / "gpu_check.json"

GRAD_TOLERANCE = 0.1
"""Largest relative |fp32 - bf16| step-1 gradient norm and entropy: the same rollouts, only
the training forward's precision differs (bf16 keeps about 3 significant digits). The
step-1 loss itself is -mean(advantage) on-policy in any precision, so it cannot tell."""
REWARD_TOLERANCE = 0.15
"""Largest difference of the mean training reward over the run (sampling diverges as the
two policies drift apart, so this is a loose check that bf16 learns as fp32 does)."""


def _default_model() -> str:
    from posttrain.sft.warm_start import WarmStartConfig, warm_start

    return str(warm_start(WarmStartConfig()).model_dir)


def train_curve(model: str, precision: str, steps: int, root: str) -> dict[str, Any]:
    from posttrain.rl.config import RLConfig
    from posttrain.rl.trainer import RLTrainer
    from posttrain.runs import read_metrics

    config = RLConfig(
        model=model,
        steps=steps,
        eval_every=steps,
        eval_size=64,
        save_every=0,
        mixed_precision=precision,
        run_name=f"gpu-{precision}",
        runs_root=root,
    )
    trainer = RLTrainer(config)
    assert trainer.processes.device.type == "cuda", trainer.processes.device
    trainer.train()
    records = [r for r in read_metrics(trainer.run.path) if "loss" in r]
    evals = [r for r in read_metrics(trainer.run.path) if "eval_reward" in r]
    step_s = [r["time/step_s"] for r in records[1:]]
    return {
        "mixed_precision": precision,
        "loss": [r["loss"] for r in records],
        "grad_norm": [r["grad_norm"] for r in records],
        "entropy": [r["entropy"] for r in records],
        "logp_abs_diff": [r["logp_abs_diff"] for r in records],
        "reward": [r["reward"] for r in records],
        "eval_reward": {r["step"]: r["eval_reward"] for r in evals},
        "step_seconds_median": statistics.median(step_s) if step_s else None,
        "step_seconds_all": [r["time/step_s"] for r in records],
        "generation_seconds_median": statistics.median(r["time/generation_s"] for r in records[1:])
        if len(records) > 1
        else None,
        "samples_per_step": config.prompts_per_step * config.rollout.n,
    }


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: kernels, allocator
    return statistics.median(fn() for _ in range(repeats))


WIDE = dict(
    hidden_size=1024,
    num_hidden_layers=8,
    num_attention_heads=8,
    q_lora_rank=512,
    kv_lora_rank=256,
    qk_nope_head_dim=64,
    qk_rope_head_dim=32,
    v_head_dim=64,
    intermediate_size=2816,
    moe_intermediate_size=704,
    index_n_heads=16,
    index_head_dim=64,
    index_topk=512,
)
"""A wider GLM-5 shape than `tiny_dsa`'s sizes, nearer a GPU's working point."""


def prefill_timings(size: Any, lengths: list[int], repeats: int, device: str = "cuda") -> list:
    """Prefill seconds of dense, DSA and IndexCache 1/2 and 1/4 (the gathered kernel) on a
    randomly initialised tiny GLM-5 of `size` (a `tiny_dsa` size name or shape), per length.
    `prefill_once` synchronises CUDA around each forward."""
    from transformers import AutoModelForCausalLM

    from posttrain.attention.indexcache import FULL, pattern_from_frequency
    from posttrain.attention.speed import Variant, hf_variant, prefill_once
    from posttrain.data.code_corpus import stdlib_sources
    from posttrain.models.tiny_dsa import TinyDsaSize, build_tiny_dsa_model

    shape = TinyDsaSize(**size) if isinstance(size, dict) else size
    corpus = [s.text for s in stdlib_sources(max_files=20, max_chars=20_000, seed=0)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = build_tiny_dsa_model(
            Path(tmp) / "model", corpus, arch="glm_moe_dsa", size=shape, max_positions=max(lengths)
        )
        model = AutoModelForCausalLM.from_pretrained(folder).to(device).eval()
    n = model.config.num_hidden_layers
    variants = [
        Variant("dense", False, FULL * n),
        Variant("dsa", True, FULL * n),
        Variant("indexcache-1/2", True, pattern_from_frequency(n, 2, offset=1)),
        Variant("indexcache-1/4", True, pattern_from_frequency(n, 4, offset=1)),
    ]
    rows = []
    for length in lengths:
        ids = torch.randint(3, model.config.vocab_size, (1, length), device=device)
        times = {}
        for variant in variants:
            with hf_variant(model, variant):
                forward = functools.partial(prefill_once, model, ids)
                times[variant.name] = _median_seconds(forward, repeats)
        rows.append(
            {
                "length": length,
                "seconds": times,
                "speedup_over_dsa": {k: times["dsa"] / v for k, v in times.items()},
            }
        )
        shown = ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in times.items())
        print(f"  prefill {length}: {shown}")
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return rows


def indexcache_glm5(repeats: int) -> dict[str, Any]:
    """benchmarks/indexcache.py on CUDA, in its own process; its goals and where it wrote."""
    out = ROOT / "benchmarks" / "results" / "indexcache_glm5_cuda.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "indexcache.py"), "--device", "cuda"]
    command += ["--repeats", str(repeats), "--out", str(out)]
    done = subprocess.run(command, check=False)
    if done.returncode != 0 or not out.exists():
        return {"command": " ".join(command), "returncode": done.returncode}
    return {"results": str(out.relative_to(ROOT)), **json.loads(out.read_text())["goals"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="Policy directory (default: warm start).")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine; nothing to check (exit 0).")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "command": "python benchmarks/gpu_check.py " + " ".join(sys.argv[1:]),
    }
    model = args.model or _default_model()
    with tempfile.TemporaryDirectory() as root:
        curves = {p: train_curve(model, p, args.steps, root) for p in ("no", "bf16")}
    fp32, bf16 = curves["no"], curves["bf16"]
    gaps = {
        key: abs(fp32[key][0] - bf16[key][0]) / max(abs(fp32[key][0]), 1e-8)
        for key in ("grad_norm", "entropy")
    }
    loss_gap = max(abs(a - b) for a, b in zip(fp32["loss"], bf16["loss"], strict=True))
    reward_gap = abs(statistics.mean(fp32["reward"]) - statistics.mean(bf16["reward"]))
    result["rl"] = {
        "curves": curves,
        "step1_relative_gap": gaps,
        "max_loss_gap": loss_gap,
        "mean_reward_gap": reward_gap,
        "agree": max(gaps.values()) <= GRAD_TOLERANCE and reward_gap <= REWARD_TOLERANCE,
        "tolerances": {"step1_relative": GRAD_TOLERANCE, "mean_reward": REWARD_TOLERANCE},
    }
    print(
        f"RL fp32 vs bf16: step-1 gaps {gaps}, mean reward gap {reward_gap:.4f}, "
        f"step {fp32['step_seconds_median']:.3f} s vs {bf16['step_seconds_median']:.3f} s"
    )
    result["prefill"] = {
        "small": prefill_timings("small", [2048, 8192], args.repeats),
        "wide": prefill_timings(WIDE, [4096, 8192], args.repeats),
    }
    result["indexcache_glm5"] = indexcache_glm5(args.repeats)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0 if result["rl"]["agree"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
