"""DSA tools (top-k selection, FP8 simulation, the indexer KL losses) against slow loop
references, on tiny CPU tensors."""

from __future__ import annotations

import pytest
import torch

from posttrain.attention.dsa import (
    FP8_E4M3_MAX,
    HAS_TORCH_FP8,
    attention_target,
    e4m3_round_emulated,
    fp8_quant_dequant,
    indexer_kl_loss,
    selection_mask,
    topk_indices,
    topk_overlap,
)

NEG_INF = float("-inf")


def close(actual, expected, tol=1e-5):
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol)


def random_causal_scores(b, lq, lk, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(b, lq, lk, generator=g)
    offset = lk - lq
    t = torch.arange(lq)[:, None]
    return s.masked_fill(torch.arange(lk)[None] > t + offset, NEG_INF)


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
    big, big_valid = topk_indices(scores, 10)
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
