"""IndexCache speed on transformers' GLM-5 architecture: dense, DSA masked, DSA gathered, 1/2, 1/4.

On a tiny `glm_moe_dsa` model (built with `build_tiny_dsa_model`, random weights, or `--model
DIR`, e.g. one the IndexCache recipe trained) every variant runs on the same weights and the same
prompt (standard-library source, tokenised):

- dense: no indexer runs, causal SDPA over every key (see `posttrain.attention.speed`);
- dsa_masked: every indexer, transformers' SDPA path (the top-k as an L x L mask);
- dsa_gathered: every indexer, the gathered `posttrain_sparse` kernel;
- indexcache_1/2, indexcache_1/4: a uniform pattern keeping 1/2 or 1/4 of the indexers
  (`hf_dsa.using_pattern`), gathered kernel.

Variants are interleaved: each repeat runs every variant once, in an order rotated by one per
repeat, after one warm-up round; prefill seconds and decode tokens/s are medians over the
repeats. A length whose estimated peak memory or time does not fit is skipped and the reason
recorded. The JSON also carries indexer calls and analytic FLOPs per variant, speed ratios
against DSA gathered and against dense from the same run, the FP8-simulated indexer's top-k
overlap with the float one, and whether the weights were trained. With CUDA the same script
runs there (`--device cuda`; `benchmarks/gpu_check.py` calls it).

    python benchmarks/indexcache.py [--model DIR] [--lengths 1024,2048] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from posttrain.attention import hf_dsa  # noqa: E402
from posttrain.attention.chunked_indexer import CHUNK  # noqa: E402
from posttrain.attention.speed import (  # noqa: E402
    MASKED,
    Variant,
    cached_prefill,
    decode_once,
    fp8_indexer_overlap,
    hf_variant,
    indexer_flops,
    prefill_once,
)
from posttrain.data.code_corpus import (  # noqa: E402
    build_lm_corpus,
    stdlib_sources,
    token_blocks,
)
from posttrain.models.tiny_dsa import build_tiny_dsa_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
LENGTHS = (1024, 2048, 4096, 8192, 16384)
GATHERED_REFERENCE = "dsa_gathered"
GOAL_LENGTH = 8192


def uniform_pattern(n_layers: int, every: int) -> str:
    """F on layers 0, every, 2 * every, ...: keeps 1 / every of the indexers."""
    return "".join("F" if i % every == 0 else "S" for i in range(n_layers))


def variants_for(n_layers: int) -> list[Variant]:
    full = "F" * n_layers
    return [
        Variant("dense", False, full),
        Variant("dsa_masked", True, full, MASKED),
        Variant(GATHERED_REFERENCE, True, full),
        Variant("indexcache_1/2", True, uniform_pattern(n_layers, 2)),
        Variant("indexcache_1/4", True, uniform_pattern(n_layers, 4)),
    ]


def prompt_ids(tokenizer, length: int) -> torch.Tensor:
    """The first `length` tokens of standard-library sources (one prompt for every variant)."""
    ids: list[int] = []
    for source in stdlib_sources(max_files=400, max_chars=50_000, seed=0):
        ids += tokenizer(source.text, add_special_tokens=False, verbose=False)["input_ids"]
        ids.append(tokenizer.eos_token_id)
        if len(ids) >= length:
            return torch.tensor([ids[:length]])
    raise ValueError(f"the standard library gave {len(ids)} tokens, fewer than {length}")


def peak_bytes(config, length: int, variant: Variant) -> int:
    """Rough peak memory of one prefill of ``variant``. Every variant: the causal mask
    transformers builds (bool, L x L). dsa_masked (transformers' indexer and SDPA path): the
    indexer's per-head scores and their ReLU (float32, heads x L x L each), the attention
    weights and the top-k mask. dense: SDPA's attention weights if it falls back to the math
    kernel (float32, heads x L x L). gathered: the chunked indexer's scores (chunk x L per
    head, three buffers)."""
    pairs = length * length
    if variant.attn_implementation == MASKED:
        return pairs * (2 * 4 * config.index_n_heads + 2 * 4 * config.num_attention_heads + 2)
    if not variant.sparse:
        return pairs * (1 + 4 * config.num_attention_heads)
    return pairs + 3 * 4 * config.index_n_heads * length * min(length, CHUNK)


def available_bytes(device: str) -> int:
    if device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info()
        return free
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 8 << 30


def memory_skips(config, length: int, variants: list[Variant], budget: int) -> dict[str, str]:
    """The variants whose estimated peak memory at ``length`` exceeds ``budget``, with why."""
    skips = {}
    for variant in variants:
        need = peak_bytes(config, length, variant)
        if need > budget:
            skips[variant.name] = (
                f"estimated peak {need / 2**30:.1f} GiB > memory budget {budget / 2**30:.1f} GiB"
            )
    return skips


def skip_reason(last: dict | None, length: int, limit_s: float) -> str | None:
    """Why `length` is not measured at all, or None. Time: the previous length's run scaled by
    the square of the length ratio (attention and indexer are quadratic)."""
    if last is not None:
        predicted = last["seconds"] * (length / last["length"]) ** 2
        if predicted > limit_s:
            return (
                f"predicted {predicted:.0f} s for this length > --max-length-seconds {limit_s:.0f}"
            )
    return None


def measure_length(model, ids, variants, repeats: int, decode_tokens: int) -> dict[str, dict]:
    """Interleaved medians for every variant at one length."""
    names = [v.name for v in variants]
    caches, calls, prefill, decode = {}, {}, {n: [] for n in names}, {n: [] for n in names}
    for variant in variants:  # warm-up round: also counts calls and keeps each decode start
        with hf_variant(model, variant) as counted:
            caches[variant.name] = cached_prefill(model, ids)  # the prefill's warm-up
            calls[variant.name] = counted.total
            decode_once(model, *caches[variant.name], decode_tokens)
    for r in range(repeats):
        for variant in variants[r % len(variants) :] + variants[: r % len(variants)]:
            with hf_variant(model, variant):
                prefill[variant.name].append(prefill_once(model, ids))
                seconds = decode_once(model, *caches[variant.name], decode_tokens)
                decode[variant.name].append(decode_tokens * ids.shape[0] / seconds)
    length = ids.shape[1]
    rows = {}
    for variant in variants:
        sparse = variant.sparse
        rows[variant.name] = {
            "pattern": variant.pattern if sparse else "-",
            "attn_implementation": variant.attn_implementation
            or ("posttrain_sparse" if sparse else "sdpa (no indices)"),
            "n_indexers": variant.n_indexers,
            "indexer_calls_per_prefill": calls[variant.name],
            "indexer_gflops_prefill": indexer_flops(model.config, length, variant.pattern) / 1e9
            if sparse
            else 0.0,
            "indexer_mflops_per_decode_token": indexer_flops(
                model.config, 1, variant.pattern, past=length
            )
            / 1e6
            if sparse
            else 0.0,
            "prefill_s": statistics.median(prefill[variant.name]),
            "prefill_s_all": prefill[variant.name],
            "decode_tok_s": statistics.median(decode[variant.name]),
        }
    for row in rows.values():
        for ref in ("dense", GATHERED_REFERENCE):
            row[f"prefill_x_vs_{ref}"] = rows[ref]["prefill_s"] / row["prefill_s"]
            row[f"decode_x_vs_{ref}"] = row["decode_tok_s"] / rows[ref]["decode_tok_s"]
    return rows


def indexer_cost(rows: dict[str, dict]) -> dict[str, float]:
    """Prefill seconds split by a least-squares line over the gathered variants (all, 1/2, 1/4
    of the indexers): seconds per indexer call (slope) and the rest of a gathered prefill
    (intercept), to set against dense attention's prefill at the same length."""
    gathered = [r for r in rows.values() if r["attn_implementation"] == "posttrain_sparse"]
    fit = statistics.linear_regression(
        [r["indexer_calls_per_prefill"] for r in gathered], [r["prefill_s"] for r in gathered]
    )
    return {
        "seconds_per_indexer_call": fit.slope,
        "gathered_prefill_without_indexers_s": fit.intercept,
        "dense_prefill_s": rows["dense"]["prefill_s"],
    }


