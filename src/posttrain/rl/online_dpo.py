"""Online DPO in the RL engine (`loss.kind: online_dpo`), as WildReward (THU-KEG 2026) trains
a policy with its reward model.

Each step rolls out `rollout.n` samples per prompt from the current policy and scores them
with the configured reward functions (a reward model is `rewards: ["reward-model:DIR"]`).
Per group the highest-reward sample is *chosen* and the lowest *rejected*; a group whose
rewards are all equal says nothing about preference and is skipped (counted). The loss is
DPO's, -log sigmoid(beta * [(log pi_c - log pi_r) - (log ref_c - log ref_r)]), with
log-probs summed over the response tokens the policy generated (loss mask 1) and a frozen
reference (a copy of the starting policy, or the base with the LoRA adapter disabled).

beta is `loss.kl_coef`: DPO's beta *is* the coefficient of the KL term in the objective it
optimises (max E[r] - beta KL(pi || ref)), and reusing the field keeps every existing
config, and the run directories recipes compare configs against, unchanged.

Why the RL engine and not TRL's `OnlineDPOTrainer` (TRL 1.16,
`trl.experimental.online_dpo`): TRL's trainer does run on CPU without vLLM and accepts
TRL-signature reward functions or a sequence-classification reward model, but it hard-codes
two completions per prompt (`num_generations = 2`), so it cannot pick the best and worst of
n rollouts; it also trains on tied pairs (the first completion counts as chosen when the
rewards are equal) instead of skipping them, and it lives in TRL's experimental namespace
(unstable API, import-time warning). Getting WildReward's pairs out of it would mean
rewriting its generation and training step. The RL engine already does n rollouts per
prompt, TRL-signature rewards (reward models included), the reference policy, held-out
evaluation, metrics.jsonl, exact resume and the asynchronous schedule, so only the pair
selection and the loss are new; they are pure functions here, registered as the policy loss
`online_dpo` in `posttrain.rl.objectives` (pairs stay together in a micro-batch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from posttrain.rl.config import RLConfig
from posttrain.rl.sample import Sample

if TYPE_CHECKING:
    from posttrain.rl.loss_inputs import LossInputs


@dataclass(frozen=True)
class PairSelection:
    """Indices of (chosen, rejected) samples, one pair per informative group."""

    pairs: list[tuple[int, int]]
    skipped: int
    """Groups with no preference: all rewards equal (a group of one included)."""


def select_pairs(group_ids: Sequence[int], rewards: Sequence[float]) -> PairSelection:
    """Per group: chosen = the highest reward, rejected = the lowest (WildReward's rule).

    Ties for the top or bottom go to the earliest sample, so selection is deterministic.
    Groups come out in order of first appearance; non-finite rewards are left out of their
    group (they cannot be ranked), and a group with nothing left to compare is skipped.
    """
    if len(group_ids) != len(rewards):
        raise ValueError(f"got {len(group_ids)} group ids for {len(rewards)} rewards")
    members: dict[int, list[int]] = {}
    for index, group in enumerate(group_ids):
        members.setdefault(group, [])
        if math.isfinite(rewards[index]):
            members[group].append(index)
    pairs: list[tuple[int, int]] = []
    skipped = 0
    for indices in members.values():
        if not indices:
            skipped += 1
            continue
        best = max(indices, key=lambda i: (rewards[i], -i))
        worst = min(indices, key=lambda i: (rewards[i], i))
        if rewards[best] == rewards[worst]:
            skipped += 1
        else:
            pairs.append((best, worst))
    return PairSelection(pairs, skipped)


def sequence_logprobs(logp: Tensor, mask: Tensor) -> Tensor:
    """Sum of per-token log-probs over the mask, [B, T] -> [B] (DPO scores whole responses).

    Masked positions are ignored even when they hold inf or NaN, and get no gradient.
    """
    if logp.shape != mask.shape:
        raise ValueError(f"logp {tuple(logp.shape)} and mask {tuple(mask.shape)} differ")
    mask = mask.to(logp.dtype)
    return torch.where(mask != 0, logp * mask, 0.0).sum(-1)


def dpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    beta: float = 0.1,
) -> tuple[Tensor, dict[str, float]]:
    """DPO's sigmoid loss (Rafailov et al. 2023) on summed response log-probs, mean over pairs.

    loss = -log sigmoid(beta * [(pi_c - pi_r) - (ref_c - ref_r)]). Gradient flows through
    the policy terms only. Metrics use TRL's names: rewards/chosen = beta * (pi_c - ref_c)
    (the implicit reward), rewards/rejected likewise, rewards/margins their difference,
    rewards/accuracies the share of pairs with a positive margin, logps/* the policy sums.
    """
    shapes = {tuple(t.shape) for t in (policy_chosen, policy_rejected, ref_chosen, ref_rejected)}
    if len(shapes) != 1 or policy_chosen.ndim != 1:
        raise ValueError(f"all four log-prob tensors must share one [P] shape, got {shapes}")
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    chosen = policy_chosen - ref_chosen.detach()
    rejected = policy_rejected - ref_rejected.detach()
    loss = -F.logsigmoid(beta * (chosen - rejected)).mean()
    with torch.no_grad():
        margins = beta * (chosen - rejected)
        metrics = {
            "rewards/chosen": (beta * chosen).mean().item(),
            "rewards/rejected": (beta * rejected).mean().item(),
            "rewards/margins": margins.mean().item(),
            "rewards/accuracies": (margins > 0).to(chosen.dtype).mean().item(),
            "logps/chosen": policy_chosen.mean().item(),
            "logps/rejected": policy_rejected.mean().item(),
        }
    return loss, metrics


def check_config(config: RLConfig) -> None:
    """Refuse settings that mean nothing for online DPO, before any model is loaded."""
    loss = config.loss
    if loss.kl_coef <= 0:
        raise ValueError(
            "loss.kind=online_dpo takes DPO's beta from loss.kl_coef (the KL coefficient of "
            "the objective DPO optimises); set it, e.g. --set loss.kl_coef=0.1"
        )
    if config.rollout.n < 2:
        raise ValueError(
            f"loss.kind=online_dpo needs rollout.n >= 2 to form pairs, got {config.rollout.n}"
        )
    for name in ("tis_cap", "icepop_beta", "behaviour_cap"):
        if getattr(loss, name) is not None:
            raise ValueError(f"loss.{name} is a PPO-family correction; online_dpo does not use it")


def prepare_pairs(samples: list[Sample], config: RLConfig) -> tuple[list[Sample], dict[str, float]]:
    """The rows online DPO trains on: each group's chosen and rejected sample, adjacent
    (chosen first), and the pair metrics TRL's online DPO logs. With no informative pair the
    batch is empty: the optimizer does not step, the scheduler still does (the trainer's
    rule for an empty batch), keeping the learning-rate schedule tied to the step count."""
    selection = select_pairs([s.group_id for s in samples], [s.reward for s in samples])
    metrics: dict[str, float] = {
        "pairs/used": float(len(selection.pairs)),
        "pairs/skipped_groups": float(selection.skipped),
        "beta": config.loss.kl_coef,
    }
    if not selection.pairs:
        return [], metrics
    chosen = float(np.mean([samples[c].reward for c, _ in selection.pairs]))
    rejected = float(np.mean([samples[r].reward for _, r in selection.pairs]))
    metrics.update(
        {
            "objective/scores_chosen": chosen,
            "objective/scores_rejected": rejected,
            "objective/scores_margin": chosen - rejected,
        }
    )
    return [samples[i] for pair in selection.pairs for i in pair], metrics


def online_dpo_loss(inputs: LossInputs) -> tuple[Tensor, dict[str, float]]:
    """DPO's loss on a micro-batch of (chosen, rejected) row pairs, beta = `loss.kl_coef`."""
    if inputs.ref_logp is None:
        raise ValueError("online_dpo needs the reference log-probs")
    policy = sequence_logprobs(inputs.logp, inputs.mask)
    ref = sequence_logprobs(inputs.ref_logp, inputs.mask)
    beta = inputs.config.kl_coef
    loss, metrics = dpo_loss(policy[0::2], policy[1::2], ref[0::2], ref[1::2], beta)
    # TRL's objective/kl: the summed log-ratio to the reference, per sequence.
    metrics["objective/kl"] = (policy.detach() - ref).mean().item()
    return loss, metrics
