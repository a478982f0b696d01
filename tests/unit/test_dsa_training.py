"""DSA training stages on a nano model: pre-training, indexer warm-up, sparse stage, IndexCache."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoTokenizer

from posttrain.attention.indexcache import greedy_layer_search
from posttrain.attention.model import DSAForCausalLM, build_dsa_model, indexer_parameters
from posttrain.attention.train import (
    DSATrainConfig,
    calibration_loss_fn,
    heldout_loss,
    indexer_kl,
    indexer_warmup,
    pretrain_lm,
    recall_accuracy,
    sparse_stage,
    train_dsa,
)
from posttrain.data.code_corpus import CodeCorpusConfig, build_lm_corpus, token_blocks
from posttrain.runs import Run, read_metrics

BLOCK = 32


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    corpus = build_lm_corpus(
        CodeCorpusConfig(
            n_files=8,
            max_chars=2500,
            heldout_fraction=0.25,
            seq_tokens=64,
            n_pairs=3,
            n_recall_heldout=3,
            seed=0,
        )
    )
    root = tmp_path_factory.mktemp("dsa_train")
    two = build_dsa_model(root / "nano2", corpus["train"], size="nano", vocab_size=300)
    four = build_dsa_model(
        root / "nano4", corpus["train"], size="nano", vocab_size=300, num_hidden_layers=4
    )
    tok = AutoTokenizer.from_pretrained(two)
    blocks = token_blocks(tok, corpus["train"], BLOCK)
    heldout = token_blocks(tok, corpus["heldout"], BLOCK)[:16]
    return {
        "corpus": corpus,
        "two": two,
        "four": four,
        "tok": tok,
        "blocks": blocks,
        "heldout": heldout,
    }


def load(path) -> DSAForCausalLM:
    return DSAForCausalLM.from_pretrained(path).eval()


def config(**overrides) -> DSATrainConfig:
    fields = dict(
        pretrain_steps=25,
        warmup_steps=15,
        sparse_steps=4,
        lr=1e-2,
        indexer_lr=1e-2,
        batch_size=8,
        block_size=BLOCK,
        seed=0,
        progress=False,
    )
    fields.update(overrides)
    return DSATrainConfig(**fields)


def test_pretrain_reduces_lm_loss_and_is_deterministic(setup, tmp_path):
    blocks = setup["blocks"]
    model = load(setup["two"])
    before = heldout_loss(model, blocks[:32], sparse=False)
    with Run(tmp_path / "run") as run:
        history = pretrain_lm(model, blocks, config(eval_every=10), run=run, eval_blocks=blocks[:8])
    after = heldout_loss(model, blocks[:32], sparse=False)
    assert after < before - 0.5
    assert len(history) == 25 and all(math.isfinite(r["pretrain/loss"]) for r in history)
    assert sum(1 for r in history if "pretrain/heldout_loss" in r) == 3  # steps 10, 20, 25
    records = read_metrics(tmp_path / "run")
    assert [r["step"] for r in records] == list(range(1, 26))
    assert all(p.requires_grad for p in model.parameters()) and not model.training
    again = load(setup["two"])
    pretrain_lm(again, blocks, config())
    for a, b in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.fixture(scope="module")
def pretrained(setup, tmp_path_factory):
    model = load(setup["two"])
    pretrain_lm(model, setup["blocks"], config(pretrain_steps=40))
    path = tmp_path_factory.mktemp("pretrained") / "model"
    model.save_pretrained(path)
    return path


def test_warmup_reduces_indexer_kl_and_touches_only_indexers(setup, pretrained):
    model = load(pretrained)
    heldout = setup["heldout"]
    before = indexer_kl(model, heldout)
    indexer_ids = {id(p) for p in indexer_parameters(model)}
    frozen = {
        n: p.detach().clone() for n, p in model.named_parameters() if id(p) not in indexer_ids
    }
    index_before = [p.detach().clone() for p in indexer_parameters(model)]
    history = indexer_warmup(model, setup["blocks"], config())
    after = indexer_kl(model, heldout)
    assert after < 0.9 * before
    assert len(history) == 15 and {"warmup/kl", "warmup/kl_layer0", "warmup/kl_layer1"} <= set(
        history[0]
    )
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, frozen[name]), name
    assert any(
        not torch.equal(a, b) for a, b in zip(indexer_parameters(model), index_before, strict=True)
    )
    assert all(p.requires_grad for p in model.parameters())


def test_sparse_stage_runs_with_finite_losses(setup, pretrained):
    model = load(pretrained)
    cfg = config(eval_every=2)
    history = sparse_stage(model, setup["blocks"], cfg, eval_blocks=setup["heldout"][:4])
    assert len(history) == 4
    for r in history:
        for key in ("sparse/loss", "sparse/lm_loss", "sparse/indexer_kl"):
            assert math.isfinite(r[key]) and r[key] >= 0
        assert r["sparse/loss"] >= r["sparse/lm_loss"]
    assert math.isfinite(history[-1]["sparse/heldout_loss"])
    recall = recall_accuracy(model, setup["tok"], setup["corpus"]["recall_heldout"])
    assert math.isfinite(recall["recall_loss"])
    assert 0.0 <= recall["recall_token_accuracy"] <= 1.0 and 0.0 <= recall["recall_exact"] <= 1.0


def test_sparse_stage_with_index_cache_distillation(setup, tmp_path):
    model = load(setup["four"])
    cfg = config(pretrain_steps=3, warmup_steps=3, sparse_steps=3, index_pattern="FSFS")
    with Run(tmp_path / "run") as run:
        histories = train_dsa(model, setup["blocks"], cfg, run=run)
    assert set(histories) == {"pretrain", "warmup", "sparse"}
    assert set(histories["warmup"][0]) >= {"warmup/kl_layer0", "warmup/kl_layer2"}
    assert "warmup/kl_layer1" not in histories["warmup"][0]
    assert all(math.isfinite(r["sparse/indexer_kl"]) for r in histories["sparse"])
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == list(range(1, 10))
    assert model.config.index_pattern == "FFFF"  # the stage's pattern is per forward only


def test_sparse_equals_dense_when_topk_covers_the_block(setup, pretrained):
    model = load(pretrained)
    model.config.index_topk = BLOCK
    heldout = setup["heldout"]
    dense = heldout_loss(model, heldout, sparse=False)
    sparse = heldout_loss(model, heldout, sparse=True)
    assert sparse == pytest.approx(dense, abs=1e-4)
    model.config.index_topk = 4
    assert abs(heldout_loss(model, heldout, sparse=True) - dense) > 1e-3


def test_calibration_loss_drives_greedy_layer_search(setup):
    model = load(setup["four"])
    loss_fn = calibration_loss_fn(model, setup["heldout"][:6], batch_size=4)
    history = greedy_layer_search(4, loss_fn)
    assert [n for n, _, _ in history] == [4, 3, 2, 1]
    assert history[0][1] == "FFFF" and history[-1][1] == "FSSS"
    for n_full, pattern, loss in history:
        assert pattern.count("F") == n_full and math.isfinite(loss)
        assert loss == pytest.approx(heldout_loss(model, setup["heldout"][:6], True, pattern, 4))
    assert model.config.index_pattern == "FFFF"


def test_stages_reject_blocks_of_the_wrong_length(setup):
    model = load(setup["two"])
    with pytest.raises(ValueError, match="block_size"):
        pretrain_lm(model, setup["blocks"][:, :16], config())