def goals(by_length: dict[int, dict]) -> dict[str, object]:
    long = {n: rows for n, rows in by_length.items() if n >= GOAL_LENGTH}
    at_goal = by_length.get(GOAL_LENGTH)
    quarter = at_goal["indexcache_1/4"]["prefill_x_vs_dsa_gathered"] if at_goal else None
    return {
        "gathered_faster_than_dense_at_8k_plus": {
            str(n): rows[GATHERED_REFERENCE]["prefill_x_vs_dense"] > 1.0 for n, rows in long.items()
        }
        or "not measured (no length >= 8192 fitted)",
        "indexcache_1/4_prefill_x_vs_gathered_at_8k": quarter,
        "indexcache_1/4_at_least_1.8x_at_8k": None if quarter is None else quarter >= 1.8,
    }


def markdown(by_length: dict[int, dict]) -> str:
    head = (
        "| length | variant | indexer calls | indexer GFLOP | prefill s | x gathered | x dense "
        "| decode tok/s | x gathered | x dense |"
    )
    lines = [head, "|" + "---|" * 10]
    for length, rows in by_length.items():
        for name, r in rows.items():
            lines.append(
                f"| {length} | {name} | {r['indexer_calls_per_prefill']} "
                f"| {r['indexer_gflops_prefill']:.2f} | {r['prefill_s']:.3f} "
                f"| {r['prefill_x_vs_dsa_gathered']:.2f} | {r['prefill_x_vs_dense']:.2f} "
                f"| {r['decode_tok_s']:.1f} | {r['decode_x_vs_dsa_gathered']:.2f} "
                f"| {r['decode_x_vs_dense']:.2f} |"
            )
    return "\n".join(lines)


