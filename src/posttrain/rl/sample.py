"""The one record rollout produces and training consumes.

Token ids are those produced at generation time and never re-tokenised from text; the loss
mask marks which response tokens the model generated (environment and tool tokens are 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["completed", "truncated", "aborted", "failed"]


@dataclass
class Turn:
    """One policy move of a multi-turn rollout, as text and as a span of `response_ids`.

    Kept so that transitions (s_t, a_t, s_t+1) and per-turn advantages (GiGPO) can be
    built after the rollout without re-tokenising anything.
    """

    observation: str
    """What the policy saw before acting: the environment's text (s_t)."""
    action: str
    """The policy's reply text (a_t)."""
    next_observation: str | None
    """The environment's answer (s_t+1), including the final one of an episode that ended;
    None when the environment was never stepped (reply cut by the token limit, or the
    environment failed)."""
    reward: float
    """The environment's reward for this step."""
    start: int
    end: int
    """The action's tokens are `response_ids[start:end]`."""
    done: bool = False


@dataclass
class Sample:
    """One rollout: a prompt and its response (single turn) or whole trajectory (multi-turn)."""

    prompt_ids: list[int]
    response_ids: list[int]
    loss_mask: list[int]
    """Per response token: 1 if the policy generated it, 0 for environment/tool tokens."""
    rollout_logprobs: list[float]
    """Per response token, the generator's log-prob (0.0 where the mask is 0)."""
    group_id: int
    """Samples of the same prompt share a group id (GRPO normalises within it)."""
    status: Status = "completed"
    weight_version: int = 0
    """Version of the weights that generated the response (the oldest, if several)."""
    token_versions: list[int] | None = None
    """Per response token, the weight version that generated it (asynchronous rollout)."""
    prompt: Any = None
    """The prompt as given (chat messages or text), for reward functions and logs."""
    completion: str = ""
    """The response text the policy wrote (the last turn, for multi-turn)."""
    columns: dict[str, Any] = field(default_factory=dict)
    """Dataset columns of the prompt's row, passed to reward functions."""
    reward: float = 0.0
    reward_breakdown: dict[str, float | None] = field(default_factory=dict)
    advantage: float = 0.0
    token_advantages: list[float] | None = None
    """Per response token advantages (GiGPO puts each turn's own on its tokens); None: the
    scalar `advantage` applies to every token."""
    turn_records: list[Turn] = field(default_factory=list)
    """Multi-turn rollouts: one record per policy move, in order (empty for single turn)."""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not len(self.response_ids) == len(self.loss_mask) == len(self.rollout_logprobs):
            raise ValueError(
                f"response_ids ({len(self.response_ids)}), loss_mask ({len(self.loss_mask)}) "
                f"and rollout_logprobs ({len(self.rollout_logprobs)}) must have equal lengths"
            )
        if self.token_versions is not None and len(self.token_versions) != len(self.response_ids):
            raise ValueError(
                f"token_versions ({len(self.token_versions)}) must have one entry per "
                f"response token ({len(self.response_ids)})"
            )

    @property
    def generated_tokens(self) -> int:
        return sum(self.loss_mask)


Trajectory = Sample  # a multi-turn rollout is a Sample whose mask has environment gaps
