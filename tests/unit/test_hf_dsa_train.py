"""Training and evaluating transformers' DSA models (`hf_train`), checked against references
computed here: transformers' own LM loss, a hand-written KL over the causal keys (or over the
keys the indexer selected), a model built with a different top-k, gradients of each loss taken
alone, and Jaccard overlaps counted with Python sets."""

import copy
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from posttrain.attention import hf_train
from posttrain.attention.hf_dsa import (
    apply_pattern,
    attention_probs,
    capture_topk,
    count_indexer_calls,
    index_scores,
    indexer_inputs,
    pattern_of,
)
from posttrain.attention.train import DSATrainConfig
from posttrain.runs import Run, read_metrics

DATA = Path(__file__).resolve().parents[1] / "data" / "dsa"
SEQ = 20
TOPK = 8  # the real-shape configs' index_topk
SMALL = {"num_hidden_layers": 4, "first_k_dense_replace": 1, "n_routed_experts": 4}


def model_of(name: str, tmp_path: Path, **overrides) -> torch.nn.Module:
    """A float32 4-layer model of a real-shape config, every layer with its own indexer."""
    fields = json.loads((DATA / f"{name}_config.json").read_text()) | SMALL | overrides
    if name == "glm5":
        fields["index_topk_freq"] = 1  # every layer full
    else:
        fields |= {"n_group": 2, "topk_group": 1, "num_experts_per_tok": 2}
    folder = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(fields))
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(folder)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