def quality(run_dir: Path, model, tokenizer, variants: list[Variant]) -> dict:
    """Held-out LM loss and recall of every variant, and of each distilled pattern the recipe
    saved, on the data of the `posttrain indexcache run` directory ``run_dir`` (its config
    rebuilds the same corpus: held-out files and recall sequences the model never trained on),
    at the recipe's training block length. dsa_masked is left out: it selects the same keys as
    dsa_gathered, so its loss is the same."""
    from posttrain.attention import hf_train
    from posttrain.config import load_config
    from posttrain.recipes.indexcache import IndexCacheRunConfig

    config = load_config(IndexCacheRunConfig, run_dir / "config.yaml", [])
    corpus = build_lm_corpus(config.corpus)
    block = config.train.block_size
    held = token_blocks(tokenizer, corpus["heldout"], block)[: config.heldout_blocks]
    recall = corpus["recall_heldout"]

    def measure(m, pattern: str, dense: bool) -> dict:
        scores = hf_train.recall_accuracy(m, tokenizer, recall, pattern, dense)
        return {
            "pattern": "-" if dense else pattern,
            "heldout_loss": hf_train.heldout_loss(m, held, pattern, dense=dense),
            **scores,
        }

    rows = {
        v.name: measure(model, v.pattern, not v.sparse)
        for v in variants
        if v.attn_implementation != MASKED
    }
    distilled_root = run_dir / "distilled"  # one directory per distinct pattern, e.g. uniform-1/4
    for config_file in sorted(distilled_root.rglob("config.json")):
        folder = config_file.parent
        distilled = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        distilled = distilled.to(model.device).eval()
        rows[f"distilled/{folder.relative_to(distilled_root).as_posix()}"] = measure(
            distilled, hf_dsa.pattern_of(distilled), dense=False
        )
    reference = rows[GATHERED_REFERENCE]["heldout_loss"]
    for row in rows.values():
        row["loss_vs_dsa_%"] = 100.0 * (row["heldout_loss"] - reference) / reference
    return {
        "run": str(run_dir),
        "block_tokens": block,
        "heldout_blocks": len(held),
        "recall_items": len(recall),
        "recall_task": 'recall_sequences: key = "value" lines, code filler, the lines again '
        "shuffled; scored on the repeated values' tokens (teacher forced)",
        "rows": rows,
    }


