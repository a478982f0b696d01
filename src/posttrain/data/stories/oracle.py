"""The held-out flaw oracle: which routes' flaws a text built from the world's templates shows."""

from __future__ import annotations

import re
from functools import lru_cache

from posttrain.data.stories.pools import GOALS, SETTINGS
from posttrain.data.stories.templates import (
    CLICHE_MARKERS,
    CLICHE_OPENING,
    CLICHE_OVERCOME,
    CLICHES,
    CONTRA_TEMPLATES,
    DEAD_MARKER,
    GONE_MARKER,
    PART_OF,
    STILL_MARKER,
    TEMPLATES,
)
from posttrain.data.stories.world import Premise, mentions, tokens
from posttrain.data.stories.writing import render


@lru_cache(maxsize=4096)
def _known_sentences(premise: Premise) -> dict[str, int]:
    """Every sentence a good story for `premise` can contain -> the part it belongs to."""
    index = {}
    for kind, templates in TEMPLATES.items():
        for template in templates:
            for detail in premise.details if "{detail}" in template else ("",):
                index[render(template, premise, detail)] = PART_OF[kind]
    return index


@lru_cache(maxsize=4096)
def _known_words(premise: Premise) -> frozenset[str]:
    texts = list(_known_sentences(premise)) + [CLICHE_OPENING, *CLICHE_OVERCOME]
    texts += [t for ts in CLICHES.values() for t in ts] + list(CONTRA_TEMPLATES)
    texts = [render(t, premise, other="") for t in texts]
    return frozenset(re.findall(r"[A-Za-z]+", " ".join(texts)))


def _stutters(text: str) -> bool:
    words = tokens(text)
    return any(
        words[i : i + k] == words[i + k : i + 2 * k]
        for k in (2, 3, 4)
        for i in range(len(words) - 2 * k + 1)
    )


def flaws(text: str, premise: Premise) -> list[str]:
    """The routes (keys of ROUTES) whose flaw the generator can see in `text` for `premise`.

    An empty list means the text reads as a good story for the premise. This is the
    held-out judge for best-of-n over `candidate_pool`: it knows the world's templates, a
    reward model does not. It judges texts built from those templates; free text (a model's
    own story) has unknown sentences and capitalised words and will be flagged.
    """
    if not mentions(text, premise.character):
        return ["mismatch"]
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    words = set(re.findall(r"[A-Za-z]+", text))
    foreign = sorted({w for w in words if w[0].isupper()} - _known_words(premise))
    known = _known_sentences(premise)

    def part_of(sentence: str) -> int | None:
        if sentence in known:
            return known[sentence]
        for name in (premise.character, premise.companion):  # undo a rename
            fixed = sentence
            for w in foreign:
                fixed = re.sub(rf"\b{w}\b", name, fixed)
            if fixed in known:
                return known[fixed]
        return None

    parts = [part_of(s) for s in dict.fromkeys(sentences)]  # a repeat does not reorder
    ranks = [part for part in parts if part is not None]
    found = []
    if any(a > b for a, b in zip(ranks, ranks[1:], strict=False)):
        found.append("shuffle")
    if 2 not in ranks:
        found.append("drop_resolution")
    normal = [" ".join(tokens(s)) for s in sentences]
    if len(set(normal)) < len(normal) or _stutters(text):
        found.append("repetition")
    if foreign:
        found.append("name_swap")
    if any(marker in text.lower() for marker in CLICHE_MARKERS):
        found.append("cliche")
    if _contradicts(sentences, premise):
        found.append("contradiction")
    return found


def _contradicts(sentences: list[str], premise: Premise) -> bool:
    text = " ".join(sentences)
    if any(s in text for s in SETTINGS if s != premise.setting):
        return True
    if any(g in text for g in GOALS if g != premise.goal):
        return True
    dead = [i for i, s in enumerate(sentences) if DEAD_MARKER in s]
    if dead and any(mentions(s, premise.companion) for s in sentences[dead[0] + 1 :]):
        return True
    gone = [i for i, s in enumerate(sentences) if GONE_MARKER in s]
    return bool(gone) and any(STILL_MARKER in s for s in sentences[gone[0] + 1 :])
