"""Premises of the story world, its configuration, made-up names and text measures."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache

from posttrain.data.stories.pools import (
    CODAS,
    GOALS,
    OBSTACLES,
    ONSETS,
    ROLES,
    SETTINGS,
    TRAITS,
    VOWELS,
)
from posttrain.data.stories.routes import ROUTES, check_route
from posttrain.data.stories.templates import (
    CLICHE_OPENING,
    CLICHE_OVERCOME,
    CLICHES,
    CONTRA_TEMPLATES,
    TEMPLATES,
)


@dataclass(frozen=True)
class Premise:
    """What a story is asked to be about; `prompt()` is the text a model is given."""

    id: str
    character: str
    role: str
    trait: str
    companion: str
    goal: str
    obstacle: str
    setting: str
    obstacle_noun: str = "the problem"
    details: tuple[str, ...] = ("the old square", "the long road home")

    def prompt(self) -> str:
        return (
            f"Write a short story about {self.character}, {with_article(self.trait)} "
            f"{self.role} who wants to {self.goal} but {self.obstacle}. Set it in "
            f"{self.setting}, and give {self.character} a friend called {self.companion}."
        )


@dataclass
class StoryWorldConfig:
    """Knobs of the story world and of `build_story_data` (`posttrain.config` loads it)."""

    seed: int = 0
    """Seed of the world: premises, stories, degradations and their order."""
    n_train_premises: int = 500
    """Premises whose stories become training preference pairs."""
    n_test_premises: int = 300
    """Premises (disjoint from training) whose stories become benchmark instances."""
    pairs_per_premise: int = 4
    """Chosen/rejected pairs per training premise, each with a freshly worded chosen story."""
    n_rejected: int = 3
    """Rejected stories per benchmark instance (StoryRMB uses 3)."""
    min_words: int = 80
    """Lower end of the target word count every candidate story is fitted to (below about
    80 a degraded story cannot always shrink to it, and would be longer than the chosen)."""
    max_words: int = 125
    """Upper end of that target; chosen and rejected draw from the same range."""
    min_sentences: int = 5
    """Fewest sentences in a story (the five core ones: opening, goal, obstacle, overcoming
    it, reaching the goal)."""
    max_sentences: int = 10
    """Most sentences in a story; fitting stops adding optional ones here."""
    routes: tuple[str, ...] = tuple(ROUTES)
    """Routes used for rejected stories (keys of ROUTES)."""
    flawed_rate: float = 0.5
    """Probability that a candidate in `candidate_pool` is a rejected variant."""
    pool_size: int = 8
    """Candidates per test premise in the best-of-n pools (`pools.test.jsonl`)."""

    def __post_init__(self) -> None:
        counts = ("n_train_premises", "n_test_premises", "pairs_per_premise", "n_rejected")
        for name in (*counts, "pool_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.min_words <= self.max_words:
            raise ValueError(
                f"need 0 < min_words <= max_words, got {self.min_words}, {self.max_words}"
            )
        if not 1 <= self.min_sentences <= self.max_sentences:
            raise ValueError(
                f"need 1 <= min_sentences <= max_sentences, got "
                f"{self.min_sentences}, {self.max_sentences}"
            )
        self.routes = tuple(self.routes)
        if not self.routes:
            raise ValueError("routes must name at least one route, got ()")
        for route in self.routes:
            check_route(route)
        if not 0.0 <= self.flawed_rate <= 1.0:
            raise ValueError(f"flawed_rate must be in [0, 1], got {self.flawed_rate}")


DEFAULT_CONFIG = StoryWorldConfig()


def as_rng(rng: random.Random | int) -> random.Random:
    """`rng` itself, or a generator seeded with it."""
    return rng if isinstance(rng, random.Random) else random.Random(rng)


# ---------------------------------------------------------------------------- text measures


def with_article(word: str) -> str:
    """The word with its indefinite article: "a pear", "an apple"."""
    return ("an " if word[0] in "aeiou" else "a ") + word


@lru_cache(maxsize=1 << 16)  # fitting asks for the same sentences' lengths many times
def word_count(text: str) -> int:
    """Whitespace-separated words: the length heuristic's score."""
    return len(text.split())


def tokens(text: str) -> list[str]:
    """Lower-cased words, hyphenated and apostrophed ones kept whole."""
    return re.findall(r"[a-z]+(?:['-][a-z]+)*", text.lower())


def distinct_words(text: str) -> int:
    """Number of distinct lower-cased words: the vocabulary heuristic's score."""
    return len(set(tokens(text)))


def mentions(text: str, name: str) -> bool:
    """Whether `name` occurs in `text` as a whole word."""
    return re.search(rf"\b{re.escape(name)}\b", text) is not None


# ---------------------------------------------------------------------------- names and premises


def _make_name(rng: random.Random) -> str:
    n = rng.choice([2, 2, 2, 3])
    onsets = [rng.choice(ONSETS)] + [rng.choice(ONSETS[:-1]) for _ in range(n - 1)]
    name = "".join(onset + rng.choice(VOWELS) for onset in onsets)
    return (name + rng.choice(CODAS)).capitalize()


@lru_cache(maxsize=1)
def _world_vocabulary() -> frozenset[str]:
    """Every word the templates and pools use, so a made-up name never equals one of them."""
    texts = [t for ts in (*TEMPLATES.values(), *CLICHES.values()) for t in ts]
    texts += [CLICHE_OPENING, *CLICHE_OVERCOME, *CONTRA_TEMPLATES]
    texts += [*TRAITS, *ROLES, *GOALS, *OBSTACLES, *OBSTACLES.values()]
    texts += list(SETTINGS) + [d for ds in SETTINGS.values() for d in ds]
    return frozenset(tokens(" ".join(texts)))


def fresh_name(rng: random.Random, taken: set[str]) -> str:
    """A made-up name not in `taken` (to which it is added) and not a word of the world."""
    vocabulary = _world_vocabulary()
    while True:
        name = _make_name(rng)
        if len(name) >= 3 and name not in taken and name.lower() not in vocabulary:
            taken.add(name)
            return name


def new_premise(pid: str, rng: random.Random, names: set[str], combos: set[tuple]) -> Premise:
    """A premise with a (goal, obstacle, setting) not in `combos` and names not in `names`;
    both sets are updated."""
    while True:
        goal, obstacle = rng.choice(GOALS), rng.choice(list(OBSTACLES))
        setting = rng.choice(list(SETTINGS))
        if (goal, obstacle, setting) not in combos:
            combos.add((goal, obstacle, setting))
            break
    return Premise(
        id=pid,
        character=fresh_name(rng, names),
        role=rng.choice(ROLES),
        trait=rng.choice(TRAITS),
        companion=fresh_name(rng, names),
        goal=goal,
        obstacle=obstacle,
        setting=setting,
        obstacle_noun=OBSTACLES[obstacle],
        details=SETTINGS[setting],
    )


def make_premises(n: int, seed: int) -> list[Premise]:
    """`n` distinct premises; every character and companion name is unique in the list."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    capacity = len(GOALS) * len(OBSTACLES) * len(SETTINGS)
    if n > capacity // 2:
        raise ValueError(f"n must be at most {capacity // 2} (distinct premises), got {n}")
    rng = random.Random(f"story-premises:{seed}")
    names: set[str] = set()
    combos: set[tuple] = set()
    return [new_premise(f"s{seed}-p{i:05d}", rng, names, combos) for i in range(n)]