def tokens(batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randint(3, 250, (batch, SEQ), generator=torch.Generator().manual_seed(seed))


def settings(**kw) -> DSATrainConfig:
    base = dict(block_size=SEQ, batch_size=2, sparse_steps=0, progress=False, lr_warmup_fraction=0)
    return DSATrainConfig(**(base | kw))


def snapshot(model, indexers: bool) -> dict[str, torch.Tensor]:
    return {
        k: v.detach().clone() for k, v in model.named_parameters() if (".indexer." in k) == indexers
    }


def changed(before: dict, model) -> set[str]:
    now = dict(model.named_parameters())
    return {k for k, v in before.items() if not torch.equal(v, now[k])}


def hand_kl(scores: torch.Tensor, probs: list[torch.Tensor]) -> torch.Tensor:
    """IndexCache's loss by hand: the mean over the given layers of the mean over (batch,
    query) of KL(p || softmax(scores)) over the causal keys, p a layer's head-summed,
    L1-normalised attention."""
    causal = torch.ones(SEQ, SEQ, dtype=torch.bool).tril()
    log_q = scores.masked_fill(~causal, float("-inf")).log_softmax(-1)
    kls = []
    for a in probs:
        p = a.sum(1) / a.sum(1).sum(-1, keepdim=True)
        terms = torch.where(causal & (p > 0), p * (p.clamp_min(1e-30).log() - log_q), 0.0)
        kls.append(terms.sum(-1).mean())
    return torch.stack(kls).mean()


def test_pretraining_lowers_the_lm_loss_and_leaves_the_indexers(tmp_path):
    model = model_of("glm5", tmp_path)
    ids = tokens()
    before_loss = hf_train.heldout_loss(model, ids, dense=True)
    indexers = snapshot(model, indexers=True)
    history = hf_train.pretrain_lm(model, ids, settings(pretrain_steps=8, lr=1e-2))
    assert len(history) == 8 and history[0]["stage"] == "pretrain"
    assert hf_train.heldout_loss(model, ids, dense=True) < before_loss - 0.5
    assert not changed(indexers, model)
    assert not model.training and all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name", ["glm5", "deepseek_v32"])
def test_warmup_trains_only_the_indexers_towards_the_dense_attention(tmp_path, name):
    # A wide initialisation makes the attention peaked, so there is something to learn.
    model = model_of(name, tmp_path, initializer_range=0.3)
    ids = tokens()
    others = snapshot(model, indexers=False)
    indexers = snapshot(model, indexers=True)
    kl_before = hf_train.indexer_kl(model, ids)
    history = hf_train.indexer_warmup(model, ids, settings(warmup_steps=6, indexer_lr=1e-2))
    assert {f"warmup/kl_layer{i}" for i in range(4)} <= set(history[-1])
    assert not changed(others, model)
    assert changed(indexers, model)
    assert hf_train.indexer_kl(model, ids) < 0.9 * kl_before


def test_indexer_losses_are_kl_to_the_averaged_dense_attention(tmp_path):
    model = model_of("glm5", tmp_path, initializer_range=0.3)
    apply_pattern(model, "FSFS")
    ids = tokens()
    total, per_layer = hf_train.indexer_losses(model, ids)
    assert sorted(per_layer) == [0, 2]
    dense = attention_probs(model, ids, dense=True)
    for layer, served in ((0, [0, 1]), (2, [2, 3])):
        scores = _dense_scores(model, layer, ids)
        own = hf_train.indexer_losses(model, ids, distill=False)[1][layer]
        want = hand_kl(scores, [dense[i] for i in served])
        torch.testing.assert_close(per_layer[layer], want)
        torch.testing.assert_close(own, hand_kl(scores, [dense[layer]]))
        assert not torch.allclose(own, want)  # the served layers' attention matters
    torch.testing.assert_close(total, (per_layer[0] + per_layer[2]) / 2)


def _dense_scores(model, layer: int, ids: torch.Tensor) -> torch.Tensor:
    """The layer's indexer scores in a pass whose attention is dense: the module itself with
    top-k = every key, read from its own top-k order (no recomputation)."""
    for attn in (a for a in model.model.layers if a.self_attn.indexer is not None):
        attn.self_attn.indexer.index_topk = SEQ
    try:
        inputs = indexer_inputs(model, ids)
    finally:
        for attn in (a for a in model.model.layers if a.self_attn.indexer is not None):
            attn.self_attn.indexer.index_topk = TOPK
    return index_scores(model, layer, inputs=inputs[layer]).detach()


def test_distillation_gradient_equals_one_kl_to_the_averaged_target(tmp_path):
    model = model_of("glm5", tmp_path, initializer_range=0.3)
    apply_pattern(model, "FSSF")
    ids = tokens()
    indexer = model.model.layers[0].self_attn.indexer
    _, per_layer = hf_train.indexer_losses(model, ids)
    grads = torch.autograd.grad(per_layer[0], list(indexer.parameters()))
    # One KL to the averaged target of the three layers it serves, computed by hand.
    dense = attention_probs(model, ids, dense=True)
    target = torch.stack([a.sum(1) / a.sum(1).sum(-1, keepdim=True) for a in dense.values()])
    target = target[:3].mean(0)
    for a in model.model.layers:
        if a.self_attn.indexer is not None:
            a.self_attn.indexer.index_topk = SEQ
    scores = index_scores(model, 0, inputs=indexer_inputs(model, ids)[0])
    causal = torch.ones(SEQ, SEQ, dtype=torch.bool).tril()
    log_q = scores.masked_fill(~causal, float("-inf")).log_softmax(-1)
    single = -(torch.where(causal, target * log_q, 0.0)).sum(-1).mean()  # + a constant
    reference = torch.autograd.grad(single, list(indexer.parameters()))
    for got, want in zip(grads, reference, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)


def test_heldout_and_calibration_losses_match_transformers_loss(tmp_path):
    model = model_of("glm5", tmp_path)
    ids = tokens(batch=3)

    def lm_loss(m) -> float:
        with torch.no_grad():
            return float(m(input_ids=ids, labels=ids, use_cache=False).loss)

    assert hf_train.heldout_loss(model, ids, batch_size=2) == pytest.approx(lm_loss(model))
    # Dense: the same weights built with top-k covering every key.
    dense = model_of("glm5", tmp_path, index_topk=SEQ)
    dense_loss = hf_train.heldout_loss(model, ids, dense=True)
    assert dense_loss == pytest.approx(lm_loss(dense), rel=1e-5)
    assert dense_loss != pytest.approx(lm_loss(model), rel=1e-5)
    # A pattern for the call only, against a copy that keeps it for good.
    shared = lm_loss(apply_pattern(copy.deepcopy(model), "FSSS"))
    assert hf_train.heldout_loss(model, ids, "FSSS") == pytest.approx(shared, rel=1e-5)
    assert pattern_of(model) == "FFFF"
    loss_fn = hf_train.calibration_loss_fn(model, ids)
    assert loss_fn("fsss") == pytest.approx(shared, rel=1e-5)
    with count_indexer_calls(model) as calls:
        assert loss_fn("FSSS") == loss_fn("fsss")  # memoised: no forward
    assert calls.total == 0


def test_overlap_matrix_counts_shared_top_k_keys(tmp_path):
    model = model_of("glm5", tmp_path)
    ids = tokens()
    matrix = hf_train.overlap_matrix(model, ids)
    chosen = capture_topk(model, ids)
    for i, j in ((0, 1), (1, 3)):
        jaccards = []
        for b in range(2):
            for q in range(TOPK, SEQ):  # queries that see more than k keys
                a, c = set(chosen[i][b, q].tolist()), set(chosen[j][b, q].tolist())
                jaccards.append(len(a & c) / len(a | c))
        assert matrix[i, j] == pytest.approx(sum(jaccards) / len(jaccards))
        assert matrix[i, j] == matrix[j, i] and matrix[i, i] == 1.0
    with pytest.raises(ValueError, match="every layer"):
        hf_train.overlap_matrix(apply_pattern(model, "FFSF"), ids)
    with pytest.raises(ValueError, match="more than top"):
        hf_train.overlap_matrix(model_of("glm5", tmp_path), ids[:, :TOPK])


def test_sparse_stage_lowers_the_lm_loss_and_trains_model_and_indexers(tmp_path):
    model = model_of("glm5", tmp_path, initializer_range=0.3)
    ids = tokens()
    before = hf_train.heldout_loss(model, ids)
    others, indexers = snapshot(model, indexers=False), snapshot(model, indexers=True)
    cfg = settings(sparse_steps=6, sparse_lr=1e-2, indexer_lr=1e-2, eval_every=3)
    history = hf_train.sparse_stage(model, ids, cfg, eval_blocks=ids)
    assert hf_train.heldout_loss(model, ids) < before - 1.0  # the same batch every step
    assert {"sparse/lm_loss", "sparse/indexer_kl", "sparse/kl_layer3"} <= set(history[0])
    assert history[-1]["sparse/indexer_kl"] < history[0]["sparse/indexer_kl"]
    assert [r["step"] for r in history if "sparse/heldout_loss" in r] == [3, 6]
    assert changed(others, model) and changed(indexers, model)
    assert not model.training and all(p.requires_grad for p in model.parameters())


def test_sparse_losses_train_disjoint_parameters(tmp_path):
    model = model_of("glm5", tmp_path, initializer_range=0.3)
    apply_pattern(model, "FSFS")
    losses = hf_train.sparse_losses(model, tokens())
    names, params = zip(*model.named_parameters(), strict=True)
    for loss, trains_indexers in ((losses.lm, False), (losses.indexer, True)):
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        reached = {n for n, g in zip(names, grads, strict=True) if g is not None and g.any()}
        indexer = {n for n in names if ".indexer." in n}
        assert reached == (indexer if trains_indexers else set(names) - indexer)


def test_sparse_kl_is_restricted_to_the_selected_keys(tmp_path):
    model = model_of("glm5", tmp_path, initializer_range=0.3)
    apply_pattern(model, "FSFS")
    ids = tokens()
    losses = hf_train.sparse_losses(model, ids)
    # References from separate no-grad passes: the indexers' top-k, the sparse attention.
    causal = torch.ones(SEQ, SEQ, dtype=torch.bool).tril()
    probs = attention_probs(model, ids, dense=False)
    for layer, served in ((0, [0, 1]), (2, [2, 3])):
        topk = capture_topk(model, ids)[layer].long()
        chosen = torch.zeros(2, SEQ, SEQ, dtype=torch.bool).scatter_(-1, topk, True) & causal
        assert torch.equal(losses.selected[layer], chosen)
        targets = [probs[i].sum(1) / probs[i].sum(1).sum(-1, keepdim=True) for i in served]
        for p in targets:
            assert p.masked_select(~chosen).abs().max() == 0  # no mass outside the selection
        scores = index_scores(model, layer, ids).detach()
        want = _kl(scores.masked_fill(~chosen, float("-inf")), targets)
        torch.testing.assert_close(losses.per_layer[layer], want)
        unrestricted = _kl(scores.masked_fill(~causal, float("-inf")), targets)
        assert not torch.allclose(want, unrestricted)  # the restriction matters


def _kl(masked_scores: torch.Tensor, targets: list[torch.Tensor]) -> torch.Tensor:
    log_q = masked_scores.log_softmax(-1)
    kls = [torch.where(p > 0, p * (p.clamp_min(1e-30).log() - log_q), 0.0) for p in targets]
    return torch.stack([k.sum(-1).mean() for k in kls]).mean()


def test_train_dsa_runs_the_three_stages_with_steps_numbered_on(tmp_path):
    model = model_of("glm5", tmp_path)
    cfg = settings(pretrain_steps=2, warmup_steps=2, sparse_steps=2, index_pattern="FSFS")
    with Run(tmp_path / "run") as run:
        histories = hf_train.train_dsa(model, tokens(), cfg, run)
    assert list(histories) == ["pretrain", "warmup", "sparse"]
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == list(range(1, 7))
    assert pattern_of(model) == "FSFS" and "sparse/kl_layer1" not in histories["sparse"][0]
    with pytest.raises(ValueError, match="block_size"):
        hf_train.sparse_stage(model, tokens()[:, :10], cfg)
