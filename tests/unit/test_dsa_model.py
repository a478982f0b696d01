"""The DSA causal LM: sparse vs dense, IndexCache sharing, cached decoding, save/load, training."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from posttrain.attention.dsa import indexer_kl_loss, selection_mask, topk_overlap
from posttrain.attention.indexcache import multi_layer_distillation_loss
from posttrain.attention.model import (
    MODEL_TYPE,
    DSACache,
    DSAConfig,
    DSAForCausalLM,
    build_dsa_model,
    freeze_non_indexer,
    generate_tokens,
    indexer_losses,
    indexer_parameters,
)

VOCAB = 97
CORPUS = [f"What is {a} + {b}? {a + b}" for a in range(30) for b in range(0, 30, 7)]


def make_model(seed: int = 0, **overrides) -> DSAForCausalLM:
    fields = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        index_n_heads=2,
        index_head_dim=8,
        index_rope_dim=4,
        index_topk=4,
        pad_token_id=0,
        eos_token_id=1,
    )
    fields.update(overrides)
    torch.manual_seed(seed)
    return DSAForCausalLM(DSAConfig(**fields)).eval()


def random_ids(batch: int, length: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(2, VOCAB, (batch, length), generator=g)


def same_weights(model: DSAForCausalLM, **overrides) -> DSAForCausalLM:
    other = make_model(**overrides)
    other.load_state_dict(model.state_dict())
    return other.eval()


# --- configuration --------------------------------------------------------------------------


def test_config_defaults_validation_and_auto_registration():
    cfg = DSAConfig(num_hidden_layers=3)
    assert cfg.index_pattern == "FFF" and cfg.sparse and cfg.num_key_value_heads == 4
    assert cfg.model_type == MODEL_TYPE
    assert isinstance(AutoConfig.for_model(MODEL_TYPE), DSAConfig)
    with pytest.raises(ValueError, match="layer 0 must be F"):
        DSAConfig(num_hidden_layers=2, index_pattern="SF")
    with pytest.raises(ValueError, match="length 3"):
        DSAConfig(num_hidden_layers=2, index_pattern="FSF")
    with pytest.raises(ValueError, match="index_topk"):
        DSAConfig(index_topk=0)


# --- sparse attention vs the dense baseline -------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [{}, {"index_pattern": "FSFS"}, {"num_key_value_heads": 1, "fp8_indexer": True}],
)
def test_sparse_with_topk_covering_the_sequence_equals_dense(overrides):
    length = 12
    sparse = make_model(index_topk=length, **overrides)
    dense = same_weights(sparse, sparse=False, index_topk=length, **overrides)
    ids = random_ids(2, length)
    with torch.no_grad():
        a, b = sparse(ids).logits, dense(ids).logits
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    # with a small top-k the sparse model really is sparse: its logits move
    small = same_weights(sparse, index_topk=3, **overrides)
    with torch.no_grad():
        assert (small(ids).logits - b).abs().max() > 1e-4


def test_each_query_attends_to_at_most_k_keys_and_s_layers_share_the_selection():
    model = make_model(index_pattern="FSSF", index_topk=4)
    ids = random_ids(2, 10)
    with torch.no_grad():
        out = model(ids, return_indexer_scores=True)
    assert out.index_pattern == "FSSF"
    assert [s is None for s in out.indexer_scores] == [False, True, True, False]
    idx0, valid0 = out.selections[0]
    assert idx0.shape == (2, 10, 4)
    # query t has min(k, t + 1) causal keys
    assert valid0.sum(-1)[0].tolist() == [min(4, t + 1) for t in range(10)]
    assert out.selections[1][0] is idx0 and out.selections[2][0] is idx0
    assert not torch.equal(out.selections[3][0], idx0)
    for layer, probs in enumerate(out.attentions):
        src = 0 if layer < 3 else 3
        allowed = selection_mask(out.selections[src][0], 10, out.selections[src][1])
        assert float(probs.masked_select(~allowed[:, None].expand_as(probs)).abs().max()) == 0
        torch.testing.assert_close(probs.sum(-1), torch.ones(2, 2, 10))
    with torch.no_grad():
        plain = model(ids, output_attentions=True)
    assert plain.indexer_scores is None and len(plain.attentions) == 4
    torch.testing.assert_close(plain.attentions[2], out.attentions[2])


def test_indexer_call_counter_s_layers_never_run_and_dense_runs_none():
    model = make_model(index_pattern="FSFS")
    ids = random_ids(1, 8)
    with torch.no_grad():
        model(ids)
        model(ids)
    assert model.indexer_calls == [2, 0, 2, 0]
    model.reset_indexer_calls()
    generate_tokens(model, ids, 5)  # prefill + 4 cached steps
    assert model.indexer_calls == [5, 0, 5, 0]
    dense = same_weights(model, index_pattern="FSFS", sparse=False)
    with torch.no_grad():
        dense(ids)
    generate_tokens(dense, ids, 3)
    assert dense.indexer_calls == [0, 0, 0, 0]
    model.reset_indexer_calls()
    model.set_index_pattern("FSSS")
    with torch.no_grad():
        model(ids)
    assert model.indexer_calls == [1, 0, 0, 0]


# --- cached decoding ------------------------------------------------------------------------


DECODE_CASES = [
    {"sparse": True},
    {"sparse": False},
    {"sparse": True, "index_pattern": "FSFS"},
]


@pytest.mark.parametrize("overrides", DECODE_CASES)
def test_cached_decode_equals_full_recompute(overrides):
    model = make_model(index_topk=4, **overrides)
    ids = random_ids(2, 8)
    with torch.no_grad():
        full = model(ids, use_cache=False).logits
        prefix = model(ids[:, :5], use_cache=True)
        cache = prefix.cache
        assert isinstance(cache, DSACache) and cache.get_seq_length() == 5
        steps = [prefix.logits]
        for t in range(5, 8):
            step = model(ids[:, t : t + 1], cache=cache, use_cache=True)
            steps.append(step.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)
    cached = generate_tokens(model, ids, 8, use_cache=True)
    recomputed = generate_tokens(model, ids, 8, use_cache=False)
    assert torch.equal(cached, recomputed)
    generated = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert torch.equal(generated, cached)


def test_generate_feeds_one_token_per_step_with_the_cache():
    model = make_model(index_pattern="FSFS")
    lengths: list[int] = []
    hook = model.register_forward_pre_hook(
        lambda _m, args, kwargs: lengths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    try:
        model.generate(random_ids(1, 6), max_new_tokens=4, do_sample=False)
    finally:
        hook.remove()
    assert lengths == [6, 1, 1, 1]


@pytest.mark.parametrize("overrides", [{"sparse": True}, {"sparse": False}])
def test_left_padded_batch_matches_unpadded_rows(overrides):
    model = make_model(index_topk=4, **overrides)
    long, short = random_ids(1, 9, seed=2), random_ids(1, 5, seed=3)
    pad = torch.zeros(1, 4, dtype=torch.long)
    batch = torch.cat((long, torch.cat((pad, short), dim=1)))
    mask = torch.ones_like(batch)
    mask[1, :4] = 0
    with torch.no_grad():
        padded = model(batch, attention_mask=mask).logits
        alone = model(short).logits
    torch.testing.assert_close(padded[1, 4:], alone[0], atol=1e-5, rtol=0)
    out = model.generate(batch, attention_mask=mask, max_new_tokens=6, do_sample=False)
    ref = generate_tokens(model, short, 6)
    assert torch.equal(out[1, 4:], ref[0])
    own = generate_tokens(model, batch, 6, attention_mask=mask)
    assert torch.equal(own, out)


# --- save / load ----------------------------------------------------------------------------


def test_build_save_and_auto_load_round_trip(tmp_path):
    path = build_dsa_model(
        tmp_path / "m", CORPUS, size="nano", vocab_size=280, index_pattern="FS", seed=3
    )
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    assert isinstance(model, DSAForCausalLM)
    assert model.config.index_pattern == "FS" and model.config.vocab_size == len(tok)
    assert model.generation_config.eos_token_id == tok.eos_token_id
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    ids = torch.tensor([tok("What is 3 + 4? 7")["input_ids"]])
    with torch.no_grad():
        logits = model(ids).logits
    model.save_pretrained(tmp_path / "again")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "again").eval()
    with torch.no_grad():
        assert torch.equal(logits, reloaded(ids).logits)
    text = tok.decode(model.generate(ids, max_new_tokens=3, do_sample=False)[0])
    assert text.startswith("What is 3 + 4? 7")


# --- training hooks -------------------------------------------------------------------------


def test_dense_warmup_trains_only_the_indexers_and_lowers_the_kl():
    model = make_model(sparse=False, seed=4).train()
    frozen = {
        name: p.detach().clone() for name, p in model.named_parameters() if ".indexer." not in name
    }
    params = freeze_non_indexer(model)
    assert {id(p) for p in params} == {id(p) for p in indexer_parameters(model)}
    opt = torch.optim.Adam(params, lr=3e-2)
    ids = random_ids(4, 16, seed=5)
    losses = []
    for _ in range(15):
        out = model(ids, return_indexer_scores=True)
        loss = indexer_losses(out, stage="dense").total
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), name


def test_sparse_stage_gradients_are_separated():
    """LM loss trains the main model only, the indexer KL trains the indexers only."""
    model = make_model(index_topk=4, seed=6).train()
    ids = random_ids(2, 12, seed=7)
    out = model(ids, labels=ids, return_indexer_scores=True)
    ix = indexer_losses(out, stage="sparse")
    assert set(ix.per_layer) == {0, 1, 2, 3}
    ix_ids = {id(p) for p in indexer_parameters(model)}
    ix.total.backward(retain_graph=True)
    for p in model.parameters():
        if id(p) not in ix_ids:
            assert p.grad is None or float(p.grad.abs().max()) == 0.0
    assert any(
        p.grad is not None and float(p.grad.abs().max()) > 0 for p in indexer_parameters(model)
    )
    model.zero_grad(set_to_none=True)
    out.loss.backward()
    for p in indexer_parameters(model):
        assert p.grad is None or float(p.grad.abs().max()) == 0.0


def test_indexer_losses_distil_over_served_layers():
    model = make_model(index_pattern="FSFS", index_topk=5, seed=8)
    out = model(random_ids(2, 10, seed=9), return_indexer_scores=True)
    att, scores, sel = out.attentions, out.indexer_scores, out.selections
    dense = indexer_losses(out, "dense")
    assert set(dense.per_layer) == {0, 2}
    expected = multi_layer_distillation_loss(scores[0], [att[0], att[1]])
    torch.testing.assert_close(dense.per_layer[0], expected)
    own = indexer_losses(out, "dense", distill=False)
    torch.testing.assert_close(own.per_layer[2], indexer_kl_loss(scores[2], att[2]))
    sparse = indexer_losses(out, "sparse")
    mask = selection_mask(sel[2][0], 10, sel[2][1])
    expected = multi_layer_distillation_loss(scores[2], [att[2], att[3]], mask)
    torch.testing.assert_close(sparse.per_layer[2], expected)
    torch.testing.assert_close(sparse.total, (sparse.per_layer[0] + sparse.per_layer[2]) / 2)
    with pytest.raises(ValueError, match="return_indexer_scores"):
        indexer_losses(model(random_ids(1, 4)), "dense")


def test_fp8_indexer_selects_nearly_the_same_keys():
    model = make_model(index_topk=8, seed=10)
    fp8 = same_weights(model, index_topk=8, fp8_indexer=True)
    ids = random_ids(2, 32, seed=11)
    with torch.no_grad():
        a = model(ids, return_indexer_scores=True).selections[0]
        b = fp8(ids, return_indexer_scores=True).selections[0]
    assert topk_overlap(a[0], b[0], a[1], b[1]) > 0.8


def test_beam_search_with_the_cache_equals_without():
    model = make_model(index_pattern="FSFS", index_topk=4, seed=12)
    ids = random_ids(2, 6, seed=13)
    kwargs = dict(max_new_tokens=5, num_beams=3, do_sample=False, early_stopping=False)
    with_cache = model.generate(ids, use_cache=True, **kwargs)
    without = model.generate(ids, use_cache=False, **kwargs)
    assert torch.equal(with_cache, without)


def test_long_prompts_scored_in_query_chunks_match_one_chunk():
    model = make_model(seed=6)
    ids = random_ids(2, 11, seed=4)
    whole = model(ids, sparse=True, index_pattern="FSFS").logits
    for layer in model.model.layers:
        layer.self_attn.indexer.query_chunk = 3
    chunked = model(ids, sparse=True, index_pattern="FSFS").logits
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)
