"""A small multi-turn environment: answer a sum, and on a wrong answer try again."""

from __future__ import annotations

from typing import Any

from posttrain.envs.registry import register_env


@register_env("arithmetic_retry")
class ArithmeticRetryEnv:
    """Reward 1 for a correct answer on any attempt, 0 when the attempts run out."""

    def __init__(self, attempts: int = 2, retry_message: str = "Not quite. Try again.") -> None:
        self.attempts = attempts
        self.retry_message = retry_message
        self.answer = ""
        self.tries = 0

    def reset(self, task: dict[str, Any]) -> str:
        prompt = task["prompt"]
        self.answer = str(task["answer"]).strip()
        self.tries = 0
        return prompt if isinstance(prompt, str) else prompt[-1]["content"]

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        self.tries += 1
        correct = action.strip() == self.answer
        if correct or self.tries >= self.attempts:
            return "", float(correct), True, {"correct": correct, "tries": self.tries}
        return self.retry_message, 0.0, False, {"correct": False, "tries": self.tries}
