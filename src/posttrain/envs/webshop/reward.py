"""WebShop's purchase reward (Yao et al., 2022; `web_agent_site/engine/goal.py`).

    reward = (attribute matches + option matches + [price <= bound])
             / (goal attributes + goal options + 1) * r_type

- an attribute the goal asks for matches when the product lists one with a fuzzy
  token-set similarity above 85, or when the phrase occurs in the title, the features or the
  description (lower-cased);
- an option value matches when one of the purchased option values has similarity above 85,
  after both are reduced to the first colour word they contain;
- r_type is 1 when the query, two breadcrumb levels or enough of the title's nouns agree,
  0.5 when none does, 0.1 when under a tenth of the goal title's nouns occur in the
  purchased title and 0 when none does.

Success is reward == 1. The similarity is thefuzz's `token_set_ratio`, as WebShop calls it.
One part is written here rather than imported, and why: WebShop takes the title's nouns
from spaCy's `en_core_web_sm` tagger, a model that cannot be downloaded here. `title_words`
counts every word of three or more letters outside a small stopword list instead;
`type_reward(..., nouns=...)` takes any other extractor (for instance spaCy's, where the
model is installed).

The colour words are our own list of common colour names in the same role as WebShop's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

from thefuzz import fuzz

from posttrain.envs.webshop.records import Goal, Product

SIMILARITY_THRESHOLD = 85
"""Fuzzy matches count when the similarity is above this (WebShop's threshold)."""

COLOURS = tuple(
    sorted(
        [
            "beige",
            "black",
            "blue",
            "brown",
            "burgundy",
            "charcoal",
            "coral",
            "cream",
            "gold",
            "green",
            "grey",
            "gray",
            "ivory",
            "khaki",
            "lavender",
            "maroon",
            "mint",
            "navy",
            "olive",
            "orange",
            "peach",
            "pink",
            "purple",
            "red",
            "rose",
            "silver",
            "tan",
            "teal",
            "turquoise",
            "white",
            "yellow",
        ]
    )
)

_STOPWORDS = frozenset(
    [
        "and",
        "the",
        "for",
        "with",
        "from",
        "into",
        "that",
        "this",
        "your",
        "you",
        "are",
        "not",
        "all",
        "any",
        "one",
        "two",
        "set",
        "pack",
        "of",
        "in",
        "on",
        "to",
        "by",
        "or",
    ]
)


def token_set_ratio(first: str, second: str) -> int:
    """thefuzz's `fuzz.token_set_ratio` (0-100), WebShop's similarity, with its default
    processing (ASCII, alphanumeric tokens, lower case)."""
    return fuzz.token_set_ratio(first, second)


def _similar(first: str, second: str) -> bool:
    return token_set_ratio(first, second) > SIMILARITY_THRESHOLD


def normalize_colour(value: str) -> str:
    """The first colour word (in `COLOURS` order) inside `value`, else `value` itself."""
    for colour in COLOURS:
        if colour in value:
            return colour
    return value


def title_words(title: str) -> list[str]:
    """Stand-in for the title's nouns: lower-case words of 3+ letters, stopwords removed."""
    words = re.findall(r"[a-z]+", title.lower())
    return [w for w in words if len(w) >= 3 and w not in _STOPWORDS]


@dataclass(frozen=True)
class TypeMatch:
    """The type factor and why: query, breadcrumb and title agreement."""

    r_type: float
    query_match: bool
    category_match: bool
    title_score: float


def type_reward(
    product: Product, goal: Goal, nouns: Callable[[str], Sequence[str]] = title_words
) -> TypeMatch:
    """WebShop's type factor of buying `product` for `goal`."""
    query_match = product.query == goal.query
    bought = {part.strip() for part in product.product_category.split("›")}
    wanted = {part.strip() for part in goal.product_category.split("›")}
    category_match = len(bought & wanted) >= 2
    desired = set(nouns(goal.name))
    purchased = set(nouns(product.title))
    title_score = len(desired & purchased) / len(desired) if desired else 0.2
    r_type = 1.0 if (query_match or category_match or title_score > 0.2) else 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return TypeMatch(r_type, query_match, category_match, title_score)


def attribute_matches(product: Product, attributes: Iterable[str]) -> int:
    """How many of the goal's attributes the product has (fuzzy, or found in its text)."""
    text = (
        product.title.lower(),
        " ".join(product.bullet_points).lower(),
        product.description.lower(),
    )
    count = 0
    for wanted in attributes:
        listed = any(_similar(have, wanted) for have in product.attributes)
        if listed or any(wanted in part for part in text):
            count += 1
    return count


def option_matches(purchased: Iterable[str], wanted: Iterable[str]) -> int:
    """How many wanted option values some purchased value matches (colour-normalised)."""
    chosen = [normalize_colour(value) for value in purchased]
    return sum(any(_similar(have, normalize_colour(value)) for have in chosen) for value in wanted)


@dataclass(frozen=True)
class RewardParts:
    """The purchase reward and its parts, as WebShop's verbose reward reports them."""

    reward: float
    r_type: float
    r_att: float
    r_option: float | None
    r_price: bool
    attribute_matches: int
    option_matches: int
    query_match: bool
    category_match: bool
    title_score: float

    @property
    def success(self) -> bool:
        return self.reward == 1.0

    def as_dict(self) -> dict[str, float | int | bool | None]:
        return {**asdict(self), "success": self.success}


def purchase_reward(
    product: Product,
    goal: Goal,
    options: dict[str, str],
    *,
    price: float | None = None,
    nouns: Callable[[str], Sequence[str]] = title_words,
) -> RewardParts:
    """WebShop's reward for buying `product` with the chosen `options` ({name: value}) for
    `goal`; `price` defaults to the product's own."""
    kind = type_reward(product, goal, nouns)
    paid = product.price if price is None else price
    r_price = paid <= goal.price_upper
    n_attr = attribute_matches(product, goal.attributes)
    n_option = option_matches(options.values(), goal.options)
    total = (n_attr + n_option + int(r_price)) / (len(goal.attributes) + len(goal.options) + 1)
    return RewardParts(
        reward=total * kind.r_type,
        r_type=kind.r_type,
        r_att=n_attr / len(goal.attributes) if goal.attributes else 0.0,
        r_option=n_option / len(goal.options) if goal.options else None,
        r_price=r_price,
        attribute_matches=n_attr,
        option_matches=n_option,
        query_match=kind.query_match,
        category_match=kind.category_match,
        title_score=kind.title_score,
    )
