"""Environment transitions (s_t, a_t, s_t+1) of multi-turn rollouts.

EnvRL's auxiliary objectives (state prediction and inverse dynamics) learn from these; they
come from the `Turn` records `rollout_multi_turn` keeps, so nothing is re-run or re-parsed.
"""

from __future__ import annotations

from dataclasses import dataclass

from posttrain.rl.sample import Sample


@dataclass(frozen=True)
class Transition:
    """One environment step: the state before the action, the action, the state after."""

    state: str
    action: str
    next_state: str
    turn: int
    """0-based index of the policy move within its trajectory."""


def transitions(sample: Sample) -> list[Transition]:
    """The sample's transitions in turn order, the episode's final one included.

    A move the environment never answered (a reply cut by the token limit, a failing
    environment) has no next state and yields no transition. A single-turn sample has none.
    """
    return [
        Transition(turn.observation, turn.action, turn.next_observation, index)
        for index, turn in enumerate(sample.turn_records)
        if turn.next_observation is not None
    ]
