"""What a policy loss sees: one micro-batch of aligned log-prob tensors.

Its own module so that losses defined elsewhere (online DPO, a user's) and the registry in
`objectives` both depend on it without depending on each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:
    from posttrain.rl.config import LossConfig


@dataclass(frozen=True)
class LossInputs:
    """One micro-batch: [B, T] log-prob tensors aligned with `mask` (1 = a policy token)."""

    logp: Tensor
    """The policy's log-probs now (carries the gradient)."""
    old_logp: Tensor
    """pi_old before this update (equal to `logp.detach()` when not recomputed)."""
    rollout_logp: Tensor
    """What the generator reported when it sampled the tokens."""
    ref_logp: Tensor | None
    """The frozen reference's log-probs (when the loss asks for a reference)."""
    advantages: Tensor
    """[B] per-sample advantages, or [B, T] per-token ones aligned with `mask` when an
    estimator sets them (GiGPO's per-turn advantages)."""
    mask: Tensor
    config: LossConfig
    max_tokens: int
    """The rollout's generation limit (Dr.GRPO's constant normaliser)."""
