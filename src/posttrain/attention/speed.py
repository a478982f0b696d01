"""Speed of a DSA model under an attention variant: prefill latency, decode throughput, FLOPs.

Why: IndexCache's claim is a speed claim (THUDM, 2026: removing 75% of the indexers gives
1.82x prefill and 1.48x decode on a 30B model at long context), so the benchmark needs
wall-clock numbers for dense attention, DSA with every indexer, and IndexCache patterns on
the same weights, plus the indexer work each variant does. A *variant* is
``(sparse, pattern, attn_implementation)``; ``sparse=False`` is the dense baseline (no indexer
runs, every query attends to every earlier key).

The models are transformers' DSA models (``hf_dsa.is_dsa_model``: GLM-5's ``glm_moe_dsa``,
DeepSeek-V3.2's ``deepseek_v32``); ``hf_variant`` sets one up as a variant for a block. The
pattern goes in with ``hf_dsa.using_pattern``; the attention implementation with
``model.set_attn_implementation`` (transformers' supported switch on a loaded model: it rewrites
``config._attn_implementation``, which every attention module reads at each forward). Sparse
variants default to the gathered kernel (``sparse_kernel.NAME``) with the indexer run over
query chunks (``chunked_indexer``); ``MASKED`` ("sdpa") is transformers' own path as
shipped, which turns the top-k into an L x L mask over dense SDPA. The dense variant swaps
every layer's indexer for a stand-in that returns no top-k (``None``) and runs under the
gathered kernel's name: with no indices that implementation *is* transformers' SDPA over the
model's causal mask, so no indexer arithmetic runs and the attention is dense, with the same
MLA, MoE and mask code as the sparse variants. (Raising ``index_topk`` instead would still run
every indexer and sort all keys; "sdpa" itself needs top-k indices to build its mask.)

Timing is wall clock around ``torch.no_grad()`` forwards, the median of ``repeats`` after a
warm-up; callers should fix the thread count (``torch.set_num_threads``) so variants compete on
equal terms. The benchmark interleaves variants itself with ``hf_variant``, ``prefill_once``,
``cached_prefill`` and ``decode_once``. Indexer FLOPs are counted analytically
(``indexer_flops``), since the lightning indexer's cost is what IndexCache removes.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from copy import deepcopy
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from posttrain.attention import hf_dsa, sparse_kernel
from posttrain.attention.chunked_indexer import chunked_indexers
from posttrain.attention.dsa import fp8_quant_dequant, topk_overlap
from posttrain.attention.indexcache import FULL, parse_pattern

GATHERED = sparse_kernel.NAME
"""transformers' attention implementation that gathers each query's top-k keys."""
MASKED = "sdpa"
"""transformers' own DSA path: the top-k as an L x L mask over dense SDPA."""


@dataclass(frozen=True)
class Variant:
    """An attention variant of one model: a name, sparse or dense, an F/S pattern, and the
    attention implementation of a sparse variant (None: gathered)."""

    name: str
    sparse: bool
    pattern: str
    attn_implementation: str | None = None

    @property
    def n_indexers(self) -> int:
        return self.pattern.count(FULL) if self.sparse else 0


def indexer_flops(config: object, length: int, pattern: str, past: int = 0) -> int:
    """FLOPs of the lightning indexers for ``length`` new tokens after ``past`` cached ones.

    Per F layer and new token: the projections (index queries H_I x d_I from the query input,
    one key of d_I and H_I head weights from the hidden size) and, for every causal key, H_I
    dot products of d_I dims plus the ReLU-weighted sum over heads:

        2 * length * (q_in * H_I * d_I + hidden * d_I + hidden * H_I)
        + causal_pairs * (2 * H_I * d_I + 2 * H_I),
        causal_pairs = length * past + length * (length + 1) / 2

    ``q_in`` is ``q_lora_rank`` (the indexer projects the attention's low-rank query
    ``q_resid``), or ``hidden_size`` on a config without one.
    S layers run no indexer. Not counted: top-k selection (comparisons), LayerNorm and RoPE
    (O(d) per token), and the masked upper triangle that transformers' indexer computes and
    then discards (its matmul is over all L x L pairs, so its executed prefill work is up to
    twice the causal count). Prefill is ``past=0``; one decode step is ``length=1, past=L``.
    """
    pattern = parse_pattern(pattern, config.num_hidden_layers)
    h, hi, di = config.hidden_size, config.index_n_heads, config.index_head_dim
    q_in = getattr(config, "q_lora_rank", None) or h
    projections = 2 * length * (q_in * hi * di + h * di + h * hi)
    causal_pairs = length * past + length * (length + 1) // 2
    scoring = causal_pairs * (2 * hi * di + 2 * hi)
    return pattern.count(FULL) * (projections + scoring)


