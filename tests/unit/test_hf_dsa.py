"""The IndexCache adapter over transformers' DSA models, checked against the models themselves:
their own indexer outputs, their own attention paths and a save/load round trip."""

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from posttrain.attention import hf_dsa
from posttrain.attention.hf_dsa import (
    apply_pattern,
    attention_probs,
    capture_topk,
    count_indexer_calls,
    dsa_layers,
    index_scores,
    indexer_inputs,
    pattern_of,
    using_pattern,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "dsa"
TOPK = 8  # the real-shape configs' index_topk
SEQ = 24


def model_of(name: str, tmp_path: Path, **overrides):
    """A float32 model of a real-shape config (`glm5`: 8 layers FFFSSSFS; `deepseek_v32`: 5)."""
    published = json.loads((DATA / f"{name}_config.json").read_text())
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(published | overrides))
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(folder)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


def tokens(vocab: int = 250, batch: int = 2) -> torch.Tensor:
    return torch.randint(3, vocab, (batch, SEQ), generator=torch.Generator().manual_seed(1))


def test_detects_dsa_models_and_reads_patterns(tmp_path):
    glm = model_of("glm5", tmp_path)
    assert hf_dsa.is_dsa_model(glm) and len(dsa_layers(glm)) == 8
    assert pattern_of(glm) == pattern_of(glm.config) == "FFFSSSFS"
    qwen = AutoModelForCausalLM.from_config(
        AutoConfig.for_model(
            "qwen2",
            hidden_size=32,
            num_hidden_layers=1,
            vocab_size=64,
            num_attention_heads=2,
            num_key_value_heads=1,
            intermediate_size=64,
        )
    )
    assert not hf_dsa.is_dsa_model(qwen)
    with pytest.raises(ValueError, match="not a DSA model"):
        dsa_layers(qwen)


@pytest.mark.parametrize(("pattern", "calls"), [("FSFSFSFS", 4), ("FFFFFFFF", 8), ("FSSSSSSS", 1)])
def test_pattern_round_trips_and_decides_indexer_calls(tmp_path, pattern, calls):
    model = model_of("glm5", tmp_path)
    ids = tokens()
    apply_pattern(model, pattern)
    assert pattern_of(model) == pattern_of(model.config) == pattern
    with torch.no_grad(), count_indexer_calls(model) as counted:
        logits = model(ids).logits
    assert counted.total == calls
    assert sorted(counted.per_layer) == [i for i, c in enumerate(pattern) if c == "F"]
    model.save_pretrained(tmp_path / "saved")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "saved").eval()
    assert pattern_of(reloaded) == pattern
    with torch.no_grad(), count_indexer_calls(reloaded) as again:
        assert torch.equal(reloaded(ids).logits, logits)
    assert again.total == calls


def test_reenabled_indexer_starts_from_the_one_it_was_sharing(tmp_path):
    model = model_of("glm5", tmp_path)  # FFFSSSFS
    wk = [a.indexer.wk.weight.detach().clone() if a.indexer else None for a in dsa_layers(model)]
    apply_pattern(model, "FSFSFSFF")  # layer 4 reused layer 2 (now shared), 7 reused 6
    for layer, source in ((4, 2), (7, 6)):
        fresh = dsa_layers(model)[layer].indexer
        assert fresh.layer_idx == layer and fresh.config is model.config
        assert torch.equal(fresh.wk.weight, wk[source])
    assert fresh is not dsa_layers(model)[6].indexer
    # A pattern applied to a config builds that layout directly.
    config = apply_pattern(AutoConfig.from_pretrained(tmp_path / "glm5"), "FSFSFSFS")
    assert pattern_of(AutoModelForCausalLM.from_config(config)) == "FSFSFSFS"


def test_using_pattern_gives_the_original_indexers_back(tmp_path):
    model = model_of("glm5", tmp_path)  # FFFSSSFS
    ids = tokens()
    before = [a.indexer for a in dsa_layers(model)]
    with torch.no_grad():
        logits = model(ids).logits
    for pattern, calls in (("FSSSSSSS", 1), ("FFFFFFFF", 8), ("FSFSFSFS", 4)):
        with using_pattern(model, pattern), count_indexer_calls(model) as counted:
            assert pattern_of(model) == pattern_of(model.config) == pattern
            with torch.no_grad():
                changed = model(ids).logits
        assert counted.total == calls and not torch.equal(changed, logits)
        assert pattern_of(model) == pattern_of(model.config) == "FFFSSSFS"
        assert all(a.indexer is b for a, b in zip(dsa_layers(model), before, strict=True))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, logits)


