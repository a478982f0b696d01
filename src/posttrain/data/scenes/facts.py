"""The small shipped fact table behind knowledge questions (`facts.json`, package data).

Each named thing holds some of the properties below, never all: a claim about a property the
table does not hold for that thing (or about a thing it does not name) is *fabricated*,
one that contradicts the table is a *fact* error.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

PROPERTY_PHRASES: dict[str, tuple[str, str]] = {
    "fruit": ("is a fruit", "is not a fruit"),
    "vegetable": ("is a vegetable", "is not a vegetable"),
    "animal": ("is an animal", "is not an animal"),
    "edible": ("is edible", "is not edible"),
    "can_fly": ("can fly", "cannot fly"),
    "lives_in_water": ("lives in water", "does not live in water"),
}
"""Property -> (the sentence's verb phrase when true, when false)."""

QUESTION_PHRASES: dict[str, str] = {
    "fruit": "a fruit",
    "vegetable": "a vegetable",
    "animal": "an animal",
    "edible": "edible",
}
"""The properties a question asks about ("Is the object labelled B a fruit?")."""

FACTS_FILE = Path(__file__).with_name("facts.json")


@cache
def fact_table() -> dict[str, dict[str, bool]]:
    """Thing -> {property: value}, read once and checked against PROPERTY_PHRASES."""
    table = json.loads(FACTS_FILE.read_text(encoding="utf-8"))
    for thing, properties in table.items():
        unknown = set(properties) - set(PROPERTY_PHRASES)
        if unknown or " " in thing:
            raise ValueError(f"{FACTS_FILE}: {thing}: bad thing or properties {sorted(unknown)}")
    return table


def lookup(thing: str, prop: str) -> bool | None:
    """The table's value for (thing, property), None where it holds none."""
    return fact_table().get(thing.lower(), {}).get(prop)
