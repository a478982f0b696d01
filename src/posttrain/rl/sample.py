"""The one record rollout produces and training consumes.

Token ids are those produced at generation time and never re-tokenised from text; the loss
mask marks which response tokens the model generated (environment and tool tokens are 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["completed", "truncated", "aborted", "failed"]


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
