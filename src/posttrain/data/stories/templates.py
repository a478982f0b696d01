"""The sentence templates of good stories, by kind, and the cliché and contradiction lines.

`writing.render` fills a template's fields from a premise; every kind belongs to one of the
story's PARTS (`PART_OF`). The sentences are read from the shipped tables/stories.yaml; the
story's structure (parts, optional kinds) is here.
"""

from __future__ import annotations

from typing import NamedTuple

from posttrain.data.tables import table

PARTS = ("beginning", "conflict", "resolution")

# The sentences are shipped data: tables/stories.yaml. Templates per kind: core kinds appear
# once in every good story; optional kinds fill it to its target length. Fields: c, comp,
# a_trait, trait, role, a_role, goal, obstacle, obs, setting, detail.
TEMPLATES = table("stories", "templates", dict[str, tuple[str, ...]])
OPEN_ENDINGS = TEMPLATES["conflict"][-2:]  # restate the goal without reaching it
COMPANION_OVERCOME = TEMPLATES["overcome"][1]  # the companion finds the answer
PART_OF = {  # kind -> index into PARTS
    "opening": 0, "goal": 0, "begin": 0, "obstacle": 1, "conflict": 1,
    "overcome": 2, "achieve": 2, "ending": 2,
}  # fmt: skip
OPTIONAL = ("begin", "conflict", "ending")

# Stock phrases that replace specific details (creativity): an opening, a resolution, and
# lines that can go in the conflict or resolution part.
CLICHE_OPENING = table("stories", "cliche_opening", str)
CLICHE_OVERCOME = table("stories", "cliche_overcome", tuple[str, ...])
CLICHES = table("stories", "cliches", dict[int, tuple[str, ...]])
CLICHE_MARKERS = table("stories", "cliche_markers", tuple[str, ...])


class _Contradictions(NamedTuple):
    """Continuations that contradict earlier facts or the premise (coherence)."""

    elsewhere: str
    dead: str
    gone: str
    still: str


class _Markers(NamedTuple):
    """The phrase that marks each contradiction in a story."""

    dead: str
    gone: str
    still: str


CONTRA_TEMPLATES = tuple(table("stories", "contradictions", _Contradictions))
ELSEWHERE, DEAD, GONE, STILL = CONTRA_TEMPLATES
DEAD_MARKER, GONE_MARKER, STILL_MARKER = table("stories", "contradiction_markers", _Markers)
