"""Speed of a DSA model under an attention variant: prefill latency, decode throughput, FLOPs.

Why: IndexCache's claim is a speed claim (THUDM, 2026: removing 75% of the indexers gives
1.82x prefill and 1.48x decode on a 30B model at long context), so the benchmark needs
wall-clock numbers for dense attention, DSA with every indexer, and IndexCache patterns on
the same weights, plus the indexer work each variant does. A *variant* here is
``(sparse, index_pattern)``: ``sparse=False`` is the dense baseline (no indexer runs).

Timing is wall clock around ``torch.no_grad()`` forwards with one warm-up run, the median of
``repeats``; callers should fix the thread count (``torch.set_num_threads``) so variants
compete on equal terms. Indexer FLOPs are counted analytically (multiply-adds x 2) from the
config, since the lightning indexer's cost is what IndexCache removes.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from posttrain.attention.indexcache import FULL, parse_pattern
from posttrain.attention.model import DSACache, DSAConfig, DSAForCausalLM


@dataclass(frozen=True)
class Variant:
    """An attention variant of one model: a name, sparse or dense, an F/S pattern."""

    name: str
    sparse: bool
    pattern: str

    @property
    def n_indexers(self) -> int:
        return self.pattern.count(FULL) if self.sparse else 0


def indexer_flops(config: DSAConfig, length: int, pattern: str, past: int = 0) -> int:
    """FLOPs of the lightning indexers for ``length`` new tokens after ``past`` cached ones.

    Per F layer and new token: the projections (index queries H_I x d_I, one key of d_I, H_I
    head weights, from the hidden size) and, for every causal key, H_I dot products of d_I
    dims, the ReLU-weighted sum over heads. S layers run no indexer. Top-k selection is not
    counted (it is comparisons, not FLOPs). Prefill is ``past=0``; one decode step is
    ``length=1, past=L``.
    """
    pattern = parse_pattern(pattern, config.num_hidden_layers)
    h, hi, di = config.hidden_size, config.index_n_heads, config.index_head_dim
    projections = 2 * length * h * (hi * di + di + hi)
    causal_pairs = length * past + length * (length + 1) // 2
    scoring = causal_pairs * (2 * hi * di + 2 * hi)
    return pattern.count(FULL) * (projections + scoring)


def _median_seconds(fn, repeats: int, warm_up: bool = True) -> float:
    if warm_up:  # allocator, thread pool, lazy initialisation
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def prefill_seconds(
    model: DSAForCausalLM, ids: Tensor, variant: Variant, repeats: int = 3, warm_up: bool = True
) -> float:
    """Median wall-clock seconds of one full forward over ``ids`` (no cache); ``warm_up=False``
    when the caller has just run the same forward."""
    model.eval()

    def forward() -> None:
        model(ids, sparse=variant.sparse, index_pattern=variant.pattern, use_cache=False)

    return _median_seconds(forward, repeats, warm_up)


@torch.no_grad()
def decode_tokens_per_second(
    model: DSAForCausalLM, ids: Tensor, variant: Variant, new_tokens: int = 16, repeats: int = 3
) -> float:
    """Greedy decode throughput after a cached prefill of ``ids``.

    The prefill is not timed; each repeat decodes ``new_tokens`` one at a time from a copy
    of the same cache state, so every repeat sees the same context length.
    """
    if new_tokens < 1:
        raise ValueError(f"new_tokens must be >= 1, got {new_tokens}")
    model.eval()
    out = model(ids, sparse=variant.sparse, index_pattern=variant.pattern, use_cache=True)
    prefilled: DSACache = out.cache
    first = out.logits[:, -1].argmax(-1, keepdim=True)

    def decode() -> None:
        cache = _copy_cache(prefilled)
        token = first
        for _ in range(new_tokens):
            step = model(
                token,
                cache=cache,
                use_cache=True,
                sparse=variant.sparse,
                index_pattern=variant.pattern,
            )
            cache = step.cache
            token = step.logits[:, -1].argmax(-1, keepdim=True)

    seconds = _median_seconds(decode, repeats)
    return new_tokens * ids.shape[0] / seconds


def _copy_cache(cache: DSACache) -> DSACache:
    """A cache that decoding can extend without touching ``cache`` (tensors are never
    written in place by the model, so sharing them is safe; only the lists are copied)."""
    copy = DSACache(cache.n_layers)
    copy.keys = list(cache.keys)
    copy.values = list(cache.values)
    copy.index_keys = list(cache.index_keys)
    return copy


@torch.no_grad()
def measure_variant(
    model: DSAForCausalLM,
    ids: Tensor,
    variant: Variant,
    repeats: int = 3,
    decode_tokens: int = 16,
) -> dict[str, float | int | str]:
    """Prefill seconds, decode tokens/s, indexer calls (one prefill) and FLOPs for a variant.

    The forward that counts the indexer calls is also the prefill timing's warm-up."""
    model.eval()
    model.reset_indexer_calls()
    model(ids, sparse=variant.sparse, index_pattern=variant.pattern, use_cache=False)
    calls = sum(model.indexer_calls)
    length = ids.shape[1]
    flops = indexer_flops(model.config, length, variant.pattern) if variant.sparse else 0
    decode_flops = (
        indexer_flops(model.config, 1, variant.pattern, past=length) if variant.sparse else 0
    )
    return {
        **asdict(variant),
        "length": length,
        "n_indexers": variant.n_indexers,
        "indexer_calls_per_prefill": calls,
        "indexer_flops_prefill": flops * ids.shape[0],
        "indexer_flops_per_decode_token": decode_flops,
        "prefill_seconds": prefill_seconds(model, ids, variant, repeats, warm_up=False),
        "decode_tokens_per_second": decode_tokens_per_second(
            model, ids, variant, decode_tokens, repeats
        ),
    }


__all__ = [
    "Variant",
    "decode_tokens_per_second",
    "indexer_flops",
    "measure_variant",
    "prefill_seconds",
]
