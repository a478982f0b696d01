"""A scripted corridor environment and a scripted token generator for the multi-turn RL
tests (transitions, auxiliary losses, GiGPO): deterministic, so the tests can say what every
observation and action must be, and trajectories revisit the same states (GiGPO anchors)."""

from __future__ import annotations

import random

from posttrain.models.chat.base import Choice


class CorridorEnv:
    """Rooms 0..goal in a row; "right" / "left" move, anything else stays. Reaching the goal
    gives reward 1 and ends the episode with a final observation."""

    def __init__(self, goal: int = 2) -> None:
        self.goal, self.room = goal, 0

    def reset(self, task: dict) -> str:
        self.room = 0
        return self.describe()

    def describe(self) -> str:
        return f"You are in room {self.room}. Exits: left, right."

    def step(self, action: str) -> tuple[str, float, bool, dict]:
        move = {"right": 1, "left": -1}.get(action.strip(), 0)
        self.room = max(0, self.room + move)
        if self.room >= self.goal:
            return f"You reached room {self.room}, the goal.", 1.0, True, {"won": True}
        return self.describe(), 0.0, False, {"won": False}


class ScriptedReplies:
    """A token generator answering with replies drawn from `replies` by a seeded RNG (each
    reply's tokens then the end-of-turn token), or by `plan[i][turn]` for prompt i."""

    def __init__(self, tokenizer, replies=("right", "left", "wait"), seed=0, plan=None):
        self.tokenizer = tokenizer
        self.replies = list(replies)
        self.rng = random.Random(seed)
        self.plan = plan
        self.calls = 0

    def choice(self, text: str) -> Choice:
        ids = self.tokenizer.encode(text, add_special_tokens=False) + [self.tokenizer.eos_token_id]
        return Choice(text=text, token_ids=ids, logprobs=[-1.0] * len(ids))

    def generate(self, prompts, params):
        out = []
        for i, _ in enumerate(prompts):
            if self.plan is not None:
                text = self.plan[i][self.calls]
            else:
                text = self.rng.choice(self.replies)
            out.append([self.choice(text) for _ in range(params.n)])
        self.calls += 1
        return out