# --- variants -------------------------------------------------------------------------------


class _NoIndexer(nn.Module):
    """Stands in for an indexer in the dense variant: no scores, no top-k (``None``), so the
    attention passes ``indices=None`` and the gathered kernel falls back to dense SDPA."""

    def forward(self, *args: object, **kwargs: object) -> None:
        return None


@contextmanager
def _without_indexers(model: nn.Module) -> Iterator[None]:
    attns = hf_dsa.dsa_layers(model)
    saved = [attn.indexer for attn in attns]
    for attn in attns:
        attn.indexer = _NoIndexer()
    try:
        yield
    finally:
        for attn, indexer in zip(attns, saved, strict=True):
            attn.indexer = indexer


@contextmanager
def hf_variant(model: nn.Module, variant: Variant) -> Iterator[hf_dsa.IndexerCalls]:
    """A transformers DSA model set up as ``variant`` for the block; yields the indexer calls
    the model makes inside it (hooks on the model's real indexers: zero for the dense variant).
    Everything is given back on exit: indexer modules, config pattern, implementation."""
    with ExitStack() as stack:
        if variant.sparse:
            stack.enter_context(hf_dsa.using_pattern(model, variant.pattern))
            name = variant.attn_implementation or GATHERED
            stack.enter_context(hf_dsa.attn_implementation(model, name))
            if name == GATHERED:  # our kernel with the indexer over query chunks
                stack.enter_context(chunked_indexers(model))
            calls = stack.enter_context(hf_dsa.count_indexer_calls(model))
        else:
            if variant.attn_implementation not in (None, GATHERED):
                raise ValueError(
                    f"the dense variant runs under {GATHERED!r} without indices (dense SDPA); "
                    f"got attn_implementation={variant.attn_implementation!r}"
                )
            stack.enter_context(hf_dsa.attn_implementation(model, GATHERED))
            calls = stack.enter_context(hf_dsa.count_indexer_calls(model))
            stack.enter_context(_without_indexers(model))
        yield calls


@torch.no_grad()
def prefill_once(model: nn.Module, ids: Tensor) -> float:
    """Wall-clock seconds of one forward over ``ids`` with no cache (set the variant first)."""
    _synchronize(ids)
    start = time.perf_counter()
    model(input_ids=ids, use_cache=False)
    _synchronize(ids)
    return time.perf_counter() - start


@torch.no_grad()
def cached_prefill(model: nn.Module, ids: Tensor) -> tuple[object, Tensor]:
    """The cache after a prefill of ``ids`` and the greedy next token (the decode start)."""
    out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
    return out.cache, out.logits[:, -1].argmax(-1, keepdim=True)


@torch.no_grad()
def decode_once(model: nn.Module, cache: object, first: Tensor, new_tokens: int) -> float:
    """Seconds to decode ``new_tokens`` greedily from a copy of ``cache`` (left untouched, so
    every repeat starts from the same context length); the copy is not timed."""
    if new_tokens < 1:
        raise ValueError(f"new_tokens must be >= 1, got {new_tokens}")
    cache = deepcopy(cache)
    token = first
    _synchronize(first)
    start = time.perf_counter()
    for _ in range(new_tokens):
        out = model(input_ids=token, cache=cache, use_cache=True)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
    _synchronize(first)
    return time.perf_counter() - start


def _synchronize(tensor: Tensor) -> None:
    # CUDA runs asynchronously: without this the clock stops before the GPU does.
    if tensor.is_cuda:
        torch.cuda.synchronize(tensor.device)


