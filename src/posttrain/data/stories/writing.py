"""Good stories from templates, fitted to a target word count."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from posttrain.data.stories.templates import OPTIONAL, PART_OF, PARTS, TEMPLATES
from posttrain.data.stories.world import (
    DEFAULT_CONFIG,
    Premise,
    StoryWorldConfig,
    as_rng,
    with_article,
    word_count,
)


@dataclass
class StoryLine:
    """One sentence, the story part it belongs to and the template kind it came from."""

    part: int  # index into PARTS
    kind: str  # a TEMPLATES kind, or "repeat" / "cliche" / "contra" for degradations
    text: str
    template: str = ""
    locked: bool = False  # degradations lock what they rely on; fitting leaves it alone


@dataclass
class Story:
    """A well-formed story for a premise: a beginning, a conflict and a resolution."""

    premise: Premise
    lines: list[StoryLine] = field(default_factory=list)

    @property
    def sentences(self) -> list[str]:
        return [line.text for line in self.lines]

    @property
    def parts(self) -> list[str]:
        return [PARTS[line.part] for line in self.lines]

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


def _fields(premise: Premise, detail: str = "") -> dict[str, str]:
    return {
        "c": premise.character,
        "comp": premise.companion,
        "trait": premise.trait,
        "a_trait": with_article(premise.trait),
        "role": premise.role,
        "a_role": with_article(premise.role),
        "goal": premise.goal,
        "obstacle": premise.obstacle,
        "obs": premise.obstacle_noun,
        "setting": premise.setting,
        "detail": detail,
    }


@lru_cache(maxsize=1 << 16)
def render(template: str, premise: Premise, detail: str = "", **extra: str) -> str:
    """A template filled in for `premise` (and a setting `detail`), capitalised."""
    text = template.format(**_fields(premise, detail), **extra)
    return text[0].upper() + text[1:]


def template_line(kind: str, template: str, premise: Premise, detail: str = "") -> StoryLine:
    """The line a template of `kind` gives for `premise`; `detail` only where it is used."""
    detail = detail if "{detail}" in template else ""
    return StoryLine(PART_OF[kind], kind, render(template, premise, detail), template)


def _pick_detail(premise: Premise, used: set[str], rng: random.Random) -> str:
    """A setting detail the story has not mentioned yet (any, once all are used)."""
    return rng.choice([d for d in premise.details if d not in used] or list(premise.details))


def _details_in(lines: Sequence[StoryLine], premise: Premise) -> set[str]:
    return {d for d in premise.details for x in lines if d in x.text}


def insert_line(lines: list[StoryLine], line: StoryLine, rng: random.Random) -> None:
    """Insert inside the line's part, after the core line that opens it."""
    anchors = {0: ("opening",), 1: ("obstacle",), 2: ("overcome", "achieve")}[line.part]
    after = [i for i, x in enumerate(lines) if x.part == line.part and x.kind in anchors]
    in_part = [i for i, x in enumerate(lines) if x.part == line.part]
    low = sum(1 for x in lines if x.part < line.part)  # where the part starts (or would)
    if after:
        low = max(after) + 1
    elif in_part:
        low = in_part[0]
    high = in_part[-1] + 1 if in_part else low
    lines.insert(rng.randint(low, max(low, high)), line)


def fit(
    lines: list[StoryLine],
    premise: Premise,
    rng: random.Random,
    cfg: StoryWorldConfig,
    target: int | None = None,
    kinds: Sequence[str] = OPTIONAL,
    allow: Callable[[str], bool] = lambda template: True,
) -> list[StoryLine]:
    """Fit a story to a target word count: drop or add optional sentences, then re-word
    unlocked ones with other templates of the same kind (it lands on the target almost
    always). Without a target one is drawn from the configured range, the same for every
    candidate, chosen or rejected, so length says nothing about quality.
    """
    if target is None:
        target = rng.randint(cfg.min_words, cfg.max_words)
    total = sum(word_count(x.text) for x in lines)

    def closer(delta: int) -> bool:
        return abs(total + delta - target) < abs(total - target)

    while len(lines) > cfg.min_sentences:
        drop = [
            i
            for i, x in enumerate(lines)
            if x.kind in OPTIONAL and not x.locked and closer(-word_count(x.text))
        ]
        if not drop:
            break
        total -= word_count(lines.pop(rng.choice(drop)).text)
    used = {x.template for x in lines}
    pool = [(k, t) for k in kinds for t in TEMPLATES[k] if t not in used and allow(t)]
    rng.shuffle(pool)
    for kind, template in pool:
        if len(lines) >= cfg.max_sentences:
            break
        line = template_line(
            kind, template, premise, _pick_detail(premise, _details_in(lines, premise), rng)
        )
        if len(lines) < cfg.min_sentences or closer(word_count(line.text)):
            insert_line(lines, line, rng)
            total += word_count(line.text)
    for _ in range(4):  # re-word: the one template swap that helps most, while any helps
        used = {x.template for x in lines}
        detail = _pick_detail(premise, _details_in(lines, premise), rng)
        swaps = [
            (abs(total + delta - target), i, t, delta)
            for i, x in enumerate(lines)
            if not x.locked and x.kind in TEMPLATES
            for t in TEMPLATES[x.kind]
            if t not in used and allow(t)
            for delta in [
                word_count(template_line(x.kind, t, premise, detail).text) - word_count(x.text)
            ]
            if closer(delta)
        ]
        if not swaps:
            break
        _, i, template, delta = min(swaps, key=lambda swap: swap[0])
        lines[i] = template_line(lines[i].kind, template, premise, detail)
        total += delta
    return lines


def _core(premise: Premise, rng: random.Random) -> list[StoryLine]:
    lines: list[StoryLine] = []
    for kind in ("opening", "goal", "obstacle", "overcome", "achieve"):
        detail = _pick_detail(premise, _details_in(lines, premise), rng)
        lines.append(template_line(kind, rng.choice(TEMPLATES[kind]), premise, detail))
    return lines


def write_story(
    premise: Premise,
    rng: random.Random | int,
    config: StoryWorldConfig | None = None,
    target_words: int | None = None,
) -> Story:
    """A good story: opening, goal, obstacle, overcoming it and reaching the goal, filled
    with optional sentences to `target_words` (None: random in the configured range)."""
    rng, cfg = as_rng(rng), config or DEFAULT_CONFIG
    return Story(premise, fit(_core(premise, rng), premise, rng, cfg, target_words))
