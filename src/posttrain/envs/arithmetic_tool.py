"""A multi-turn tool-use environment that a tiny arithmetic policy can act in.

The asynchronous-RL demo needs an environment with tool-result observations, but its policy
is a tiny model warm-started only to answer "What is a+b?" with the number. So a direct
answer is always a valid move and is rewarded, and the tool is optional:

- `check N` (case-insensitive, optional colon, N an integer) calls a checker tool. It
  replies "tool: N is too low", "too high" or "correct", uses one of `max_tool_calls`, costs
  `tool_call_penalty` reward, and does not end the episode.
- Any other reply is a final answer: reward 1.0 and the episode ends if it equals the
  answer, else the tool's verdict comes back ("tool: N is too low; answer again") and the
  policy gets another attempt while `attempts` remain; the last wrong attempt ends the
  episode with reward 0.0. A policy that never calls the tool still sees multi-turn
  feedback this way.
- A `check` after the tool calls run out counts as a wrong attempt.

Integer answers compare as integers ("082" equals "82"); other answers as stripped strings.
"""

from __future__ import annotations

import re
from typing import Any

from posttrain.envs.registry import register_env

_CHECK = re.compile(r"\s*check\s*:?\s*([+-]?[0-9]+)\s*", re.IGNORECASE)
_INTEGER = re.compile(r"\s*([+-]?[0-9]+)\s*")


def _as_int(text: str) -> int | None:
    match = _INTEGER.fullmatch(text)
    return int(match.group(1)) if match else None


@register_env("arithmetic_tool")
class ArithmeticToolEnv:
    """Answer a sum directly or after checking guesses with a tool; see the module docstring."""

    def __init__(
        self, attempts: int = 2, max_tool_calls: int = 2, tool_call_penalty: float = 0.0
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        if max_tool_calls < 0:
            raise ValueError(f"max_tool_calls must be >= 0, got {max_tool_calls}")
        self.max_attempts = attempts
        self.max_tool_calls = max_tool_calls
        self.tool_call_penalty = tool_call_penalty
        self.answer = ""
        self.attempts = 0
        self.tool_calls = 0
        self.done = True

    def reset(self, task: dict[str, Any]) -> str:
        prompt = task["prompt"]
        self.answer = str(task["answer"]).strip()
        self.attempts = 0
        self.tool_calls = 0
        self.done = False
        return prompt if isinstance(prompt, str) else prompt[-1]["content"]

    def _verdict(self, guess: str) -> tuple[bool, str]:
        """Whether `guess` is right, and the tool's words for it (too low/too high/correct)."""
        value, target = _as_int(guess), _as_int(self.answer)
        if value is not None and target is not None:
            if value == target:
                return True, f"{value} is correct"
            return False, f"{value} is too {'low' if value < target else 'high'}"
        guess = guess.strip()
        if guess == self.answer:
            return True, f"{guess!r} is correct"
        return False, f"{guess!r} is wrong"

    def _info(self, correct: bool) -> dict[str, Any]:
        return {"correct": correct, "attempts": self.attempts, "tool_calls": self.tool_calls}

    def step(self, action: str) -> tuple[str, float, bool, dict[str, Any]]:
        if self.done:
            raise RuntimeError("the episode is over (or never started); call reset first")
        check = _CHECK.fullmatch(action)
        if check and self.tool_calls < self.max_tool_calls:
            self.tool_calls += 1
            _, verdict = self._verdict(check.group(1))
            return f"tool: {verdict}", 0.0 - self.tool_call_penalty, False, self._info(False)

        self.attempts += 1
        if check:
            feedback = "no tool calls left"
        else:
            correct, feedback = self._verdict(action)
            if correct:
                self.done = True
                return "", 1.0, True, self._info(True)
        if self.attempts >= self.max_attempts:
            self.done = True
            return "", 0.0, True, self._info(False)
        return f"tool: {feedback}; answer again", 0.0, False, self._info(False)
