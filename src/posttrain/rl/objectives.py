"""Policy losses and advantage estimators, registered by name (as verl's `register_policy_loss`
and `register_adv_est`), so a user plugs in a loss the way they plug in a reward.

`loss.kind` and `loss.advantage` take a registered name or a dotted import path
(`my_pkg.losses:my_loss` or `my_pkg.losses.my_loss`) to a `PolicyLoss` / estimator function.

A policy loss sees one micro-batch at a time as `LossInputs` and returns the micro-batch's
loss (a mean over its normalising unit) and float metrics; the trainer weights each
micro-batch by its share of the unit over the whole mini-batch on every process, so the
summed gradient is the mini-batch loss's gradient however the batch is split.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from posttrain.rl import gigpo, losses, online_dpo
from posttrain.rl.loss_inputs import LossInputs
from posttrain.specs import SpecKind, parse_spec, resolve_import_path

if TYPE_CHECKING:
    from posttrain.rl.config import LossConfig, RLConfig
    from posttrain.rl.sample import Sample


LossFn = Callable[[LossInputs], tuple[Tensor, dict[str, float]]]
Prepare = Callable[[list["Sample"], "RLConfig"], tuple[list["Sample"], dict[str, float]]]


@dataclass(frozen=True)
class PolicyLoss:
    """A loss and what the trainer must compute for it."""

    fn: LossFn
    needs_old_logp: Callable[[RLConfig], bool] = lambda config: config.mini_batches > 1
    """Whether pi_old must be recomputed before the first optimizer step."""
    needs_reference: Callable[[LossConfig], bool] = lambda loss: loss.kl_coef > 0
    prepare: Prepare | None = None
    """Turns the rolled-out batch into the rows to train on (online DPO: chosen / rejected
    pairs, adjacent), with metrics; None trains on every sample."""
    rows_together: int = 1
    """Consecutive rows that must share a micro-batch (2 for DPO's pairs)."""
    unit: Callable[[LossConfig], Literal["tokens", "rows"]] = lambda loss: (
        "tokens" if loss.aggregation == "token-mean" else "rows"
    )
    """What the loss is a mean over, so that micro-batches are weighted by their share."""


AdvantageFn = Callable[[Tensor, int, "LossConfig"], Tensor]
"""(rewards [N] in consecutive groups, group size, loss config) -> advantages [N]."""


@dataclass(frozen=True)
class SampleAdvantage:
    """An estimator that needs the samples themselves (their turns), not only the rewards:
    it sets `advantage` and, where it has them, `token_advantages` on each sample, and
    returns metrics."""

    fn: Callable[[list[Sample], int, LossConfig], dict[str, float]]


POLICY_LOSSES: dict[str, PolicyLoss] = {}
ADVANTAGES: dict[str, AdvantageFn | SampleAdvantage] = {}


def register_policy_loss(name: str, **options: object) -> Callable[[LossFn], LossFn]:
    """Decorator: register `fn` as the policy loss `name` (options: see `PolicyLoss`)."""

    def wrap(fn: LossFn) -> LossFn:
        POLICY_LOSSES[name] = PolicyLoss(fn, **options)  # type: ignore[arg-type]
        return fn

    return wrap


def register_advantage(name: str) -> Callable[[AdvantageFn], AdvantageFn]:
    """Decorator: register `fn` as the advantage estimator `name`."""

    def wrap(fn: AdvantageFn) -> AdvantageFn:
        ADVANTAGES[name] = fn
        return fn

    return wrap


def _lookup(name: str, registry: dict[str, Any], key: str) -> object:
    """A registered entry, or what an import path names (`posttrain.specs`); an unknown name
    is an error that lists the registered ones."""
    spec = parse_spec(name, (SpecKind.NAME, SpecKind.IMPORT_PATH), what=key, names=registry)
    if spec.kind is SpecKind.NAME:
        return registry[name]
    return resolve_import_path(spec, key, must_be_callable=False)


def policy_loss(name: str) -> PolicyLoss:
    """The registered loss `name`, or the `PolicyLoss` (or plain loss function) at a path."""
    found = _lookup(name, POLICY_LOSSES, "loss.kind")
    return found if isinstance(found, PolicyLoss) else PolicyLoss(found)  # type: ignore[arg-type]


def advantage_estimator(name: str) -> AdvantageFn | SampleAdvantage:
    """The registered estimator `name`, or the function (or `SampleAdvantage`) at a path."""
    return _lookup(name, ADVANTAGES, "loss.advantage")  # type: ignore[return-value]


def assign_advantages(
    estimator: AdvantageFn | SampleAdvantage,
    samples: list[Sample],
    group_size: int,
    config: LossConfig,
) -> dict[str, float]:
    """Set each sample's advantage (consecutive groups of `group_size`); return the
    estimator's metrics (none for reward-only estimators)."""
    if not samples:
        return {}
    if isinstance(estimator, SampleAdvantage):
        return estimator.fn(samples, group_size, config)
    advantages = estimator(torch.tensor([s.reward for s in samples]), group_size, config)
    for sample, advantage in zip(samples, advantages.tolist(), strict=True):
        sample.advantage = advantage
    return {}


# --- built-in advantage estimators ------------------------------------------------------------


@register_advantage("grpo")
def grpo_advantages(rewards: Tensor, group_size: int, config: LossConfig) -> Tensor:
    """GRPO (std-scaled when `scale_advantages`) or Dr.GRPO (unscaled)."""
    return losses.group_advantages(rewards, group_size, scale=config.scale_advantages)


@register_advantage("rloo")
def rloo_advantages(rewards: Tensor, group_size: int, config: LossConfig) -> Tensor:
    """RLOO (Ahmadian et al. 2024): reward minus the mean of the other samples of the group."""
    if group_size < 2:
        return torch.zeros_like(rewards)
    groups = rewards.reshape(-1, group_size)
    others = (groups.sum(dim=1, keepdim=True) - groups) / (group_size - 1)
    return (groups - others).reshape(-1)


ADVANTAGES["gigpo"] = SampleAdvantage(gigpo.gigpo_advantages)
"""GiGPO (Feng et al. 2025): GRPO's episode advantage plus omega x a step advantage on each
turn's tokens, from anchor states shared across the group (posttrain.rl.gigpo)."""


# --- built-in policy losses -------------------------------------------------------------------


def _common(inputs: LossInputs) -> dict[str, object]:
    cfg = inputs.config
    return {
        "eps_low": cfg.eps_low,
        "eps_high": cfg.eps_high,
        "aggregation": cfg.aggregation,
        "max_tokens": inputs.max_tokens,
    }


def with_kl(inputs: LossInputs, loss: Tensor, metrics: dict[str, float]) -> Tensor:
    """Add `kl_coef` x the masked mean KL to the reference, when there is one."""
    if inputs.ref_logp is None or inputs.config.kl_coef <= 0:
        return loss
    kl = losses.masked_mean(
        losses.kl_penalty(inputs.logp, inputs.ref_logp, kind=inputs.config.kl_estimator),
        inputs.mask,
    )
    metrics["kl"] = kl.item()
    return loss + inputs.config.kl_coef * kl


def _ppo_needs_old(config: RLConfig) -> bool:
    loss = config.loss
    return config.mini_batches > 1 or bool(loss.tis_cap) or bool(loss.icepop_beta)


@register_policy_loss("ppo", needs_old_logp=_ppo_needs_old)
def ppo_loss(inputs: LossInputs) -> tuple[Tensor, dict[str, float]]:
    """GRPO's clipped surrogate against pi_old, optionally with TIS or IcePop corrections
    against the rollout log-probs."""
    cfg = inputs.config
    weights = None
    corrected: dict[str, float] = {}  # what each correction truncates or drops
    old, rollout, mask = inputs.old_logp, inputs.rollout_logp, inputs.mask
    if cfg.tis_cap:
        weights = losses.tis_weights(old, rollout, cap=cfg.tis_cap)
        corrected["tis_truncated_frac"] = losses.tis_truncated_frac(old, rollout, mask, cfg.tis_cap)
    if cfg.icepop_beta:
        ice = losses.icepop_weights(old, rollout, beta=cfg.icepop_beta)
        weights = ice if weights is None else weights * ice
        corrected["icepop_masked_frac"] = losses.icepop_masked_frac(
            old, rollout, mask, cfg.icepop_beta
        )
    loss, metrics = losses.policy_loss(
        inputs.logp,
        old,
        inputs.advantages,
        mask,
        weights=weights,
        **_common(inputs),  # type: ignore[arg-type]
    )
    metrics.update(corrected)
    return with_kl(inputs, loss, metrics), metrics


@register_policy_loss("direct_is")
def direct_is(inputs: LossInputs) -> tuple[Tensor, dict[str, float]]:
    """GLM-5's direct double-sided importance sampling against the rollout log-probs."""
    loss, metrics = losses.direct_is_loss(
        inputs.logp,
        inputs.rollout_logp,
        inputs.advantages,
        inputs.mask,
        **_common(inputs),  # type: ignore[arg-type]
    )
    return with_kl(inputs, loss, metrics), metrics


@register_policy_loss("decoupled_ppo", needs_old_logp=lambda config: True)
def decoupled_ppo(inputs: LossInputs) -> tuple[Tensor, dict[str, float]]:
    """AReaL's decoupled PPO: clip against the recomputed proximal policy (pi_old)."""
    loss, metrics = losses.decoupled_ppo_loss(
        inputs.logp,
        inputs.old_logp,
        inputs.rollout_logp,
        inputs.advantages,
        inputs.mask,
        behaviour_cap=inputs.config.behaviour_cap,
        **_common(inputs),  # type: ignore[arg-type]
    )
    return with_kl(inputs, loss, metrics), metrics


POLICY_LOSSES["online_dpo"] = PolicyLoss(
    online_dpo.online_dpo_loss,
    needs_old_logp=lambda config: False,
    needs_reference=lambda loss: True,
    prepare=online_dpo.prepare_pairs,
    rows_together=2,
    unit=lambda loss: "rows",
)
