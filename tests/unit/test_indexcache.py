"""IndexCache: F/S patterns, distillation loss, greedy search, overlap plots."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from posttrain.attention.dsa import kl_to_target, selection_mask, topk_indices
from posttrain.attention.indexcache import (
    averaged_target,
    full_layers,
    greedy_layer_search,
    index_overlap_matrix,
    multi_layer_distillation_loss,
    parse_pattern,
    pattern_from_frequency,
    plot_overlap,
    served_layers,
    source_layers,
)

NEG_INF = float("-inf")


def causal(scores):
    lq, lk = scores.shape[-2:]
    upper = torch.arange(lk)[None] > torch.arange(lq)[:, None] + (lk - lq)
    return scores.masked_fill(upper, NEG_INF)


# --- patterns -------------------------------------------------------------------------------


def test_parse_pattern_accepts_and_rejects():
    assert parse_pattern("FSSSFSSS", 8) == "FSSSFSSS"
    assert parse_pattern("F", 1) == "F"
    with pytest.raises(ValueError, match="length 4, expected n_layers=5"):
        parse_pattern("FSSS", 5)
    with pytest.raises(ValueError, match="invalid character 'X' at layer 2"):
        parse_pattern("FSXS", 4)
    with pytest.raises(ValueError, match="invalid character 's' at layer 1"):
        parse_pattern("Fs", 2)
    with pytest.raises(ValueError, match="layer 0 must be F"):
        parse_pattern("SFFF", 4)


def test_pattern_from_frequency_follows_engine_convention():
    assert pattern_from_frequency(6, 1) == "F" * 6  # engine defaults: freq 1, offset 2
    # GLM-5.2 (78 layers, index_topk_freq=4, index_skip_topk_offset=3): F at 0,1,2,6,...,74
    glm = pattern_from_frequency(78, 4, 3)
    assert full_layers(glm) == [0, 1, 2, *range(6, 78, 4)]
    assert glm.count("F") == 21
    assert pattern_from_frequency(6, 2, 2) == "FFSFSF"
    assert pattern_from_frequency(8, 4, 1) == "FSSSFSSS"
    assert pattern_from_frequency(8, 4, 0) == "FSSFSSSF"  # layer 0 forced F
    with pytest.raises(ValueError, match="freq"):
        pattern_from_frequency(4, 0)
    with pytest.raises(ValueError, match="offset"):
        pattern_from_frequency(4, 2, -1)


def test_source_and_served_layers():
    assert source_layers("FSSFSF") == [0, 0, 0, 3, 3, 5]
    assert served_layers("FSSFSF") == {0: [0, 1, 2], 3: [3, 4], 5: [5]}
    assert source_layers("FFFF") == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        source_layers("SF")


# --- runner ---------------------------------------------------------------------------------


# --- distillation ---------------------------------------------------------------------------


@pytest.mark.parametrize("sparse", [False, True])
def test_distillation_gradient_equals_kl_to_averaged_target(sparse):
    g = torch.Generator().manual_seed(0)
    b, h, length = 2, 3, 6
    base = causal(torch.randn(b, length, length, generator=g))
    layers = [
        torch.softmax(causal(torch.randn(b, h, length, length, generator=g)), -1) for _ in range(4)
    ]
    mask = None
    if sparse:
        ind, val = topk_indices(base, 3)
        mask = selection_mask(ind, length, val)
    s1 = base.clone().requires_grad_()
    loss = multi_layer_distillation_loss(s1, layers, mask)
    loss.backward()
    s2 = base.clone().requires_grad_()
    kl_to_target(s2, averaged_target(layers, mask), mask).backward()
    assert loss.item() > 0
    assert torch.isfinite(s1.grad).all()
    torch.testing.assert_close(s1.grad, s2.grad, rtol=1e-5, atol=1e-6)
    # one served layer reduces to the plain per-layer KL
    single = multi_layer_distillation_loss(base, layers[:1], mask)
    torch.testing.assert_close(single, kl_to_target(base, averaged_target(layers[:1], mask), mask))


# --- greedy search --------------------------------------------------------------------------


def test_greedy_search_on_additive_synthetic_loss():
    cost = [100.0, 0.5, 0.1, 0.9, 0.3, 0.7]  # cost of turning layer i into S
    evaluated = []

    def loss_fn(pattern):
        evaluated.append(pattern)
        return 2.0 + sum(c for c, p in zip(cost, pattern, strict=True) if p == "S")

    history = greedy_layer_search(6, loss_fn)
    assert [n for n, _, _ in history] == [6, 5, 4, 3, 2, 1]
    assert [p for _, p, _ in history] == [
        "FFFFFF",
        "FFSFFF",
        "FFSFSF",
        "FSSFSF",
        "FSSFSS",
        "FSSSSS",
    ]
    losses = [loss for _, _, loss in history]
    assert losses == pytest.approx([2.0, 2.1, 2.4, 2.9, 3.6, 4.5])
    assert all(p[0] == "F" for p in evaluated)
    assert len(evaluated) == 1 + 5 + 4 + 3 + 2 + 1
    short = greedy_layer_search(6, loss_fn, target_full=4)
    assert [p for _, p, _ in short] == ["FFFFFF", "FFSFFF", "FFSFSF"]
    with pytest.raises(ValueError, match="target_full"):
        greedy_layer_search(6, loss_fn, target_full=0)


def test_greedy_search_on_distance_loss():
    # loss grows with how far each S layer is from its source: the greedy picks spread-out F
    def loss_fn(pattern):
        return float(sum((i - s) ** 2 for i, s in enumerate(source_layers(pattern))))

    history = greedy_layer_search(8, loss_fn, target_full=2)
    assert history[4] == (4, "FSFSFSFS", 4.0)  # evenly spread F layers
    assert history[-1] == (2, "FSSSFSSS", 28.0)
    # with two F layers this is the brute-force optimum (F at 0 and j, j = 1..7)
    assert min(loss_fn("F" + "S" * (j - 1) + "F" + "S" * (7 - j)) for j in range(1, 8)) == 28.0


# --- overlap --------------------------------------------------------------------------------


def test_overlap_matrix_properties_and_plot(tmp_path):
    g = torch.Generator().manual_seed(0)
    scores = causal(torch.randn(1, 8, 8, generator=g))
    ind0, val0 = topk_indices(scores, 3)
    ind1, val1 = topk_indices(scores + 0.3 * torch.randn(1, 8, 8, generator=g), 3)
    ind2, val2 = topk_indices(causal(torch.randn(1, 8, 8, generator=g)), 3)
    mat = index_overlap_matrix([ind0, ind1, ind0, ind2], [val0, val1, val0, val2])
    assert mat.shape == (4, 4)
    np.testing.assert_allclose(mat, mat.T)
    np.testing.assert_allclose(np.diag(mat), 1.0)
    assert ((mat >= 0) & (mat <= 1)).all()
    assert mat[0, 2] == pytest.approx(1.0)
    assert mat[0, 1] < 1.0
    # hand-made Jaccard: {0,1} vs {1,2} -> 1/3
    a = torch.tensor([[[0, 1]]])
    b = torch.tensor([[[1, 2]]])
    assert index_overlap_matrix([a, b])[0, 1] == pytest.approx(1 / 3)
    path = plot_overlap(mat, tmp_path / "plots" / "overlap.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
