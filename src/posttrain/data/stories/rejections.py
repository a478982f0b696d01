"""Rejected stories: a good story degraded by one route (see `routes.ROUTES`), refitted."""

from __future__ import annotations

import random
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace

from posttrain.data.stories.pools import GOALS, SETTINGS
from posttrain.data.stories.routes import ROUTES, check_route
from posttrain.data.stories.templates import (
    CLICHE_OPENING,
    CLICHE_OVERCOME,
    CLICHES,
    COMPANION_OVERCOME,
    DEAD,
    ELSEWHERE,
    GONE,
    OPEN_ENDINGS,
    OPTIONAL,
    STILL,
)
from posttrain.data.stories.world import (
    DEFAULT_CONFIG,
    Premise,
    StoryWorldConfig,
    as_rng,
    fresh_name,
    mentions,
    new_premise,
    word_count,
)
from posttrain.data.stories.writing import (
    Story,
    StoryLine,
    fit,
    insert_line,
    render,
    template_line,
    write_story,
)


@dataclass
class Rejected:
    """A degraded story: which route made it, the dimension it harms, and what was done."""

    text: str
    route: str
    dimension: str
    sentences: list[str] = field(default_factory=list)
    note: str = ""


def _copy(story: Story) -> list[StoryLine]:
    return [replace(x) for x in story.lines]


def _sorted_parts(lines: Sequence[StoryLine]) -> bool:
    return all(a.part <= b.part for a, b in zip(lines, lines[1:], strict=False))


def _shuffle(lines: list[StoryLine], rng: random.Random) -> str:
    """Reorder until beginning, conflict and resolution are out of order."""
    if len({x.part for x in lines}) < 2:
        raise ValueError("story must have sentences from two parts or more to shuffle")
    while _sorted_parts(lines):
        rng.shuffle(lines)
    return "sentences shuffled"


