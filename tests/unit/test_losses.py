"""RL losses against hand-computed values (worked out in comments with plain Python math)."""

import math

import pytest
import torch

from posttrain.rl.losses import (
    entropy_from_logits,
    group_advantages,
    icepop_weights,
    kl_penalty,
    masked_mean,
    mismatch_metrics,
    policy_loss,
    tis_weights,
    token_logprobs,
)


def close(actual, expected, tol=1e-5):
    torch.testing.assert_close(
        torch.as_tensor(actual, dtype=torch.float32),
        torch.as_tensor(expected, dtype=torch.float32),
        rtol=tol,
        atol=tol,
    )


# --- masked_mean --------------------------------------------------------------------------


def test_masked_mean_all_and_per_row():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    close(masked_mean(x, mask), (1 + 2 + 6) / 3)
    close(masked_mean(x, mask, dim=1), [1.5, 6.0])


def test_masked_mean_empty_mask_is_zero():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    mask = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    close(masked_mean(x, torch.zeros_like(x)), 0.0)
    close(masked_mean(x, mask, dim=1), [0.0, 3.0])


def test_masked_mean_ignores_inf_at_masked_positions():
    x = torch.tensor([2.0, float("inf"), float("nan")], requires_grad=True)
    mask = torch.tensor([1.0, 0.0, 0.0])
    out = masked_mean(x, mask)
    out.backward()
    close(out, 2.0)
    close(x.grad, [1.0, 0.0, 0.0])


# --- group_advantages ---------------------------------------------------------------------

# Group 1 = [1, 0, 0, 0]: mean 0.25, deviations [0.75, -0.25, -0.25, -0.25],
# unbiased variance (0.5625 + 3 * 0.0625) / 3 = 0.25, std 0.5.
# Group 2 = [2, 2, 2, 2]: zero variance, deviations all 0.
REWARDS = [1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0]


def test_group_advantages_scaled():
    adv = group_advantages(torch.tensor(REWARDS), 4)
    d = 0.5 + 1e-4
    close(adv, [0.75 / d, -0.25 / d, -0.25 / d, -0.25 / d, 0.0, 0.0, 0.0, 0.0])


def test_group_advantages_unscaled_dr_grpo():
    adv = group_advantages(torch.tensor(REWARDS), 4, scale=False)
    close(adv, [0.75, -0.25, -0.25, -0.25, 0.0, 0.0, 0.0, 0.0])


def test_group_advantages_custom_eps_and_pairs():
    # Groups [3, 1] and [0, 4]: means 2 and 2, deviations ±1 and ±2, unbiased std
    # sqrt(2 * 1 / 1) = sqrt(2) and sqrt(2 * 4 / 1) = sqrt(8).
    adv = group_advantages(torch.tensor([3.0, 1.0, 0.0, 4.0]), 2, eps=0.0)
    close(adv, [1 / math.sqrt(2), -1 / math.sqrt(2), -2 / math.sqrt(8), 2 / math.sqrt(8)])


def test_group_advantages_group_of_one_is_zero():
    close(group_advantages(torch.tensor([1.0, 5.0]), 1), [0.0, 0.0])


@pytest.mark.parametrize(("rewards", "size"), [([1.0, 2.0, 3.0], 2), ([1.0, 2.0], 0)])
def test_group_advantages_bad_group_size(rewards, size):
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(torch.tensor(rewards), size)


def test_group_advantages_rejects_2d():
    with pytest.raises(ValueError, match="1-D"):
        group_advantages(torch.ones(2, 2), 2)


# --- policy_loss --------------------------------------------------------------------------

