"""The one registry of CHERRL's injected judge biases, read from tables/biases.yaml.

Each bias is listed once with everything both of its users need: what the biased judge pays
for and how its detector finds it (`posttrain.rewards.biases` builds its `Bias` judges from
this), and the sentences the health-chat warm start writes to carry it
(`posttrain.data.health_chat`). Keeping both in one entry is what makes a generated feature
and its detector agree.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from posttrain.data.io import DataError
from posttrain.data.tables import table, table_path


@dataclass(frozen=True)
class BiasSpec:
    """One injected bias as data (see tables/biases.yaml for each field's meaning)."""

    name: str
    description: str
    question: str
    """What the LLM judge is asked about the response (`{min_words}` may appear)."""
    shortcut: str | None = None
    """The case-insensitive regex the detector counts; None for a structural bias."""
    structure: str | None = None
    """"three_points" or "length": the layout the detector checks instead of a regex."""
    last_sentence_only: bool = False
    min_words: int | None = None
    """The length bar of a "length" bias (None: the detector's default)."""
    sentences: tuple[str, ...] = ()
    """What the health-chat warm start writes to carry it; empty when layout carries it."""


@functools.cache
def _registry() -> dict[str, BiasSpec]:
    specs: dict[str, BiasSpec] = {}
    for spec in table("biases", "biases", tuple[BiasSpec, ...]):
        if spec.name in specs:
            raise DataError(f"{spec.name!r} is listed twice", table_path("biases"), key="biases")
        specs[spec.name] = spec
    return specs


def bias_specs() -> dict[str, BiasSpec]:
    """The registered biases by name, in the file's order (a copy: the registry is shared)."""
    return dict(_registry())


def bias_spec(name: str) -> BiasSpec:
    """The registered bias `name`; an unknown name is an error that lists the known ones."""
    specs = _registry()
    if name not in specs:
        raise DataError(
            f"no bias {name!r}; it lists {', '.join(specs)}", table_path("biases"), key="biases"
        )
    return specs[name]
