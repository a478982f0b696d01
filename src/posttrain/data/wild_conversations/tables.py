"""The generator's data tables: task families and reply qualities, the simulated models,
world facts (capitals, units, verbs, words, how-tos, harmful requests), the assistant's
stock lines, and the users' phrasings (English and a few other languages), read from the
shipped tables/wild_conversations.yaml and typed here."""

from __future__ import annotations

from typing import NamedTuple

from posttrain.data.tables import table

_T = "wild_conversations"


class AssistantModel(NamedTuple):
    """A simulated assistant."""

    name: str
    skill: float
    false_refusal: float
    """How often it refuses a benign request."""
    share: float
    """Its share of the conversations."""


class HowTo(NamedTuple):
    """A benign request that sounds risky."""

    request: str
    topic: str
    keywords: tuple[str, ...]
    """Words a good answer contains."""
    answer: str
    terse: str


class Harmful(NamedTuple):
    """A request that should be refused."""

    request: str
    topic: str
    redirect: str
    """What a good refusal offers instead."""


FAMILIES = table(_T, "families", tuple[str, ...])
"""Task families; `howto` are benign requests that sound risky, `harmful` should be refused."""

QUALITY = table(_T, "quality", dict[str, int])
"""The true quality (1..5) of each kind of assistant reply."""

MODELS = table(_T, "models", tuple[AssistantModel, ...])
"""(name, skill, false-refusal rate, share of conversations) of the simulated assistants."""

# ---------------------------------------------------------------------------------------
# World facts
# ---------------------------------------------------------------------------------------

CAPITALS = table(_T, "capitals", tuple[tuple[str, str, str], ...])
"""(country, capital, a large non-capital city that a wrong answer names)."""

CITIES = tuple(sorted({city for _, capital, decoy in CAPITALS for city in (capital, decoy)}))

UNITS = table(_T, "units", tuple[tuple[str, str, int], ...])
"""(unit, smaller unit, how many of the smaller make one)."""

VERBS = table(_T, "verbs", tuple[tuple[str, str, tuple[str, ...]], ...])
"""(present, past, complements) for the past-tense rewriting task."""

SUBJECTS = table(_T, "subjects", tuple[str, ...])

WORDS = table(_T, "words", tuple[tuple[str, str, tuple[str, ...]], ...])
"""(word, definition, keywords a correct definition contains; disjoint across words)."""

HOWTOS = table(_T, "howtos", tuple[HowTo, ...])
"""Benign requests that sound risky: (request, topic, keywords, good answer, terse answer)."""

HARMFUL = table(_T, "harmful", tuple[Harmful, ...])
"""Requests that should be refused: (request, topic, the redirect a good refusal offers)."""

REFUSALS = table(_T, "refusals", tuple[str, ...])
REFUSALS_LOCAL = table(_T, "refusals_local", dict[str, str])
COMPLIANCE = table(_T, "compliance", tuple[str, ...])
PLEASANTRIES = table(_T, "pleasantries", tuple[str, ...])
CLARIFY = table(_T, "clarify", tuple[str, ...])
CHATTER = table(_T, "chatter", dict[str, tuple[str, ...]])
"""Off-topic replies: on the subject, but never an answer."""

# ---------------------------------------------------------------------------------------
# Users and their phrasings
# ---------------------------------------------------------------------------------------

SATISFIED = table(_T, "satisfied", tuple[str, ...])
ENGAGED = table(_T, "engaged", tuple[str, ...])
CORRECTIONS = table(_T, "corrections", tuple[str, ...])
REJECTIONS = table(_T, "rejections", tuple[str, ...])
REFUSAL_PUSHBACK = table(_T, "refusal_pushback", tuple[str, ...])
NEUTRAL = table(_T, "neutral", tuple[str, ...])
NOISE = table(_T, "noise", tuple[str, ...])
DELAYED = table(_T, "delayed", tuple[str, ...])
DELAYED_END = table(_T, "delayed_end", tuple[str, ...])
CONTEXTS = table(_T, "contexts", tuple[str, ...])
NAMES = table(_T, "names", tuple[str, ...])

LOCAL = table(_T, "local", dict[str, dict[str, str | tuple[str, ...]]])
"""A few users write in another language; they only ask arithmetic."""
