"""Expert shopping sessions for the warm start (behaviour cloning before RL).

The expert knows which product a goal was written from and plays the store as a careful
shopper would: it searches with the instruction's key words (the price clause and filler
words dropped), pages through the results until the product shows, opens it, selects the
option value closest to each one asked for, and buys. When the key words do not surface the
product within the engine's top hits, it goes back and searches the product's title. Each
session is played through the environment itself, so the chat holds exactly what a policy
will see, and must end with reward 1 (an AssertionError otherwise: the store or the expert is
broken).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from posttrain.envs.webshop.env import WebShopEnv
from posttrain.envs.webshop.pages import BACK_TO_SEARCH, BUY_NOW, NEXT_PAGE
from posttrain.envs.webshop.records import Goal, Product
from posttrain.envs.webshop.reward import normalize_colour, token_set_ratio

_FILLER = frozenset(
    [
        "i",
        "im",
        "i'm",
        "am",
        "a",
        "an",
        "the",
        "need",
        "want",
        "to",
        "buy",
        "looking",
        "look",
        "for",
        "find",
        "me",
        "that",
        "is",
        "are",
        "with",
        "in",
        "and",
        "of",
        "some",
        "please",
        "get",
    ]
)


def key_words(instruction: str) -> str:
    """The instruction without its price clause and filler words."""
    text = instruction.split(", and price lower than")[0].lower()
    words = re.findall(r"[a-z0-9][a-z0-9'.\-]*", text)
    return " ".join(word for word in words if word not in _FILLER)


def closest_value(product: Product, wanted: str) -> str:
    """The product's option value that best matches `wanted` (colour-normalised)."""
    values = [value for values in product.options.values() for value in values]
    if wanted in values:
        return wanted
    return max(values, key=lambda v: token_set_ratio(normalize_colour(v), normalize_colour(wanted)))


class _Session:
    """One expert episode: the chat so far and the environment it acts in."""

    def __init__(self, env: WebShopEnv, task: dict[str, Any]) -> None:
        self.env = env
        self.messages = [{"role": "user", "content": env.reset(task)}]
        self.reward = 0.0
        self.info: dict[str, Any] = {}

    def act(self, action: str) -> None:
        observation, reward, done, info = self.env.step(action)
        assert info["valid"], f"expert action {action!r} was invalid: {info.get('error')}"
        self.messages.append({"role": "assistant", "content": action})
        self.reward, self.info = reward, info
        if not done:
            self.messages.append({"role": "user", "content": observation})

    def find(self, asin: str, query: str) -> bool:
        """Search `query` and page to `asin`; False (on the results) if it is not a hit."""
        self.act(f"search[{query}]")
        hits = self.env.state.hits
        if asin not in hits:
            return False
        for _ in range(hits.index(asin) // self.env.per_page):
            self.act(f"click[{NEXT_PAGE}]")
        return True


def play_expert(env: WebShopEnv, task: dict[str, Any]) -> list[dict[str, str]]:
    """The expert's chat for one task row, played through `env`."""
    session = _Session(env, task)
    goal: Goal = env.goal  # type: ignore[assignment]
    product = env.store.products[goal.asin]
    if not session.find(goal.asin, key_words(goal.instruction_text)):
        session.act(f"click[{BACK_TO_SEARCH}]")
        found = session.find(goal.asin, product.title.lower())
        assert found, f"search never surfaces {goal.asin} for goal {goal.id}"
    session.act(f"click[{goal.asin.lower()}]")
    for wanted in goal.options:
        session.act(f"click[{closest_value(product, wanted)}]")
    session.act(f"click[{BUY_NOW}]")
    assert session.reward == 1.0, (
        f"expert scored {session.reward} on {goal.id}: {session.info.get('reward_parts')}"
    )
    return session.messages


def expert_episodes(
    tasks: Sequence[dict[str, Any]], env: WebShopEnv | None = None, **env_options: Any
) -> list[list[dict[str, str]]]:
    """One expert chat (user = observation, assistant = action) per task row
    (`webshop_tasks` rows); `env_options` build the environment when `env` is not given."""
    env = env if env is not None else WebShopEnv(**env_options)
    return [play_expert(env, task) for task in tasks]
