"""Loss functions and diagnostics for GRPO-family RL, as pure PyTorch functions.

Conventions: log-prob tensors are [B, T] (one entry per token); ``mask`` is [B, T] with 1.0
for tokens that count (model-generated response tokens) and 0.0 elsewhere. Values at masked
positions are ignored, even when they are inf or NaN (padding often holds garbage), and no
gradient reaches them.

References:
- GRPO: Shao et al. 2024, "DeepSeekMath" (group-normalised advantages, per-sequence mean).
- Dr.GRPO: Liu et al. 2025, "Understanding R1-Zero-Like Training" (no std scaling, constant
  length normaliser).
- DAPO: Yu et al. 2025 (clip-higher ``eps_high > eps_low``, token-level mean).
- TIS: Yao et al. 2025, "Your Efficient RL Framework Secretly Brings You Off-Policy RL
  Training" (truncated importance sampling against the inference engine's log-probs).
- IcePop: Ring-1T, 2025 (weight tokens by the train/inference probability ratio, zero where
  it is extreme).
- KL estimators k1/k2/k3: Schulman 2020, "Approximating KL Divergence".
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

Aggregation = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
AGGREGATIONS: tuple[str, ...] = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
KL_KINDS: tuple[str, ...] = ("k1", "k2", "k3")


def masked_mean(x: Tensor, mask: Tensor, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """Mean of ``x`` over entries where ``mask`` is nonzero: sum(x * mask) / sum(mask).

    Reduces over ``dim`` (all dimensions when None). Where the mask sums to 0 the result is 0.
    Masked-out entries of ``x`` may be inf or NaN without affecting the value or the gradient.
    """
    x, mask = torch.broadcast_tensors(x, mask.to(x.dtype))
    num = torch.where(mask != 0, x * mask, 0.0).sum(dim)
    denom = mask.sum(dim)
    return num / torch.where(denom != 0, denom, 1.0)


def group_advantages(
    rewards: Tensor, group_size: int, *, scale: bool = True, eps: float = 1e-4
) -> Tensor:
    """Group-relative advantages: A = r - mean(group), optionally / (std(group) + eps).

    ``rewards`` is [N], laid out as N / group_size consecutive groups of completions of the
    same prompt. With ``scale=True`` this is GRPO (Shao et al. 2024), using the unbiased
    sample std as TRL does; ``scale=False`` is Dr.GRPO (Liu et al. 2025). A group whose
    rewards are all equal gets zero advantages, and so does a group of one.
    """
    if rewards.ndim != 1:
        raise ValueError(f"rewards must be 1-D [N], got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size != 0:
        raise ValueError(
            f"group_size must be a positive divisor of the number of rewards "
            f"({rewards.numel()}), got {group_size}"
        )
    groups = rewards.reshape(-1, group_size)
    advantages = groups - groups.mean(dim=1, keepdim=True)
    if scale and group_size > 1:
        advantages = advantages / (groups.std(dim=1, keepdim=True) + eps)
    return advantages.reshape(-1)


def policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    aggregation: Aggregation = "token-mean",
    max_tokens: int | None = None,
    weights: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """PPO clipped surrogate loss as used by GRPO, with DAPO clip-higher and loss aggregations.

    Per token: ratio = exp(logp - old_logp) and
    loss = -min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A), multiplied by
    ``weights`` (e.g. ``tis_weights`` or ``icepop_weights``) when given. ``advantages`` is [B]
    (broadcast over tokens) or [B, T]. Gradient flows only through ``logp``.

    Aggregations:
    - "token-mean": sum over all tokens / number of tokens in the batch (DAPO, Yu et al. 2025).
    - "seq-mean-token-mean": mean over sequences of each sequence's token mean (GRPO, Shao et
      al. 2024); a sequence with no tokens counts as 0.
    - "seq-mean-token-sum-norm": sum / (B * max_tokens) (Dr.GRPO, Liu et al. 2025).

    Returns the scalar loss and masked metrics as floats, under TRL's names where TRL has
    them: "clip_ratio/low_mean" (A < 0 and ratio < 1 - eps_low), "clip_ratio/high_mean"
    (A > 0 and ratio > 1 + eps_high), "ratio_mean",
    and "approx_kl" (k3 estimate of KL(pi_old || pi) from the sampled tokens).
    """
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}; expected one of {AGGREGATIONS}")
    if aggregation == "seq-mean-token-sum-norm" and (max_tokens is None or max_tokens <= 0):
        raise ValueError("aggregation 'seq-mean-token-sum-norm' needs a positive max_tokens")
    if old_logp.shape != logp.shape or mask.shape != logp.shape or logp.ndim != 2:
        raise ValueError(
            f"logp, old_logp and mask must share one [B, T] shape, got {tuple(logp.shape)}, "
            f"{tuple(old_logp.shape)} and {tuple(mask.shape)}"
        )
    if advantages.shape not in (logp.shape[:1], logp.shape):
        raise ValueError(
            f"advantages must be [B] or [B, T] for logp of shape {tuple(logp.shape)}, "
            f"got {tuple(advantages.shape)}"
        )
    if weights is not None and weights.shape != logp.shape:
        raise ValueError(f"weights must be [B, T] {tuple(logp.shape)}, got {tuple(weights.shape)}")

    valid = mask != 0
    mask = mask.to(logp.dtype)
    # Zeroing masked positions before exp keeps garbage there from producing inf/NaN gradients.
    log_ratio = torch.where(valid, logp - old_logp.detach(), 0.0)
    ratio = torch.exp(log_ratio)
    adv = advantages.detach()
    adv = torch.where(valid, adv.unsqueeze(1) if adv.ndim == 1 else adv, 0.0)
    surrogate = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - eps_low, 1.0 + eps_high) * adv
    per_token = -torch.minimum(surrogate, clipped)
    if weights is not None:
        per_token = per_token * torch.where(valid, weights.detach(), 0.0)

    loss = aggregate(per_token, mask, aggregation, max_tokens)

    with torch.no_grad():
        clip_low = ((adv < 0) & (ratio < 1.0 - eps_low)).to(logp.dtype)
        clip_high = ((adv > 0) & (ratio > 1.0 + eps_high)).to(logp.dtype)
        # k3 with pi_old as the sampling policy: exp(log_ratio) - log_ratio - 1.
        approx_kl = ratio - log_ratio - 1.0
        metrics = {
            "clip_ratio/low_mean": masked_mean(clip_low, mask).item(),
            "clip_ratio/high_mean": masked_mean(clip_high, mask).item(),
            "ratio_mean": masked_mean(ratio, mask).item(),
            "approx_kl": masked_mean(approx_kl, mask).item(),
        }
    return loss, metrics


def aggregate(
    per_token: Tensor, mask: Tensor, aggregation: Aggregation, max_tokens: int | None = None
) -> Tensor:
    """Reduce a [B, T] per-token loss to a scalar the way ``policy_loss`` documents."""
    if aggregation == "token-mean":
        return masked_mean(per_token, mask)
    if aggregation == "seq-mean-token-mean":
        return masked_mean(per_token, mask, dim=1).mean()
    if aggregation == "seq-mean-token-sum-norm" and max_tokens:
        return (per_token * mask).sum() / (per_token.shape[0] * max_tokens)
    raise ValueError(
        f"unknown aggregation {aggregation!r} (or no max_tokens); expected one of {AGGREGATIONS}"
    )


def direct_is_loss(
    logp: Tensor,
    rollout_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    aggregation: Aggregation = "token-mean",
    max_tokens: int | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """GLM-5's direct double-sided importance sampling (zai-org, 2026): no pi_old at all.

    r = exp(logp - rollout_logp) against the policy that generated the tokens; tokens with r
    outside (1 - eps_low, 1 + eps_high) are masked (they still count in the denominator);
    inside, the per-token loss is -r * A, whose gradient is f(r) * A * grad(logp) with
    f(x) = x, as in the paper's f(r) * A * logp_theta. With no drift (r = 1) this is the
    on-policy GRPO loss. ``advantages`` is [B] or [B, T].
    """
    valid = mask != 0
    log_ratio = torch.where(valid, logp - rollout_logp.detach(), 0.0)
    ratio = torch.exp(log_ratio)
    adv = advantages.detach()
    adv = torch.where(valid, adv.unsqueeze(1) if adv.ndim == 1 else adv, 0.0)
    inside = valid & (ratio.detach() > 1.0 - eps_low) & (ratio.detach() < 1.0 + eps_high)
    per_token = torch.where(inside, -ratio * adv, 0.0)
    mask = mask.to(logp.dtype)
    loss = aggregate(per_token, mask, aggregation, max_tokens)
    with torch.no_grad():
        metrics = {
            "is_masked_frac": masked_mean((valid & ~inside).to(logp.dtype), mask).item(),
            "ratio_mean": masked_mean(ratio, mask).item(),
        }
    return loss, metrics


def decoupled_ppo_loss(
    logp: Tensor,
    proximal_logp: Tensor,
    rollout_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    behaviour_cap: float | None = None,
    aggregation: Aggregation = "token-mean",
    max_tokens: int | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """AReaL's decoupled PPO (Fu et al. 2025): clip against a recomputed proximal policy and
    correct for the behaviour policy that generated the tokens.

    loss = -(pi_prox / pi_behav) * min(r * A, clip(r) * A) with r = pi_theta / pi_prox; the
    behaviour weight is detached and optionally capped.

    Metrics: ``policy_loss``'s, plus "behaviour_weight_mean" (the weight after the cap) and
    "behaviour_capped_frac" (tokens whose weight exceeded ``behaviour_cap``; 0 without one).
    """
    weights = torch.exp(proximal_logp.detach() - rollout_logp.detach())
    capped = torch.zeros_like(weights, dtype=torch.bool)
    if behaviour_cap is not None:
        capped = weights > behaviour_cap
        weights = weights.clamp(max=behaviour_cap)
    loss, metrics = policy_loss(
        logp,
        proximal_logp,
        advantages,
        mask,
        eps_low=eps_low,
        eps_high=eps_high,
        aggregation=aggregation,
        max_tokens=max_tokens,
        weights=weights,
    )
    with torch.no_grad():
        # How much of the batch the behaviour correction reweights, and how much the cap
        # truncates (the asynchronous-RL study compares corrections by what they discard).
        metrics["behaviour_weight_mean"] = masked_mean(weights, mask).item()
        metrics["behaviour_capped_frac"] = masked_mean(capped.to(logp.dtype), mask).item()
    return loss, metrics


def kl_penalty(logp: Tensor, ref_logp: Tensor, kind: Literal["k1", "k2", "k3"] = "k3") -> Tensor:
    """Per-token estimate of KL(pi || ref) from tokens sampled from pi (Schulman 2020).

    With r = ref_logp - logp: k1 = -r (unbiased, can be negative); k2 = r**2 / 2 (biased,
    nonnegative); k3 = exp(r) - r - 1 (unbiased, nonnegative, low variance). Gradient flows
    through both arguments; detach ``ref_logp`` for a reference-model penalty.
    """
    if kind not in KL_KINDS:
        raise ValueError(f"unknown KL estimator {kind!r}; expected one of {KL_KINDS}")
    log_r = ref_logp - logp
    if kind == "k1":
        return -log_r
    if kind == "k2":
        return 0.5 * log_r.square()
    return torch.exp(log_r) - log_r - 1.0


def entropy_from_logits(logits: Tensor) -> Tensor:
    """Entropy -sum(p * log p) over the last dimension, computed stably via log_softmax.

    Logits of -inf (banned tokens) contribute 0 rather than NaN.
    """
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp.clamp(min=torch.finfo(logp.dtype).min)).sum(dim=-1)


def token_logprobs(logits: Tensor, tokens: Tensor) -> Tensor:
    """Log-softmax of ``logits`` [B, T, V] gathered at ``tokens`` [B, T], giving [B, T].

    Position t of ``logits`` must already predict ``tokens[:, t]``. Computed as the gathered
    logit minus logsumexp, so no [B, T, V] log-softmax is kept for backward. The result has
    the logits' dtype; pass float32 logits for float32-accurate log-probs.
    """
    if logits.shape[:-1] != tokens.shape:
        raise ValueError(
            f"tokens shape {tuple(tokens.shape)} must equal logits shape without the vocab "
            f"dimension, {tuple(logits.shape[:-1])}"
        )
    picked = logits.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def tis_weights(old_logp: Tensor, rollout_logp: Tensor, cap: float = 2.0) -> Tensor:
    """Truncated importance weights min(pi_train / pi_infer, cap), detached (Yao et al. 2025).

    ``old_logp`` are the trainer's log-probs of the sampled tokens, ``rollout_logp`` those the
    inference engine reported; the weights correct for the mismatch between the two.
    """
    if cap <= 0:
        raise ValueError(f"cap must be positive, got {cap}")
    return torch.exp(old_logp.detach() - rollout_logp.detach()).clamp(max=cap)


def icepop_weights(
    old_logp: Tensor, rollout_logp: Tensor, beta: float = 2.0, *, alpha: float | None = None
) -> Tensor:
    """IcePop token weights (Ring-1T, 2025): the ratio pi_train / pi_infer where it lies in
    [alpha, beta], and 0 outside, so tokens whose two probabilities disagree too much are
    dropped and the rest are importance-corrected.

    The ratio is exp(old_logp - rollout_logp); ``alpha`` defaults to 1 / beta. Bounds are
    inclusive and compared in log space. The result is detached, in ``old_logp``'s dtype.
    """
    log_ratio = old_logp.detach() - rollout_logp.detach()
    keep = _icepop_keep(log_ratio, beta, alpha)
    return torch.where(keep, torch.exp(log_ratio), 0.0).to(old_logp.dtype)


def _icepop_keep(log_ratio: Tensor, beta: float, alpha: float | None) -> Tensor:
    """Where IcePop keeps a token: log ratio in [log alpha, log beta], alpha = 1 / beta."""
    alpha = 1.0 / beta if alpha is None else alpha
    if not 0 < alpha <= beta:
        raise ValueError(f"need 0 < alpha <= beta, got alpha={alpha}, beta={beta}")
    return (log_ratio >= math.log(alpha)) & (log_ratio <= math.log(beta))


def tis_truncated_frac(old_logp: Tensor, rollout_logp: Tensor, mask: Tensor, cap: float) -> float:
    """Fraction of counted tokens whose TIS weight the cap truncates (ratio above ``cap``),
    as ``tis_weights`` computes the ratio: exp(old_logp - rollout_logp)."""
    with torch.no_grad():
        log_ratio = old_logp.detach() - rollout_logp.detach()
        return masked_mean((log_ratio > math.log(cap)).to(old_logp.dtype), mask).item()


def icepop_masked_frac(
    old_logp: Tensor,
    rollout_logp: Tensor,
    mask: Tensor,
    beta: float,
    *,
    alpha: float | None = None,
) -> float:
    """Fraction of counted tokens IcePop drops (weight 0: the ratio outside [alpha, beta]),
    with ``icepop_weights``' bounds."""
    with torch.no_grad():
        keep = _icepop_keep(old_logp.detach() - rollout_logp.detach(), beta, alpha)
        return masked_mean((~keep).to(old_logp.dtype), mask).item()


def mismatch_metrics(train_logp: Tensor, rollout_logp: Tensor, mask: Tensor) -> dict[str, float]:
    """Training-inference mismatch of the sampled tokens' log-probs, as masked means.

    "logp_abs_diff": mean |train_logp - rollout_logp|.
    "mismatch_kl_k3": k3 estimate of KL(pi_infer || pi_train) from the inference engine's
    samples, i.e. mean of exp(d) - d - 1 with d = train_logp - rollout_logp.
    """
    with torch.no_grad():
        diff = train_logp - rollout_logp
        return {
            "logp_abs_diff": masked_mean(diff.abs(), mask).item(),
            "mismatch_kl_k3": masked_mean(kl_penalty(rollout_logp, train_logp), mask).item(),
        }