# eps_low = eps_high = 0.2, so clip(ratio) lies in [0.8, 1.2].
# Row 0, A = +1, ratios [1.1, 1.5, pad]:
#   1.1: min(1.1, 1.1) = 1.1                      -> loss -1.1 (unclipped)
#   1.5: min(1.5, 1.2) = 1.2                      -> loss -1.2 (clipped high)
# Row 1, A = -1, ratios [0.5, 0.9, 1.3]:
#   0.5: min(-0.5, -0.8) = -0.8                   -> loss  0.8 (clipped low)
#   0.9: min(-0.9, -0.9) = -0.9                   -> loss  0.9 (unclipped)
#   1.3: min(-1.3, -1.2) = -1.3                   -> loss  1.3 (unclipped: A < 0)
# Sum = -1.1 - 1.2 + 0.8 + 0.9 + 1.3 = 0.7 over 5 tokens.
RATIOS = [[1.1, 1.5, 1.0], [0.5, 0.9, 1.3]]
OLD = [[-1.0, -2.0, -100.0], [-0.5, -1.5, -3.0]]
MASK = [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
ADV = [1.0, -1.0]


def make_inputs():
    old = torch.tensor(OLD, requires_grad=True)  # requires_grad to prove no grad reaches it
    logp = torch.tensor(
        [
            [o + math.log(r) for o, r in zip(orow, rrow, strict=True)]
            for orow, rrow in zip(OLD, RATIOS, strict=True)
        ]
    )
    logp[0, 2] = 0.0  # padding garbage: exp(0 - (-100)) overflows float32 to inf
    logp.requires_grad_(True)
    adv = torch.tensor(ADV, requires_grad=True)
    return logp, old, adv, torch.tensor(MASK)


@pytest.mark.parametrize(
    ("aggregation", "max_tokens", "expected"),
    [
        ("token-mean", None, 0.7 / 5),
        # Row means: (-1.1 - 1.2) / 2 = -1.15 and (0.8 + 0.9 + 1.3) / 3 = 1.0; mean -0.075.
        ("seq-mean-token-mean", None, (-1.15 + 1.0) / 2),
        # 0.7 / (B * max_tokens) = 0.7 / 8.
        ("seq-mean-token-sum-norm", 4, 0.7 / 8),
    ],
)
def test_policy_loss_aggregations(aggregation, max_tokens, expected):
    logp, old, adv, mask = make_inputs()
    loss, metrics = policy_loss(
        logp, old, adv, mask, aggregation=aggregation, max_tokens=max_tokens
    )
    close(loss, expected)
    assert metrics["clip_ratio/low_mean"] == pytest.approx(1 / 5)
    assert metrics["clip_ratio/high_mean"] == pytest.approx(1 / 5)
    assert metrics["ratio_mean"] == pytest.approx((1.1 + 1.5 + 0.5 + 0.9 + 1.3) / 5)
    kl = sum(r - 1 - math.log(r) for r in (1.1, 1.5, 0.5, 0.9, 1.3)) / 5
    assert metrics["approx_kl"] == pytest.approx(kl, rel=1e-5)
    assert all(isinstance(v, float) for v in metrics.values())


def test_policy_loss_gradient_only_through_logp():
    logp, old, adv, mask = make_inputs()
    loss, _ = policy_loss(logp, old, adv, mask)
    loss.backward()
    assert old.grad is None and adv.grad is None
    # Unclipped token: d/dlogp of -ratio * A is -ratio * A, divided by 5 tokens (token-mean).
    # Clipped tokens (0,1) and (1,0) and the masked token (0,2) get zero gradient.
    close(logp.grad, [[-1.1 / 5, 0.0, 0.0], [0.0, 0.9 / 5, 1.3 / 5]])


def test_policy_loss_clip_higher():
    # eps_high = 0.6: ratio 1.5 with A > 0 is no longer clipped; its loss becomes -1.5,
    # so the sum is 0.7 - 0.3 = 0.4.
    logp, old, adv, mask = make_inputs()
    loss, metrics = policy_loss(logp, old, adv, mask, eps_high=0.6)
    close(loss, 0.4 / 5)
    assert metrics["clip_ratio/high_mean"] == 0.0
    assert metrics["clip_ratio/low_mean"] == pytest.approx(1 / 5)


def test_policy_loss_weights_multiply_per_token_loss():
    # Per-token losses [[-1.1, -1.2, pad], [0.8, 0.9, 1.3]] times weights [[2, 1, 5], [1, 0, 1]]:
    # -2.2 - 1.2 + 0.8 + 0 + 1.3 = -1.3 over 5 tokens (zero weights still count in the mean).
    logp, old, adv, mask = make_inputs()
    weights = torch.tensor([[2.0, 1.0, 5.0], [1.0, 0.0, 1.0]])
    loss, _ = policy_loss(logp, old, adv, mask, weights=weights)
    close(loss, -1.3 / 5)
    loss.backward()
    close(logp.grad, [[-2.2 / 5, 0.0, 0.0], [0.0, 0.0, 1.3 / 5]])


def test_policy_loss_on_policy_is_plain_policy_gradient():
    # ratio == 1 everywhere: loss = -token-mean(A) = -(1 + 2 - 1 + 0 + 4) / 5 = -1.2.
    logp = torch.tensor([[-1.0, -2.0, -3.0], [-0.1, -0.2, -0.3]], requires_grad=True)
    adv = torch.tensor([[1.0, 2.0, 3.0], [-1.0, 0.0, 4.0]])
    loss, metrics = policy_loss(logp, logp.detach().clone(), adv, torch.tensor(MASK))
    close(loss, -1.2)
    assert metrics == {
        "clip_ratio/low_mean": 0.0,
        "clip_ratio/high_mean": 0.0,
        "ratio_mean": 1.0,
        "approx_kl": 0.0,
    }
    loss.backward()
    close(logp.grad, [[-0.2, -0.4, 0.0], [0.2, 0.0, -0.8]])


def test_policy_loss_masked_garbage_stays_finite():
    logp, old, adv, mask = make_inputs()
    with torch.no_grad():
        logp[0, 2] = float("nan")
    adv2d = torch.tensor([[1.0, 1.0, float("inf")], [-1.0, -1.0, -1.0]])
    loss, metrics = policy_loss(logp, old, adv2d, mask)
    loss.backward()
    close(loss, 0.7 / 5)
    assert torch.isfinite(logp.grad).all()
    assert all(math.isfinite(v) for v in metrics.values())


def test_policy_loss_errors():
    logp, old, adv, mask = make_inputs()
    with pytest.raises(ValueError, match="token-mean.*seq-mean-token-mean"):
        policy_loss(logp, old, adv, mask, aggregation="seq-sum")
    with pytest.raises(ValueError, match="max_tokens"):
        policy_loss(logp, old, adv, mask, aggregation="seq-mean-token-sum-norm")
    with pytest.raises(ValueError, match="advantages"):
        policy_loss(logp, old, torch.ones(3), mask)
    with pytest.raises(ValueError, match="share"):
        policy_loss(logp, old[:, :2], adv, mask)
    with pytest.raises(ValueError, match="weights"):
        policy_loss(logp, old, adv, mask, weights=torch.ones(2))


# --- kl_penalty ---------------------------------------------------------------------------


def test_kl_penalty_values():
    # r = ref - logp = [-1, 1, 0].
    logp = torch.tensor([[0.0, -1.0, -0.5]])
    ref = torch.tensor([[-1.0, 0.0, -0.5]])
    close(kl_penalty(logp, ref, "k1"), [[1.0, -1.0, 0.0]])
    close(kl_penalty(logp, ref, "k2"), [[0.5, 0.5, 0.0]])
    # k3 = exp(r) - r - 1: exp(-1) + 1 - 1 = e^-1; exp(1) - 1 - 1 = e - 2; 1 - 0 - 1 = 0.
    close(kl_penalty(logp, ref), [[math.exp(-1), math.e - 2, 0.0]])


def test_kl_k3_nonnegative_and_zero_when_equal():
    gen = torch.Generator().manual_seed(0)
    logp = -torch.rand(4, 7, generator=gen) * 5
    ref = -torch.rand(4, 7, generator=gen) * 5
    assert (kl_penalty(logp, ref, "k3") >= 0).all()
    assert torch.equal(kl_penalty(logp, logp, "k3"), torch.zeros(4, 7))


def test_kl_penalty_unknown_kind():
    with pytest.raises(ValueError, match="k1"):
        kl_penalty(torch.zeros(1, 1), torch.zeros(1, 1), "k4")


# --- entropy_from_logits ------------------------------------------------------------------


def test_entropy_uniform_is_log_v():
    close(entropy_from_logits(torch.zeros(2, 3, 7)), torch.full((2, 3), math.log(7)))


def test_entropy_one_hot_is_zero():
    close(entropy_from_logits(torch.tensor([100.0, 0.0, 0.0, 0.0])), 0.0)


def test_entropy_hand_value_and_inf_logits():
    # logits [0, log 3] -> p = [1/4, 3/4]; H = -(0.25 ln 0.25 + 0.75 ln 0.75).
    h = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    close(entropy_from_logits(torch.tensor([0.0, math.log(3)])), h)
    # A -inf logit is a banned token: it contributes 0, so [0, 0, -inf] has entropy log 2.
    logits = torch.tensor([0.0, 0.0, float("-inf")], requires_grad=True)
    out = entropy_from_logits(logits)
    out.backward()
    close(out, math.log(2))
    assert torch.isfinite(logits.grad).all()


# --- token_logprobs -----------------------------------------------------------------------


def test_token_logprobs_hand_value():
    # logits [0, log 3]: p(token 1) = 3/4.
    logits = torch.tensor([[[0.0, math.log(3)]]])
    close(token_logprobs(logits, torch.tensor([[1]])), [[math.log(0.75)]])


def test_token_logprobs_matches_log_softmax_values_and_grads():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 11, generator=gen, requires_grad=True)
    tokens = torch.randint(0, 11, (2, 5), generator=gen)
    ours = token_logprobs(logits, tokens)
    ref = torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    close(ours, ref)
    (g_ours,) = torch.autograd.grad(ours.sum(), logits)
    (g_ref,) = torch.autograd.grad(ref.sum(), logits)
    close(g_ours, g_ref)