def _repeat(lines: list[StoryLine], rng: random.Random) -> str:
    """Repeat a sentence verbatim, or stutter a phrase, as degenerate text does."""
    if rng.random() < 0.5:  # a shorter sentence: a long one costs many distinct words
        sizes = sorted(word_count(x.text) for x in lines[:-1])
        short = [
            i for i, x in enumerate(lines[:-1]) if word_count(x.text) <= sizes[len(sizes) // 2]
        ]
        source = rng.choice(short)
        lines[source].locked = True
        gap = 2 if lines[source + 1].part == lines[source].part and rng.random() < 0.5 else 1
        lines.insert(source + gap, replace(lines[source], kind="repeat"))  # in the same part
        return f"sentence {source + 1} repeated"
    k = rng.choice([3, 4])
    i = rng.choice([i for i, x in enumerate(lines) if word_count(x.text) > k + 2])
    words = lines[i].text.rstrip(".").split()
    start = rng.randrange(1, len(words) - k)
    text = " ".join(words[: start + k] + words[start : start + k] + words[start + k :]) + "."
    lines[i] = StoryLine(lines[i].part, "repeat", text, lines[i].template, True)
    return f"{' '.join(words[start : start + k])!r} repeated in sentence {i + 1}"


def _swap_names(
    lines: list[StoryLine], premise: Premise, rng: random.Random, taken: Collection[str]
) -> str:
    """From a point mid-story on, call the character (or the companion) by another name."""
    who = premise.character
    if rng.random() < 0.3 and sum(mentions(x.text, premise.companion) for x in lines) >= 2:
        who = premise.companion
    found = [i for i, x in enumerate(lines) if mentions(x.text, who)]
    start = rng.choice(found[1:])
    new = fresh_name(rng, {premise.character, premise.companion, *taken})
    for i in range(start, len(lines)):
        lines[i] = replace(lines[i], text=re.sub(rf"\b{who}\b", new, lines[i].text))
    return f"{who} becomes {new} from sentence {start + 1}"


def _cliche(lines: list[StoryLine], premise: Premise, rng: random.Random) -> str:
    """Swap the specific opening, resolution and details for stock phrases."""
    lines[:] = [x for x in lines if x.kind not in OPTIONAL or "{detail}" not in x.template]
    for i, x in enumerate(lines):
        if x.kind == "opening":
            lines[i] = StoryLine(0, "cliche", render(CLICHE_OPENING, premise), locked=True)
        if x.kind == "overcome":
            text = render(rng.choice(CLICHE_OVERCOME), premise)
            lines[i] = StoryLine(2, "cliche", text, locked=True)
    part = rng.choice([1, 2])
    insert_line(
        lines,
        StoryLine(part, "cliche", render(rng.choice(CLICHES[part]), premise), "", True),
        rng,
    )
    return "opening, resolution and details replaced by clichés"


def _contradict(lines: list[StoryLine], premise: Premise, rng: random.Random) -> str:
    """Continue the story with a fact that contradicts an earlier one (or the premise)."""
    kind = rng.choice(["setting", "goal", "dead", "obstacle"])
    at = {x.kind: i for i, x in enumerate(lines)}
    if kind == "setting":
        other = rng.choice([s for s in SETTINGS if s != premise.setting])
        lines[at["achieve"]] = StoryLine(
            2, "contra", render(ELSEWHERE, premise, other=other), locked=True
        )
        return f"setting: {premise.setting} -> {other}"
    if kind == "goal":
        other = rng.choice([g for g in GOALS if g != premise.goal])
        old = lines[at["achieve"]]
        lines[at["achieve"]] = StoryLine(
            2, "contra", render(old.template, replace(premise, goal=other)), old.template, True
        )
        return f"goal: {premise.goal} -> {other}"
    if kind == "dead":  # the companion is said to be dead, then helps overcome the obstacle
        lines[at["overcome"]] = template_line("overcome", COMPANION_OVERCOME, premise)
        lines[at["overcome"]].locked = True
        insert_line(lines, StoryLine(0, "contra", render(DEAD, premise), locked=True), rng)
        return f"{premise.companion} is dead, then helps"
    lines.insert(at["obstacle"] + 1, StoryLine(1, "contra", render(GONE, premise), locked=True))
    insert_line(lines, StoryLine(1, "contra", render(STILL, premise), locked=True), rng)
    still = next(i for i, x in enumerate(lines) if x.text == render(STILL, premise))
    gone = next(i for i, x in enumerate(lines) if x.text == render(GONE, premise))
    if still < gone:
        lines[still], lines[gone] = lines[gone], lines[still]
    return f"{premise.obstacle_noun} gone for good, then still there"


def _other_premise(premise: Premise, rng: random.Random, taken: Collection[str]) -> Premise:
    """A random premise with other names, goal and setting (for mismatch stories)."""
    names = {premise.character, premise.companion, *taken}
    while True:
        other = new_premise(f"{premise.id}~other", rng, set(names), set())
        if other.goal != premise.goal and other.setting != premise.setting:
            return other


def reject(
    story: Story,
    route: str,
    rng: random.Random | int,
    other_premise: Premise | None = None,
    config: StoryWorldConfig | None = None,
    reserved_names: Collection[str] = (),
    target_words: int | None = None,
) -> Rejected:
    """A rejected version of `story` made by `route` (see ROUTES), refitted to `target_words`
    (None: a fresh random target) so that the degradation does not change the length.

    `other_premise` is the premise a mismatch story is written for (a random one if None);
    new names (name_swap, a random other premise) avoid `reserved_names`, so a rename never
    borrows the name of a premise in another split.
    """
    check_route(route)
    rng, cfg, premise = as_rng(rng), config or DEFAULT_CONFIG, story.premise
    if route == "mismatch":
        if other_premise is None:
            other_premise = _other_premise(premise, rng, reserved_names)
        if other_premise.character == premise.character:
            raise ValueError(f"other_premise must have another character, got {other_premise.id}")
        lines = write_story(other_premise, rng, cfg, target_words).lines
        note = f"story for premise {other_premise.id}"
    else:
        lines, note = _copy(story), ""
        kinds, allow = OPTIONAL, (lambda template: True)
        if route == "drop_resolution":  # end on an open question instead
            lines = [x for x in lines if x.part < 2]
            kinds, note = ("conflict",), "resolution dropped"
            lines = [x for x in lines if x.template not in OPEN_ENDINGS]
            template = rng.choice(OPEN_ENDINGS)
            lines.append(replace(template_line("conflict", template, premise), locked=True))
            allow = lambda template: "{detail}" not in template  # noqa: E731
        elif route == "repetition":
            note = _repeat(lines, rng)
        elif route == "cliche":
            note = _cliche(lines, premise, rng)
            allow = lambda template: "{detail}" not in template  # noqa: E731
        elif route == "contradiction":
            note = _contradict(lines, premise, rng)
        lines = fit(lines, premise, rng, cfg, target_words, kinds, allow)
        if route == "drop_resolution":  # the open question stays the last sentence
            lines.sort(key=lambda x: x.template in OPEN_ENDINGS and x.locked)
        elif route == "shuffle":
            note = _shuffle(lines, rng)
        elif route == "name_swap":
            note = _swap_names(lines, premise, rng, reserved_names)
    sentences = [x.text for x in lines]
    return Rejected(" ".join(sentences), route, ROUTES[route], sentences, note)
