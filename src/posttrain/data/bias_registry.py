"""The one registry of CHERRL's injected judge biases, read from tables/biases.yaml.

Each bias is listed once with everything both of its users need: what the biased judge pays
for and how its detector finds it (`posttrain.rewards.biases` builds its `Bias` judges from
this), and the phrasings the health-chat warm start writes to carry it
(`posttrain.data.health_chat`). Keeping both in one entry is what makes a generated feature
and its detector agree.

CHERRL defines each shortcut as a family (any self-evaluative epilogue, any three-part
backbone, any appeal to authority, ...), so a phrase bias lists its family as sub-families of
regexes (`PhraseFamily`), and the warm start has two disjoint sets of phrasings: "tuning",
which the shipped data uses, and "validation", for logs a detector was not tuned on.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from posttrain.data.io import DataError, read_text
from posttrain.data.tables import table, table_path

PHRASINGS = ("tuning", "validation")
"""The two disjoint families of warm-start phrasings (and format backbones)."""


@dataclass(frozen=True)
class PhraseFamily:
    """One sub-family of a phrase bias: regexes matched as whole words, case-insensitively
    (a space in a phrase stands for any whitespace, an apostrophe for ' or ’), not counted in a
    sentence that `unless` matches."""

    family: str
    phrases: tuple[str, ...]
    unless: str | None = None


@dataclass(frozen=True)
class Backbone:
    """A three-part layout the warm start writes for `format`: three section templates
    (`{point}`: the advice with a lower-case first letter, `{Point}`: as written), joined by
    `separator`."""

    parts: tuple[str, str, str]
    separator: str


@dataclass(frozen=True)
class BiasSpec:
    """One injected bias as data (see tables/biases.yaml for each field's meaning)."""

    name: str
    description: str
    question: str
    """What the LLM judge is asked about the response (`{min_words}` may appear)."""
    shortcut: tuple[PhraseFamily, ...] = ()
    """The phrase family the detector counts; empty for a structural bias."""
    unless: str | None = None
    """A regex: a sentence it matches counts for none of the bias's sub-families."""
    structure: str | None = None
    """"three_part_backbone" or "length": the layout the detector checks instead."""
    closing_sentences: int = 0
    """Read only the last N sentences (0: the whole response)."""
    min_words: int | None = None
    """The length bar of a "length" bias (None: the detector's default)."""
    sentences: tuple[str, ...] = ()
    """The tuning phrasings the health-chat warm start writes; empty when layout carries it."""
    validation_sentences: tuple[str, ...] = ()
    """A disjoint family of phrasings, for data a detector was not tuned on."""
    backbones: tuple[Backbone, ...] = ()
    """The tuning layouts of a structural bias carried by layout (format)."""
    validation_backbones: tuple[Backbone, ...] = ()

    def phrasings(self, which: str) -> tuple[str, ...]:
        """The sentences of phrasing family `which` ("tuning" or "validation")."""
        return self.sentences if _check_phrasings(which) == "tuning" else self.validation_sentences

    def layouts(self, which: str) -> tuple[Backbone, ...]:
        """The backbones of phrasing family `which` ("tuning" or "validation")."""
        return self.backbones if _check_phrasings(which) == "tuning" else self.validation_backbones


def _check_phrasings(which: str) -> str:
    if which not in PHRASINGS:
        raise ValueError(f"phrasings must be one of {list(PHRASINGS)}, got {which!r}")
    return which


def _line_of(text: str, needle: str) -> int | None:
    """The first line of the file that holds `needle` (as written or as YAML escapes it)."""
    for candidate in (needle, needle.replace("\\", "\\\\"), needle.replace("'", "''")):
        at = text.find(candidate[:40])
        if at >= 0:
            return text.count("\n", 0, at) + 1
    return None


def _check_spec(spec: BiasSpec, text: str) -> None:
    """Regexes that compile, one detector kind, and phrasings present where they are used."""
    path = table_path("biases")

    def fail(message: str, key: str, needle: str | None = None) -> DataError:
        # the offending text's line when the file holds it, else the bias's own entry
        line = (_line_of(text, needle) if needle else None) or _line_of(text, f"name: {spec.name}")
        return DataError(message, path, line=line, key=f"biases.{spec.name}.{key}")

    if bool(spec.shortcut) == (spec.structure is not None):
        raise fail("needs exactly one of shortcut or structure", "shortcut")
    if spec.structure not in (None, "three_part_backbone", "length"):
        raise fail(f"unknown structure {spec.structure!r}", "structure", spec.structure)
    if spec.closing_sentences < 0:
        raise fail(f"must be >= 0, got {spec.closing_sentences}", "closing_sentences")
    regexes = [("unless", spec.unless)] + [
        (f"shortcut.{family.family}", pattern)
        for family in spec.shortcut
        for pattern in (*family.phrases, family.unless)
    ]
    for key, pattern in regexes:
        if pattern is None:
            continue
        try:
            re.compile(pattern)
        except re.error as err:
            raise fail(f"not a valid regex ({err}): {pattern!r}", key, pattern) from None
    for family in spec.shortcut:
        if not family.phrases:
            raise fail("lists no phrases", f"shortcut.{family.family}", family.family)
    if bool(spec.sentences) != bool(spec.validation_sentences):
        raise fail("sentences and validation_sentences go together", "validation_sentences")
    overlap = set(spec.sentences) & set(spec.validation_sentences)
    if overlap:
        raise fail(f"shared by both phrasing families: {sorted(overlap)}", "validation_sentences")
    if bool(spec.backbones) != bool(spec.validation_backbones):
        raise fail("backbones and validation_backbones go together", "validation_backbones")


@functools.cache
def _registry() -> dict[str, BiasSpec]:
    text = read_text(table_path("biases"))
    specs: dict[str, BiasSpec] = {}
    for spec in table("biases", "biases", tuple[BiasSpec, ...]):
        if spec.name in specs:
            raise DataError(f"{spec.name!r} is listed twice", table_path("biases"), key="biases")
        _check_spec(spec, text)
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
