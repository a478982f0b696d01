"""Speed measurement on transformers' DSA models: which code each variant runs (indexer calls,
the gathered kernel, dense attention), the indexer FLOP count, and the FP8 indexer overlap.

References are independent of `speed.py`: indexer calls are counted by hooks on the model's own
indexers, kernel calls by a counting wrapper registered under the kernel's name, dense
attention by transformers' SDPA path with every key selected, FLOPs from the indexer modules'
weight shapes.
"""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch
from nano_dsa import FIELDS as NANO
from nano_dsa import LENGTH, TOPK, VOCAB
from transformers import (
    AttentionInterface,
    DeepseekV32Config,
    DeepseekV32ForCausalLM,
    GlmMoeDsaConfig,
    GlmMoeDsaForCausalLM,
)

from posttrain.attention import hf_dsa, sparse_kernel
from posttrain.attention.speed import (
    GATHERED,
    MASKED,
    Variant,
    cached_prefill,
    decode_once,
    fp8_indexer_overlap,
    hf_variant,
    indexer_flops,
    measure_variant,
)


def glm(pattern: str = "FFFF") -> GlmMoeDsaForCausalLM:
    types = [{"F": "full", "S": "shared"}[c] for c in pattern]
    torch.manual_seed(0)
    config = GlmMoeDsaConfig(n_group=1, indexer_types=types, **NANO)
    return GlmMoeDsaForCausalLM(config).float().eval()


def ids(length: int = LENGTH) -> torch.Tensor:
    return torch.randint(1, VOCAB, (1, length), generator=torch.Generator().manual_seed(3))


@contextmanager
def kernel_calls():
    """Calls of the `posttrain_sparse` function, by whether they carried top-k indices."""
    seen = {"indices": 0, "none": 0}

    def counting(*args, indices=None, **kwargs):
        seen["none" if indices is None else "indices"] += 1
        return sparse_kernel.sparse_attention_forward(*args, indices=indices, **kwargs)

    AttentionInterface.register(sparse_kernel.NAME, counting)
    try:
        yield seen
    finally:
        sparse_kernel.register()


def test_indexer_flops_follow_the_indexer_weights_and_full_layers():
    model = glm()
    indexer = hf_dsa.dsa_layers(model)[0].indexer
    # a multiply-add per weight and token: wq_b (q_lora -> H*d), wk (hidden -> d), weights_proj
    weights = sum(m.weight.numel() for m in (indexer.wq_b, indexer.wk, indexer.weights_proj))
    per_pair = 2 * 8 * 16 + 2 * 8  # H dot products of d dims, then the weighted head sum
    assert indexer_flops(model.config, 10, "FSSS") == 2 * 10 * weights + 55 * per_pair
    assert indexer_flops(model.config, 1, "FSSS", past=9) == 2 * weights + 10 * per_pair
    full = indexer_flops(model.config, 64, "FFFF")
    assert full == 4 * indexer_flops(model.config, 64, "FSSS")
    assert full == 2 * indexer_flops(model.config, 64, "FSFS")


def test_variants_run_their_indexers_and_the_gathered_kernel():
    model = glm()
    x = ids()
    variants = [
        (Variant("dense", False, "FFFF"), 0),
        (Variant("masked", True, "FFFF", MASKED), 4),
        (Variant("gathered", True, "FFFF"), 4),
        (Variant("half", True, "FSFS"), 2),
        (Variant("quarter", True, "FSSS"), 1),
    ]
    rows = {}
    for variant, expected_calls in variants:
        with kernel_calls() as kernel:
            row = measure_variant(model, x, variant, repeats=1, decode_tokens=2)
        rows[variant.name] = row
        assert row["indexer_calls_per_prefill"] == expected_calls, variant.name
        assert row["prefill_seconds"] > 0 and row["decode_tokens_per_second"] > 0
        if variant.name == "masked":
            assert kernel == {"indices": 0, "none": 0}  # transformers' SDPA path, not ours
        elif variant.name == "dense":
            assert kernel["indices"] == 0 and kernel["none"] > 0  # dense SDPA fallback
        else:
            assert kernel["indices"] > 0 and kernel["none"] == 0
    assert rows["dense"]["indexer_flops_prefill"] == 0
    assert rows["half"]["indexer_flops_prefill"] * 2 == rows["gathered"]["indexer_flops_prefill"]
    # everything is given back: the model's own pattern, indexers and implementation
    assert hf_dsa.pattern_of(model) == "FFFF" and model.config._attn_implementation == "sdpa"


def test_dense_variant_is_causal_attention_over_every_key():
    model = glm("FFSS")
    x = ids()
    with torch.no_grad():
        with hf_variant(model, Variant("dense", False, "FFSS")) as calls:
            dense = model(input_ids=x).logits
        with hf_variant(model, Variant("dsa", True, "FFSS")):
            sparse = model(input_ids=x).logits
        # reference: transformers' SDPA path with every indexer keeping every key
        indexers = [a.indexer for a in hf_dsa.dsa_layers(model) if a.indexer is not None]
        for indexer in indexers:
            indexer.index_topk = LENGTH
        reference = model(input_ids=x).logits
        for indexer in indexers:
            indexer.index_topk = TOPK
    assert calls.total == 0
    torch.testing.assert_close(dense, reference, atol=5e-5, rtol=1e-5)
    assert (sparse - reference).abs().max() > 1e-2  # the sparse variant did drop keys


def test_decode_leaves_the_prefilled_cache_and_matches_generate():
    model = glm("FSFS")
    x = ids(20)
    with hf_variant(model, Variant("ic", True, "FSFS", GATHERED)):
        cache, first = cached_prefill(model, x)
        before = cache.get_seq_length()
        assert decode_once(model, cache, first, 3) > 0
        assert decode_once(model, cache, first, 3) > 0  # again from the same state
        assert cache.get_seq_length() == before == 20
        generated = model.generate(x, max_new_tokens=1, do_sample=False)
    assert torch.equal(generated[:, -1:], first)
    with pytest.raises(ValueError, match="new_tokens"):
        decode_once(model, cache, first, 0)


def test_deepseek_v32_measures_all_full_and_refuses_sharing():
    config = DeepseekV32Config(n_group=2, **NANO)
    torch.manual_seed(0)
    model = DeepseekV32ForCausalLM(config).float().eval()
    row = measure_variant(model, ids(24), Variant("dsa", True, "FFFF"), 1, 1)
    assert row["indexer_calls_per_prefill"] == 4
    with pytest.raises(ValueError, match="sharing"):
        measure_variant(model, ids(24), Variant("ic", True, "FSFS"), 1, 1)
    with pytest.raises(ValueError, match="dense variant"):
        measure_variant(model, ids(24), Variant("dense", False, "FFFF", MASKED), 1, 1)


def test_fp8_indexer_overlap_is_high_but_not_exact():
    model = glm("FSFS")
    x = ids(64)
    overlap = fp8_indexer_overlap(model, x, block=16)
    assert sorted(overlap) == [0, 2]
    assert all(0.8 < v <= 1.0 for v in overlap.values())
    assert min(overlap.values()) < 1.0  # the quantisation did change some selections
    # the hooks are gone: scores are the float ones again
    layer = hf_dsa.dsa_layers(model)[0]
    inputs = hf_dsa.indexer_inputs(model, x)[0]
    with torch.no_grad():
        before = hf_dsa.index_scores(model, 0, inputs=inputs)
        assert torch.equal(before, hf_dsa.index_scores(model, 0, inputs=inputs))
        assert not layer.indexer.wq_b._forward_hooks and not layer.indexer.k_norm._forward_hooks