def test_bad_patterns_and_deepseek_sharing_are_refused(tmp_path):
    glm = model_of("glm5", tmp_path)
    for bad in ("SFFFFFFF", "FSFS", "FXFFFFFF"):
        with pytest.raises(ValueError, match="pattern"):
            apply_pattern(glm, bad)
    assert pattern_of(glm) == "FFFSSSFS"
    ds = model_of("deepseek_v32", tmp_path)
    with pytest.raises(ValueError, match="no cross-layer top-k sharing"):
        apply_pattern(ds, "FSFSF")
    assert apply_pattern(ds, "FFFFF") is ds and pattern_of(ds) == "FFFFF"


@pytest.mark.parametrize("name", ["glm5", "deepseek_v32"])
def test_recomputed_scores_pick_the_modules_own_topk_and_carry_gradients(tmp_path, name):
    model = model_of(name, tmp_path)
    ids = tokens()
    pad = 3  # the second row is left-padded
    mask = torch.ones_like(ids)
    mask[1, :pad] = 0
    own = capture_topk(model, ids, mask)
    inputs = indexer_inputs(model, ids, mask)
    assert sorted(own) == sorted(inputs) == [i for i, c in enumerate(pattern_of(model)) if c == "F"]
    for layer in own:
        scores = index_scores(model, layer, inputs=inputs[layer])
        assert scores.shape == (2, SEQ, SEQ) and scores.requires_grad
        assert torch.isinf(scores[0, 0, 1:]).all()  # causal: the first query sees one key
        mine = scores.topk(TOPK, dim=-1).indices.sort(-1).values
        theirs = own[layer].long().sort(-1).values
        assert torch.isinf(scores[1, -1, :pad]).all()  # padding is never a key
        # Queries with fewer than k visible keys also pick masked keys, in any order.
        assert torch.equal(mine[0, TOPK - 1 :], theirs[0, TOPK - 1 :])
        assert torch.equal(mine[1, pad + TOPK - 1 :], theirs[1, pad + TOPK - 1 :])
    indexer = dsa_layers(model)[0].indexer
    index_scores(model, 0, ids).logsumexp(-1).nan_to_num(0.0).sum().backward()
    for part in (indexer.wq_b, indexer.wk, indexer.weights_proj):
        assert part.weight.grad is not None and part.weight.grad.abs().sum() > 0


def test_scores_follow_each_architectures_rope(tmp_path):
    """GLM's indexer rotates interleaved pairs, DeepSeek's the two halves: swapping the two
    RoPE variants changes the scores, so the adapter must pick the model's own."""
    model = model_of("deepseek_v32", tmp_path)
    ids = tokens()
    inputs = indexer_inputs(model, ids)[0]
    right = index_scores(model, 0, inputs=inputs)
    model.config.model_type = "glm_moe_dsa"
    try:
        wrong = index_scores(model, 0, inputs=inputs)
    finally:
        model.config.model_type = "deepseek_v32"
    finite = torch.isfinite(right)
    assert not torch.allclose(right[finite], wrong[finite])


def test_capture_gives_full_layers_and_shared_layers_reuse_them(tmp_path):
    model = model_of("glm5", tmp_path)  # FFFSSSFS
    ids = tokens()
    full = capture_topk(model, ids)
    assert sorted(full) == [0, 1, 2, 6]
    assert all(t.shape == (2, SEQ, TOPK) for t in full.values())
    every = capture_topk(model, ids, all_layers=True)
    assert sorted(every) == list(range(8))
    for shared, source in ((3, 2), (4, 2), (5, 2), (7, 6)):
        assert torch.equal(every[shared], full[source])
    assert not torch.equal(full[0], full[1])  # layers do choose differently


def test_attention_probs_dense_and_sparse(tmp_path):
    model = model_of("glm5", tmp_path)
    ids = tokens()
    chosen = capture_topk(model, ids, all_layers=True)
    dense = attention_probs(model, ids)
    sparse = attention_probs(model, ids, dense=False)
    assert model.config._attn_implementation == "sdpa"  # restored
    assert all(i.index_topk == TOPK for i in (a.indexer for a in dsa_layers(model)) if i)
    assert sorted(dense) == list(range(8))
    causal = torch.ones(SEQ, SEQ).tril().bool()
    for layer in range(8):
        d, s = dense[layer], sparse[layer]
        assert d.shape == (2, 4, SEQ, SEQ)
        torch.testing.assert_close(d.sum(-1), torch.ones(2, 4, SEQ))
        torch.testing.assert_close(s.sum(-1), torch.ones(2, 4, SEQ))
        assert (d[..., ~causal] == 0).all() and (d[..., causal] > 0).all()
        kept = torch.zeros(2, SEQ, SEQ, dtype=torch.bool).scatter(-1, chosen[layer].long(), True)
        assert (s.masked_select(~(kept & causal).unsqueeze(1)) == 0).all()
        # Where a query sees no more than k keys, sparse attention is the dense one.
        torch.testing.assert_close(s[:, :, :TOPK], d[:, :, :TOPK])
        assert not torch.allclose(s[:, :, TOPK:], d[:, :, TOPK:])
