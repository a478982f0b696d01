"""The made-up world's ingredients: name syllables, traits, roles, settings, goals, obstacles,
read from the shipped tables/stories.yaml."""

from __future__ import annotations

from posttrain.data.tables import table

# Names are two or three open syllables, the last one sometimes closed (Tamiro, Kelun, Sava);
# the last onset, "", only starts a name.
ONSETS = table("stories", "onsets", tuple[str, ...])
VOWELS = table("stories", "vowels", tuple[str, ...])
CODAS = table("stories", "codas", tuple[str, ...])

TRAITS = table("stories", "traits", tuple[str, ...])
ROLES = table("stories", "roles", tuple[str, ...])

SETTINGS = table("stories", "settings", dict[str, tuple[str, ...]])
"""A setting is a phrase read after "in", with specific details the story can mention."""

GOALS = table("stories", "goals", tuple[str, ...])

OBSTACLES = table("stories", "obstacles", dict[str, str])
"""An obstacle is a past-tense clause (read after "but") and a short noun phrase for it."""
