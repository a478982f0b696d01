"""Simulated users: `WildUser` (a style, a topic mix and a personal subset of phrasings) and
`make_users`, which draws them from their own seeded stream."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from posttrain.data.wild_conversations.tables import (
    CORRECTIONS,
    ENGAGED,
    FAMILIES,
    LOCAL,
    NEUTRAL,
    NOISE,
    REFUSAL_PUSHBACK,
    REJECTIONS,
    SATISFIED,
)


@dataclass
class WildUser:
    """One simulated user: a style, a topic mix and a personal subset of phrasings."""

    user_id: str
    language: str
    verbose: float
    polite: float
    rude: float
    typo_rate: float
    follow_up: float
    """Probability of writing again after each assistant reply."""
    feedback: float
    """Probability that a follow-up reacts to the reply at all (else a neutral new request)."""
    harsh: float
    """Shifts reactions to bad replies from corrections towards rejections."""
    noise: float
    """Probability of a message that says nothing useful ("ok", "?")."""
    delay: float
    """Probability that satisfaction comes two turns later, after a neutral request."""
    topics: dict[str, float]
    lexicon: dict[str, tuple[str, ...]] = field(default_factory=dict)


def make_users(n_users: int, seed: int, prefix: str = "user") -> list[WildUser]:
    """`n_users` users drawn from their own stream, so adding conversations keeps them."""
    if n_users < 1:
        raise ValueError(f"n_users must be >= 1, got {n_users}")
    rng = random.Random(f"wild-users:{prefix}:{seed}")
    users = []
    for index in range(n_users):
        language = "English"
        if rng.random() < 0.06:
            language = rng.choice(sorted(LOCAL))
        if language == "English":
            weights = {family: 0.2 + rng.random() ** 2 for family in FAMILIES}
            weights["harmful"] *= 0.25
            weights["howto"] *= 0.6
            lexicon = {
                "sat": tuple(rng.sample(SATISFIED, 4)),
                "eng": tuple(rng.sample(ENGAGED, 3)),
                "corr": tuple(rng.sample(CORRECTIONS, 3)),
                "rej": tuple(rng.sample(REJECTIONS, 3)),
                "push": tuple(rng.sample(REFUSAL_PUSHBACK, 2)),
                "neutral": tuple(rng.sample(NEUTRAL, 3)),
                "noise": tuple(rng.sample(NOISE, 2)),
            }
        else:
            weights = {"arithmetic": 1.0}
            lexicon = {key: value for key, value in LOCAL[language].items() if key != "ask"}
        silent = rng.random() < 0.15
        users.append(
            WildUser(
                user_id=f"{prefix}{index:04d}",
                language=language,
                verbose=rng.random() * 0.6,
                polite=rng.random() * 0.5,
                rude=rng.random() * 0.4 if rng.random() < 0.35 else 0.0,
                typo_rate=rng.choice((0.0, 0.0, 0.0, 0.02, 0.05, 0.1)),
                follow_up=rng.uniform(0.4, 0.85),
                feedback=0.05 if silent else rng.uniform(0.5, 0.95),
                harsh=rng.random(),
                noise=rng.uniform(0.0, 0.08),
                delay=0.0 if language != "English" else rng.uniform(0.05, 0.3),
                topics=weights,
                lexicon=lexicon,
            )
        )
    return users