def test_token_logprobs_shape_mismatch():
    with pytest.raises(ValueError, match="tokens shape"):
        token_logprobs(torch.zeros(2, 5, 11), torch.zeros(2, 4, dtype=torch.long))


# --- tis_weights / icepop_weights---------------------------------------------------------


def test_tis_weights_cap_and_detach():
    # old - rollout = [ln 0.5, 0, ln 3] -> ratios [0.5, 1, 3] -> capped at 2: [0.5, 1, 2].
    old = torch.tensor([math.log(0.5), -1.0, math.log(3)], requires_grad=True)
    rollout = torch.tensor([0.0, -1.0, 0.0], requires_grad=True)
    w = tis_weights(old, rollout)
    close(w, [0.5, 1.0, 2.0])
    assert not w.requires_grad
    close(tis_weights(old, rollout, cap=5.0), [0.5, 1.0, 3.0])
    with pytest.raises(ValueError, match="cap"):
        tis_weights(old, rollout, cap=0.0)


def test_icepop_weights_are_the_ratio_inside_the_band_and_zero_outside():
    # Ratios exp(old - rollout): [2, 1/2, 2.002, 0.4995, 1, 1.5, 0.8] against [1/2, 2].
    ln2 = math.log(2)
    old = torch.tensor(
        [ln2, -ln2, ln2 + 1e-3, -ln2 - 1e-3, 0.0, math.log(1.5), math.log(0.8)],
        requires_grad=True,
    )
    w = icepop_weights(old, torch.zeros(7))
    close(w, [2.0, 0.5, 0.0, 0.0, 1.0, 1.5, 0.8])
    assert not w.requires_grad and w.dtype == old.dtype


