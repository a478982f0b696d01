"""DeepSeek Sparse Attention pieces against slow loop references, on tiny CPU tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from posttrain.attention.dsa import (
    FP8_E4M3_MAX,
    HAS_TORCH_FP8,
    LightningIndexer,
    attention_target,
    causal_attention_probs,
    e4m3_round_emulated,
    fp8_quant_dequant,
    indexer_kl_loss,
    masked_attention_probs,
    rotary_embedding,
    selection_mask,
    sparse_attention,
    sparse_attention_gathered,
    sparse_attention_masked,
    topk_indices,
    topk_overlap,
)

NEG_INF = float("-inf")


def close(actual, expected, tol=1e-5):
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol)


def make_indexer(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(hidden_size=8, n_index_heads=3, index_head_dim=4, rope_dim=2, q_dim=6)
    cfg.update(kw)
    idx = LightningIndexer(**cfg)
    with torch.no_grad():  # non-trivial LayerNorm affine so the test sees it
        idx.k_norm.weight.uniform_(0.5, 1.5)
        idx.k_norm.bias.uniform_(-0.2, 0.2)
    return idx


def random_causal_scores(b, lq, lk, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(b, lq, lk, generator=g)
    offset = lk - lq
    t = torch.arange(lq)[:, None]
    return s.masked_fill(torch.arange(lk)[None] > t + offset, NEG_INF)


def qkv(b=2, h=3, lq=7, lk=7, d=4, seed=1, h_kv=None):
    g = torch.Generator().manual_seed(seed)
    h_kv = h if h_kv is None else h_kv
    return (
        torch.randn(b, h, lq, d, generator=g),
        torch.randn(b, h_kv, lk, d, generator=g),
        torch.randn(b, h_kv, lk, d, generator=g),
    )


# --- rotary ---------------------------------------------------------------------------------


def slow_rope(vec, pos, r, base=10000.0):
    out = vec.clone()
    half = r // 2
    for i in range(half):
        angle = pos * base ** (-i / half)
        a, b = float(vec[i]), float(vec[i + half])
        out[i] = a * math.cos(angle) - b * math.sin(angle)
        out[i + half] = b * math.cos(angle) + a * math.sin(angle)
    return out


def test_rotary_matches_loop_and_is_relative():
    torch.manual_seed(0)
    x = torch.randn(1, 5, 2, 6)
    pos = torch.arange(5) + 3
    out = rotary_embedding(x, pos, rope_dim=4)
    for t in range(5):
        for h in range(2):
            close(out[0, t, h], slow_rope(x[0, t, h], int(pos[t]), 4))
    close(out[..., 4:], x[..., 4:])  # pass-through dims untouched
    # q.k after rotation depends only on the position difference
    q, k = torch.randn(1, 1, 8), torch.randn(1, 1, 8)
    dots = [
        (rotary_embedding(q, torch.tensor([m]), 8) * rotary_embedding(k, torch.tensor([n]), 8))
        .sum()
        .item()
        for m, n in [(5, 2), (9, 6), (3, 0)]
    ]
    assert max(dots) - min(dots) < 1e-5
    with pytest.raises(ValueError):
        rotary_embedding(x, pos, rope_dim=3)


# --- indexer --------------------------------------------------------------------------------


def slow_index_scores(idx: LightningIndexer, x, q_input, positions):
    b, length, _ = x.shape
    h, d, r = idx.n_index_heads, idx.index_head_dim, idx.rope_dim
    out = torch.full((b, length, length), NEG_INF)
    wq, wk, ww = idx.wq.weight, idx.wk.weight, idx.weights_proj.weight
    gamma, beta, eps = idx.k_norm.weight, idx.k_norm.bias, idx.k_norm.eps
    for bi in range(b):
        keys = []
        for s in range(length):
            y = wk @ x[bi, s]
            y = (y - y.mean()) / torch.sqrt(y.var(unbiased=False) + eps) * gamma + beta
            keys.append(slow_rope(y, int(positions[s]), r))
        for t in range(length):
            qt = (wq @ q_input[bi, t]).view(h, d)
            qt = torch.stack([slow_rope(qt[j], int(positions[t]), r) for j in range(h)])
            w = (ww @ x[bi, t]) / math.sqrt(h) / math.sqrt(d)
            for s in range(t + 1):
                out[bi, t, s] = sum(w[j] * torch.relu(qt[j] @ keys[s]) for j in range(h))
    return out


def test_indexer_scores_match_slow_loop_and_are_causal():
    idx = make_indexer()
    torch.manual_seed(1)
    x, q_in = torch.randn(2, 5, 8), torch.randn(2, 5, 6)
    pos = torch.arange(5)
    with torch.no_grad():
        fast = idx.scores(x, q_in, pos)
        slow = slow_index_scores(idx, x, q_in, pos)
    assert fast.shape == (2, 5, 5)
    upper = torch.triu(torch.ones(5, 5, dtype=torch.bool), diagonal=1)
    assert torch.isneginf(fast[:, upper]).all()
    assert torch.isfinite(fast[:, ~upper]).all()
    close(fast, slow)


def test_indexer_q_input_defaults_to_x_only_when_widths_match():
    idx = make_indexer(q_dim=None)
    x = torch.randn(1, 4, 8)
    close(idx.scores(x), idx.scores(x, x, torch.arange(4)))
    with pytest.raises(ValueError, match="q_input"):
        make_indexer().scores(x)


def test_topk_k_eff_and_validity():
    scores = random_causal_scores(2, 6, 6)
    indices, valid = topk_indices(scores, 3)
    assert indices.shape == valid.shape == (2, 6, 3)
    n_valid = valid.sum(-1)
    assert (n_valid == torch.tensor([min(3, t + 1) for t in range(6)])).all()
    assert (indices[~valid] == -1).all()
    t = torch.arange(6)[None, :, None].expand_as(indices)
    assert (indices[valid] <= t[valid]).all()
    # the selected keys are the highest-scoring causal ones
    for b in range(2):
        for q in range(6):
            best = set(torch.argsort(scores[b, q, : q + 1], descending=True)[:3].tolist())
            assert set(indices[b, q][valid[b, q]].tolist()) == best
    big, big_valid = LightningIndexer.topk(scores, 10)
    assert big.shape[-1] == 6  # k_eff = min(k, Lk)
    assert (big_valid.sum(-1) == torch.arange(1, 7)).all()


def test_topk_is_a_stable_descending_sort_even_with_boundary_ties():
    # ReLU scores: many exact zeros, so the k-th score is often tied with unselected keys
    g = torch.Generator().manual_seed(7)
    scores = (torch.randn(2, 40, 40, generator=g) - 0.9).relu()
    scores[0, 30, :20] = 0.5  # a tie block inside and across the top-k boundary
    scores[0, 30, 20:] = 0.1
    scores = scores.masked_fill(torch.ones(40, 40, dtype=torch.bool).tril().logical_not(), NEG_INF)
    values, order = torch.sort(scores, dim=-1, descending=True, stable=True)
    expected = order[..., :6].masked_fill(~torch.isfinite(values[..., :6]), -1)
    indices, valid = topk_indices(scores, 6)
    assert torch.equal(indices, expected)
    assert torch.equal(valid, torch.isfinite(values[..., :6]))
    assert indices[0, 30].tolist() == [0, 1, 2, 3, 4, 5]


def test_indexer_query_chunks_do_not_change_scores():
    x, q_in = torch.randn(2, 9, 8), torch.randn(2, 9, 6)
    whole = make_indexer(seed=5).scores(x, q_in)
    chunked = make_indexer(seed=5, query_chunk=4).scores(x, q_in)
    close(chunked, whole)
    # after a key cache, each chunk sees the cached keys plus its causal prefix
    _, cache = make_indexer(seed=5)(x[:, :3], q_in[:, :3])
    rest = make_indexer(seed=5, query_chunk=2).scores(x[:, 3:], q_in[:, 3:], key_cache=cache)
    close(rest, whole[:, 3:])
    with pytest.raises(ValueError, match="query_chunk"):
        make_indexer(query_chunk=0)


def test_decode_with_key_cache_equals_last_prefill_row():
    idx = make_indexer(seed=3)
    torch.manual_seed(4)
    x, q_in = torch.randn(2, 6, 8), torch.randn(2, 6, 6)
    with torch.no_grad():
        full = idx.scores(x, q_in, torch.arange(6))
        _, cache = idx(x[:, :5], q_in[:, :5], torch.arange(5))
        step, new_k = idx(x[:, 5:], q_in[:, 5:], key_cache=cache)  # positions default to 5
        _, cache3 = idx(x[:, :3], q_in[:, :3])
        chunk = idx.scores(x[:, 3:], q_in[:, 3:], key_cache=cache3)  # chunked prefill
    assert cache.shape == (2, 5, 4) and new_k.shape == (2, 1, 4)
    close(step, full[:, 5:])
    close(chunk, full[:, 3:])
    # the same holds through top-k and gathered sparse attention
    q, k, v = qkv(lq=6, lk=6)
    ind, val = topk_indices(full, 3)
    prefill = sparse_attention(q, k, v, ind, val)
    ind1, val1 = topk_indices(step, 3)
    decode = sparse_attention(q[:, :, 5:], k, v, ind1, val1)
    close(decode, prefill[:, :, 5:])


# --- sparse attention -----------------------------------------------------------------------


@pytest.mark.parametrize("k_sel", [7, 12])
def test_sparse_attention_equals_dense_causal_when_k_covers_all(k_sel):
    q, k, v = qkv()
    ind, val = topk_indices(random_causal_scores(2, 7, 7, seed=5), k_sel)
    dense = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    close(sparse_attention(q, k, v, ind, val, mode="mask"), dense)
    close(sparse_attention(q, k, v, ind, val, mode="gather"), dense)
    ref_probs = torch.softmax(
        (q @ k.transpose(-1, -2) / 2.0).masked_fill(
            torch.triu(torch.ones(7, 7, dtype=torch.bool), 1), NEG_INF
        ),
        -1,
    )
    close(causal_attention_probs(q, k), ref_probs)
    close(masked_attention_probs(q, k, ind, val), ref_probs)


def test_mask_and_gather_agree_on_sparse_indices():
    q, k, v = qkv(lq=9, lk=9, seed=2)
    ind, val = topk_indices(random_causal_scores(2, 9, 9, seed=6), 3)
    masked = sparse_attention_masked(q, k, v, ind, val, scale=0.3)
    gathered = sparse_attention_gathered(q, k, v, ind, val, scale=0.3)
    close(masked, gathered)
    # a query attends only to its selection: perturbing an unselected value changes nothing
    v2 = v.clone()
    unselected = sorted(set(range(9)) - set(ind[0, 8][val[0, 8]].tolist()))[0]
    v2[0, :, unselected] += 100.0
    close(sparse_attention_masked(q, k, v2, ind, val, 0.3)[0, :, 8], masked[0, :, 8])
    # grouped key/value heads are broadcast to the query heads
    q, k, v = qkv(h=4, h_kv=2, lq=5, lk=5)
    ind, val = topk_indices(random_causal_scores(2, 5, 5), 2)
    close(
        sparse_attention(q, k, v, ind, val, mode="mask"),
        sparse_attention(q, k, v, ind, val, mode="gather"),
    )


def test_selection_mask_handles_invalid_slots():
    ind = torch.tensor([[[0, -1, -1], [1, 0, -1]]])
    m = selection_mask(ind, 3)
    assert m.tolist() == [[[True, False, False], [True, True, False]]]


# --- FP8 ------------------------------------------------------------------------------------


def test_fp8_round_trip_error_is_small_and_blockwise():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 200) * torch.logspace(-2, 2, 200)  # ragged: blocks of 128 + 72
    y = fp8_quant_dequant(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    rel = (y - x).norm() / x.norm()
    assert rel < 0.05
    # elementwise: e4m3 keeps 3 mantissa bits -> relative error <= 2^-4 above the subnormals
    blocks = [x[..., :128], x[..., 128:]]
    outs = [y[..., :128], y[..., 128:]]
    for xb, yb in zip(blocks, outs, strict=True):
        scale = xb.abs().amax(-1, keepdim=True) / FP8_E4M3_MAX
        normal = xb.abs() >= scale * 2.0**-6
        err = (yb - xb).abs()
        assert (err[normal] <= xb.abs()[normal] * 2.0**-4 + 1e-12).all()
        assert (err <= scale * 2.0**-9 * 1.0001 + xb.abs() * 2.0**-4).all()
    # a dim smaller than the block uses the whole dim as one block
    small = torch.randn(4, 16)
    assert (fp8_quant_dequant(small) - small).abs().max() < 0.1 * small.abs().max()
    # straight-through gradient
    z = torch.randn(2, 8, requires_grad=True)
    fp8_quant_dequant(z).sum().backward()
    close(z.grad, torch.ones_like(z))


def test_fp8_emulation_matches_native_cast():
    torch.manual_seed(1)
    y = torch.cat([torch.randn(4000) * 50, torch.randn(1000) * 1e-3, torch.tensor([448.0, -448.0])])
    emu = e4m3_round_emulated(y)
    assert emu.abs().max() <= FP8_E4M3_MAX
    x = torch.randn(6, 64)
    emulated = fp8_quant_dequant(x, emulate=True)
    assert (emulated - x).abs().max() < 0.07 * x.abs().max()
    assert HAS_TORCH_FP8  # torch 2.13 (the build the Makefile installs) has float8_e4m3fn
    native = y.clamp(-FP8_E4M3_MAX, FP8_E4M3_MAX).to(torch.float8_e4m3fn).float()
    assert torch.equal(emu, native)
    assert torch.equal(emulated, fp8_quant_dequant(x, emulate=False))


def test_topk_overlap_values():
    a = torch.tensor([[[0, 1, 2, 3], [0, 1, -1, -1]]])
    assert topk_overlap(a, a) == 1.0
    b = torch.tensor([[[0, 1, 4, 5], [2, 3, -1, -1]]])
    assert topk_overlap(a, b) == pytest.approx((2 / 4 + 0 / 2) / 2)


def test_fp8_indexer_keeps_topk_overlap():
    torch.manual_seed(0)
    kw = dict(hidden_size=32, n_index_heads=4, index_head_dim=16, rope_dim=8, q_dim=24)
    ref = LightningIndexer(**kw)
    quant = LightningIndexer(**kw, fp8=True)
    quant.load_state_dict(ref.state_dict())
    x, q_in = torch.randn(2, 64, 32), torch.randn(2, 64, 24)
    with torch.no_grad():
        a, va = topk_indices(ref.scores(x, q_in), 16)
        b, vb = topk_indices(quant.scores(x, q_in), 16)
    overlap = topk_overlap(a, b, va, vb)
    assert 0.8 < overlap <= 1.0


# --- losses ---------------------------------------------------------------------------------


def test_kl_loss_zero_at_target_and_positive_otherwise():
    scores = random_causal_scores(2, 5, 5, seed=7).requires_grad_()
    q = torch.softmax(scores.detach(), -1)
    # three heads whose sum, normalised, is exactly softmax(I)
    split = torch.tensor([0.2, 0.3, 0.5])[None, :, None, None]
    attn = q[:, None] * split
    zero = indexer_kl_loss(scores, attn)
    assert abs(zero.item()) < 1e-6
    other = torch.softmax(random_causal_scores(2, 5, 5, seed=8), -1)[:, None].expand(2, 3, 5, 5)
    loss = indexer_kl_loss(scores, other)
    assert loss.item() > 1e-3
    loss.backward()
    assert torch.isfinite(scores.grad).all()
    assert (scores.grad[:, torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)] == 0).all()
    # target is the head sum, L1-normalised
    close(attention_target(other), other[:, 0])


def test_kl_loss_sparse_restriction():
    scores = random_causal_scores(1, 6, 6, seed=9).requires_grad_()
    attn = torch.softmax(random_causal_scores(1, 6, 6, seed=10), -1)[:, None].repeat(1, 2, 1, 1)
    ind, val = topk_indices(scores.detach(), 2)
    mask = selection_mask(ind, 6, val)
    loss = indexer_kl_loss(scores, attn, mask)
    # hand-computed: restrict both to the selected keys, renormalise, KL, mean over queries
    expected = 0.0
    for t in range(6):
        sel = mask[0, t]
        p = attn[0].sum(0)[t][sel]
        p = p / p.sum()
        logq = torch.log_softmax(scores.detach()[0, t][sel], -1)
        expected += float((p * (p.log() - logq)).sum())
    assert loss.item() == pytest.approx(expected / 6, abs=1e-5)
    loss.backward()
    assert torch.isfinite(scores.grad).all()
    assert (scores.grad[~mask] == 0).all()
    # scores outside the selection do not matter
    moved = scores.detach().clone()
    moved[~mask & torch.isfinite(moved)] += 5.0
    assert indexer_kl_loss(moved, attn, mask).item() == pytest.approx(loss.item(), abs=1e-6)


def test_topk_ties_go_to_the_earlier_key_whatever_the_row_width():
    # ReLU scores tie at exactly 0 often; a decode row (past keys only) and the same row of a
    # wider recompute (extra -inf columns) must select the same keys.
    row = torch.tensor([[[0.0, 2.0, 0.0, 0.0, 1.0, 0.0]]])
    wide = torch.cat([row, torch.full((1, 1, 10), float("-inf"))], dim=-1)
    for scores in (row, wide):
        indices, valid = topk_indices(scores, 4)
        assert indices.tolist() == [[[1, 4, 0, 2]]] and bool(valid.all())
