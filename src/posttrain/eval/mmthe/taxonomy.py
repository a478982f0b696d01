"""The hallucination taxonomy of MM-THEBench's step labels, and the label record itself.

MM-THEBench (2026) classifies hallucinations in a multimodal chain of thought under three
top-level categories: Knowledge, Perception and Reasoning. Its sub-categories are not
public; the ones below are ours, chosen so that the rule verifier can decide each of them
exactly on the generated scenes (docs/systems/mmthe.md lists them with examples):

perception  object       names an object, bar, row or label the image does not have
            attribute    a present object with the wrong colour, shape or size
            count        the wrong number of objects of a kind
            spatial      the wrong position of an object or relation between two
            text_value   a misread label, chart value or table cell
knowledge   fact         a property of a named thing that contradicts the fact table
            fabricated   a property the fact table does not hold for that thing
reasoning   arithmetic   a wrong calculation
            comparison   a wrong comparison or ordering of two stated quantities
            inconsistency a step that contradicts an earlier step of the same chain
            conclusion   a final answer that does not follow from the chain's steps
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

CATEGORIES: dict[str, tuple[str, ...]] = {
    "perception": ("object", "attribute", "count", "spatial", "text_value"),
    "knowledge": ("fact", "fabricated"),
    "reasoning": ("arithmetic", "comparison", "inconsistency", "conclusion"),
}
SUBCATEGORIES: dict[str, str] = {sub: top for top, subs in CATEGORIES.items() for sub in subs}
"""Sub-category -> its top-level category."""
NEEDS = tuple(CATEGORIES)
"""What a gold step needs (perception, knowledge or reasoning): the top-level names."""
LABELS = ("correct", "hallucinated", "unverifiable")
"""A step is correct, hallucinated (with a category), or unverifiable (the judge could not
decide it: a rule verifier meeting a sentence it cannot parse, a judge that gave no label)."""


@dataclass(frozen=True)
class StepLabel:
    """One judge's verdict on one step of a chain of thought (`index` counts from 0)."""

    index: int
    label: str
    category: str | None = None
    subcategory: str | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        check_label(self.label, self.category, self.subcategory)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> StepLabel:
        return cls(
            index=int(record["index"]),
            label=record["label"],
            category=record.get("category"),
            subcategory=record.get("subcategory"),
            reason=record.get("reason", ""),
        )


def check_label(label: str, category: str | None, subcategory: str | None) -> None:
    """A ValueError unless (label, category, subcategory) is a valid combination: only a
    hallucinated step has a category; a sub-category must belong to its category."""
    if label not in LABELS:
        raise ValueError(f"label must be one of {LABELS}, got {label!r}")
    if label != "hallucinated":
        if category is not None or subcategory is not None:
            raise ValueError(f"a {label} step has no category, got {category!r}/{subcategory!r}")
        return
    if category not in CATEGORIES:
        raise ValueError(f"category must be one of {tuple(CATEGORIES)}, got {category!r}")
    if subcategory is not None and SUBCATEGORIES.get(subcategory) != category:
        raise ValueError(
            f"sub-category {subcategory!r} is not one of {category}'s: {CATEGORIES[category]}"
        )