def test_icepop_weights_against_nonzero_rollout_logprobs():
    # pi_train = 0.3, pi_infer = [0.2, 0.1, 0.3, 0.7] -> ratios [1.5, 3, 1, 0.4286]; beta = 2.
    old = torch.full((4,), math.log(0.3))
    rollout = torch.log(torch.tensor([0.2, 0.1, 0.3, 0.7]))
    close(icepop_weights(old, rollout, beta=2.0), [1.5, 0.0, 1.0, 0.0])


def test_icepop_alpha_and_errors():
    # Ratios [0.4, 0.5, 4.9, 5.1] against [alpha, beta] = [0.5, 5].
    old = torch.tensor([math.log(r) for r in (0.4, 0.5, 4.9, 5.1)])
    close(icepop_weights(old, torch.zeros(4), 5.0, alpha=0.5), [0.0, 0.5, 4.9, 0.0])
    with pytest.raises(ValueError, match="alpha"):
        icepop_weights(old, torch.zeros(4), beta=0.5)


# --- mismatch_metrics ---------------------------------------------------------------------


def test_mismatch_metrics_zero_when_equal():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -3.0]])
    assert mismatch_metrics(logp, logp.clone(), torch.ones(2, 2)) == {
        "logp_abs_diff": 0.0,
        "mismatch_kl_k3": 0.0,
    }


def test_mismatch_metrics_hand_value():
    # d = train - rollout = [0.5, -1.0] on the two unmasked tokens (third is masked garbage).
    # |d| mean = 0.75; k3 mean = ((e^0.5 - 0.5 - 1) + (e^-1 + 1 - 1)) / 2.
    train = torch.tensor([[-1.0, -2.0, 5.0]])
    rollout = torch.tensor([[-1.5, -1.0, float("-inf")]])
    metrics = mismatch_metrics(train, rollout, torch.tensor([[1.0, 1.0, 0.0]]))
    assert metrics["logp_abs_diff"] == pytest.approx(0.75)
    k3 = ((math.exp(0.5) - 1.5) + math.exp(-1.0)) / 2
    assert metrics["mismatch_kl_k3"] == pytest.approx(k3, rel=1e-6)
