"""Speed measurement helpers of the IndexCache benchmark: FLOP counts, calls, cache reuse."""

from __future__ import annotations

import pytest
import torch

from posttrain.attention.model import DSAConfig, DSAForCausalLM
from posttrain.attention.speed import (
    Variant,
    decode_tokens_per_second,
    indexer_flops,
    measure_variant,
)


def small_model(**overrides) -> DSAForCausalLM:
    fields = dict(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=32,
        index_n_heads=2,
        index_head_dim=4,
        index_rope_dim=2,
        index_topk=3,
    )
    fields.update(overrides)
    torch.manual_seed(0)
    return DSAForCausalLM(DSAConfig(**fields)).eval()


def test_indexer_flops_scale_with_kept_layers_and_causal_pairs():
    cfg = small_model().config
    one = indexer_flops(cfg, 1, "FSSS", past=9)
    # one new token after 9 cached: projections 2*16*(2*4+4+2), 10 keys * (2*2*4 + 2*2)
    assert one == 2 * 16 * 14 + 10 * 20
    assert indexer_flops(cfg, 10, "FFFF") == 4 * indexer_flops(cfg, 10, "FSSS")
    assert indexer_flops(cfg, 10, "FSFS") == 2 * indexer_flops(cfg, 10, "FSSS")
    # prefill of 10 tokens: 55 causal pairs
    assert indexer_flops(cfg, 10, "FSSS") == 10 * 2 * 16 * 14 + 55 * 20


def test_measure_variant_counts_indexer_calls_per_pattern():
    model = small_model()
    ids = torch.randint(0, 50, (1, 12))
    dense = measure_variant(model, ids, Variant("dense", False, "FFFF"), 1, 2)
    dsa = measure_variant(model, ids, Variant("dsa", True, "FFFF"), 1, 2)
    shared = measure_variant(model, ids, Variant("ic", True, "FSSS"), 1, 2)
    assert dense["indexer_calls_per_prefill"] == 0 and dense["indexer_flops_prefill"] == 0
    assert dsa["indexer_calls_per_prefill"] == 4 and dsa["n_indexers"] == 4
    assert shared["indexer_calls_per_prefill"] == 1
    assert shared["indexer_flops_prefill"] * 4 == dsa["indexer_flops_prefill"]
    for row in (dense, dsa, shared):
        assert row["prefill_seconds"] > 0 and row["decode_tokens_per_second"] > 0
        assert row["length"] == 12


def test_decode_timing_leaves_the_prefilled_cache_reusable():
    model = small_model()
    ids = torch.randint(0, 50, (2, 6))
    # three repeats decode from the same prefilled state: an in-place cache would grow and
    # the index-key cache check in the model would fail on the second repeat
    assert decode_tokens_per_second(model, ids, Variant("ic", True, "FSFS"), 3, 3) > 0
    with pytest.raises(ValueError, match="new_tokens"):
        decode_tokens_per_second(model, ids, Variant("ic", True, "FSFS"), 0)


def test_own_model_has_one_sparse_path_and_no_attention_implementation():
    model = small_model()
    ids = torch.randint(0, 50, (1, 8))
    # an implementation name would be silently meaningless here, so it is refused
    with pytest.raises(ValueError, match="attn_implementation"):
        measure_variant(model, ids, Variant("masked", True, "FFFF", "sdpa"), 1, 1)
    # no q_lora_rank on this config: index queries are projected from the hidden size
    assert getattr(model.config, "q_lora_rank", None) is None
    assert indexer_flops(model.config, 1, "FSSS") == 2 * 16 * (2 * 4 + 4 + 2) + 20