def quality_markdown(result: dict) -> str:
    lines = [
        "| variant | pattern | held-out loss | vs DSA % | recall token acc | recall exact |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in result["rows"].items():
        lines.append(
            f"| {name} | {r['pattern']} | {r['heldout_loss']:.4f} | {r['loss_vs_dsa_%']:+.2f} "
            f"| {r['recall_token_accuracy']:.3f} | {r['recall_exact']:.3f} |"
        )
    return "\n".join(lines)


def load_model(args, workdir: Path, longest: int):
    """(model, tokenizer, weights description)."""
    if args.model is not None:
        folder, weights = args.model, f"checkpoint {args.model} (as saved: trained if it was)"
    else:
        corpus = [s.text for s in stdlib_sources(max_files=200, max_chars=20_000, seed=0)]
        folder = build_tiny_dsa_model(
            workdir / "model",
            corpus,
            arch="glm_moe_dsa",
            size=args.size,
            max_positions=longest + args.decode_tokens + 8,
        )
        weights = f"random (build_tiny_dsa_model size={args.size} seed=0, untrained)"
    dtype = getattr(torch, args.dtype)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(args.device).eval()
    return model, AutoTokenizer.from_pretrained(folder), weights


def hf_benchmark(args, out: Path) -> dict:
    """Measure every length; `out` is rewritten after each one (`complete` says whether all
    lengths were done), so an interrupted run keeps what it measured."""
    if args.threads:
        torch.set_num_threads(args.threads)
    lengths = sorted(int(n) for n in args.lengths.split(","))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model, tokenizer, weights = load_model(args, Path(tmp), max(lengths))
    if not hf_dsa.is_dsa_model(model):
        raise SystemExit(f"{args.model} is not a transformers DSA model")
    config = model.config
    variants = variants_for(config.num_hidden_layers)
    overlap_len = min(args.overlap_length, max(lengths))
    overlap = fp8_indexer_overlap(model, prompt_ids(tokenizer, overlap_len).to(args.device))
    by_length, skipped = {}, {}
    result = {
        "benchmark": "indexcache_glm5",
        "command": "python benchmarks/indexcache.py " + " ".join(args.argv),
        "complete": False,
        "model": {
            "arch": config.model_type,
            "weights": weights,
            "pattern_as_loaded": hf_dsa.pattern_of(model),
            "layers": config.num_hidden_layers,
            "hidden_size": config.hidden_size,
            "index_n_heads": config.index_n_heads,
            "index_head_dim": config.index_head_dim,
            "index_topk": config.index_topk,
            "q_lora_rank": config.q_lora_rank,
            "dtype": args.dtype,
        },
        "protocol": (
            f"batch 1, same prompt for every variant; one warm-up round, then {args.repeats} "
            "interleaved rounds (order rotated each round); medians; decode "
            f"{args.decode_tokens} greedy tokens after the prefill"
        ),
        "indexer_flops_formula": (
            "per full layer: 2*L*(q_lora_rank*H_I*d_I + hidden*d_I + hidden*H_I) "
            "+ causal_pairs*(2*H_I*d_I + 2*H_I) (speed.indexer_flops)"
        ),
        "variants": {v.name: v.pattern if v.sparse else "no indexer" for v in variants},
        "results": {},
        "skipped": skipped,
        "fp8_indexer_topk_overlap": {
            "tokens": overlap_len,
            "per_layer": {str(k): v for k, v in overlap.items()},
            "mean": statistics.mean(overlap.values()),
            "weights": weights,
        },
        "machine": {
            "platform": platform.platform(),
            "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "torch_threads": torch.get_num_threads(),
        },
    }

    if args.run is not None:
        result["quality"] = quality(args.run, model, tokenizer, variants)
        print(quality_markdown(result["quality"]), flush=True)

    def save(complete: bool) -> None:
        result["results"] = {str(n): rows for n, rows in by_length.items()}
        result["indexer_cost_fit"] = {str(n): indexer_cost(r) for n, r in by_length.items()}
        result["goals"] = goals(by_length)
        result["markdown"] = markdown(by_length)
        result["complete"] = complete
        result["total_s"] = round(time.perf_counter() - started, 1)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))

    budget = int(available_bytes(args.device) * args.memory_fraction)
    limit = getattr(config, "max_position_embeddings", None)
    last = None
    for length in lengths:
        reason = skip_reason(last, length, args.max_length_seconds)
        if limit is not None and length + args.decode_tokens > limit:
            reason = f"longer than the model's max_position_embeddings {limit}"
        too_big = memory_skips(config, length, variants, budget)
        if not reason and {"dense", GATHERED_REFERENCE} & set(too_big):
            reason = "; ".join(f"{name}: {why}" for name, why in too_big.items())
        if reason:
            skipped[str(length)] = reason
            print(f"skip {length}: {reason}")
            continue
        for name, why in too_big.items():
            skipped[f"{length}/{name}"] = why
            print(f"skip {name} at {length}: {why}")
        fitting = [v for v in variants if v.name not in too_big]
        ids = prompt_ids(tokenizer, length).to(args.device)
        t0 = time.perf_counter()
        by_length[length] = measure_length(model, ids, fitting, args.repeats, args.decode_tokens)
        last = {"length": length, "seconds": time.perf_counter() - t0}
        print(f"{length} tokens: {last['seconds']:.0f} s", flush=True)
        save(complete=False)
    save(complete=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="a glm_moe_dsa model directory")
    parser.add_argument(
        "--run",
        type=Path,
        default=None,
        help="a `posttrain indexcache run` directory: its trained model (dsa-model/), and the "
        "held-out loss and recall of every variant and distilled pattern on its held-out data",
    )
    parser.add_argument("--size", default="micro", help="tiny_dsa size when building a model")
    parser.add_argument("--lengths", default=",".join(map(str, LENGTHS)))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--decode-tokens", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--overlap-length", type=int, default=2048)
    parser.add_argument("--memory-fraction", type=float, default=0.6)
    parser.add_argument("--max-length-seconds", type=float, default=1800.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    if args.run is not None:
        if args.model is not None:
            parser.error("--run takes its model from the run directory: drop --model")
        args.model = args.run / "dsa-model"
        if not (args.model / "config.json").exists():
            parser.error(f"--run: no trained model at {args.model}")
    suffix = "" if args.device == "cpu" else f"_{args.device.split(':')[0]}"
    out = args.out or RESULTS / f"indexcache_glm5{suffix}.json"
    result = hf_benchmark(args, out)
    print(result["markdown"])
    print(json.dumps({"goals": result["goals"], "skipped": result["skipped"]}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