def _measure(
    model: nn.Module, ids: Tensor, variant: Variant, repeats: int, decode_tokens: int
) -> dict[str, float | int | str]:
    model.eval()
    with hf_variant(model, variant) as calls:
        cache, first = cached_prefill(model, ids)  # also the prefill timing's warm-up
        per_prefill = calls.total
        prefill = statistics.median(prefill_once(model, ids) for _ in range(repeats))
        decode_once(model, cache, first, decode_tokens)  # warm-up
        decode = statistics.median(
            decode_once(model, cache, first, decode_tokens) for _ in range(repeats)
        )
    return {
        "prefill_seconds": prefill,
        "decode_tokens_per_second": decode_tokens * ids.shape[0] / decode,
        "indexer_calls_per_prefill": per_prefill,
    }


@torch.no_grad()
def fp8_indexer_overlap(model: nn.Module, ids: Tensor, block: int = 128) -> dict[int, float]:
    """{full layer: top-k overlap of the FP8-simulated indexer with the float32 one} on ``ids``.

    DeepSeek-V3.2 runs its indexer in FP8; here each index query head and the index key are
    block-quantised (``dsa.fp8_quant_dequant``, blocks of ``block`` within a head) as the
    projections emit them, before RoPE (a simulation: the release quantises after RoPE). Both
    scorings see the same inputs (one float forward). Only queries with more visible keys than
    ``index_topk`` count, since below that every key is selected either way.
    """
    layers = hf_dsa.dsa_layers(model)
    overlaps = {}
    for layer, inputs in hf_dsa.indexer_inputs(model, ids).items():
        indexer = layers[layer].indexer
        exact = hf_dsa.index_scores(model, layer, inputs=inputs)
        with _fp8_projections(indexer, block):
            quantised = hf_dsa.index_scores(model, layer, inputs=inputs)
        k = min(indexer.index_topk, exact.shape[-1])
        a = exact.topk(k, dim=-1).indices[:, k:]
        b = quantised.topk(k, dim=-1).indices[:, k:]
        if a.numel() == 0:
            raise ValueError(f"need more than index_topk={k} tokens to compare selections")
        overlaps[layer] = topk_overlap(a, b)
    return overlaps


@contextmanager
def _fp8_projections(indexer: nn.Module, block: int) -> Iterator[None]:
    heads, dim = indexer.n_heads, indexer.head_dim

    def queries(_module, _args, out: Tensor) -> Tensor:
        per_head = out.view(*out.shape[:-1], heads, dim)
        return fp8_quant_dequant(per_head, block).view_as(out)

    def keys(_module, _args, out: Tensor) -> Tensor:
        return fp8_quant_dequant(out, block)

    handles = [
        indexer.wq_b.register_forward_hook(queries),
        indexer.k_norm.register_forward_hook(keys),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def measure_variant(
    model: nn.Module,
    ids: Tensor,
    variant: Variant,
    repeats: int = 3,
    decode_tokens: int = 16,
) -> dict[str, float | int | str]:
    """Prefill seconds, decode tokens/s, indexer calls (one prefill) and FLOPs for a variant
    (medians of ``repeats`` after a warm-up; the cached prefill that counts the indexer calls
    is also the prefill timing's warm-up)."""
    model.eval()
    length = ids.shape[1]
    config = model.config
    flops = indexer_flops(config, length, variant.pattern) if variant.sparse else 0
    decode_flops = indexer_flops(config, 1, variant.pattern, past=length) if variant.sparse else 0
    row = {
        **asdict(variant),
        "length": length,
        "n_indexers": variant.n_indexers,
        "indexer_flops_prefill": flops * ids.shape[0],
        "indexer_flops_per_decode_token": decode_flops,
    }
    return row | _measure(model, ids, variant, repeats, decode_tokens)


__all__ = [
    "GATHERED",
    "MASKED",
    "Variant",
    "cached_prefill",
    "decode_once",
    "fp8_indexer_overlap",
    "hf_variant",
    "indexer_flops",
    "measure_variant",
    "prefill_once",
]
