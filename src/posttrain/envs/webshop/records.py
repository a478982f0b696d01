"""The two records the store works with: a product on sale and a shopper's goal.

Field meanings follow WebShop (Yao et al., 2022; princeton-nlp/WebShop,
`web_agent_site/engine/engine.py` and `goal.py`): a product keeps the `query` it was scraped
under, its breadcrumb `product_category` ("a › b › c"), its `Attributes` (short phrases such as
"machine wash") and its buying options by name; a goal keeps the purchased product's
`query`, `product_category` and `name` (for the type match), the `attributes` and option
values the instruction asks for, and the price bound. Both are frozen so that environments on
many threads can share one catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Product:
    """One product as the environment shows and scores it."""

    asin: str
    title: str
    price: float
    price_tag: str
    description: str
    bullet_points: tuple[str, ...]
    options: MappingProxyType[str, tuple[str, ...]]
    attributes: tuple[str, ...]
    category: str
    query: str
    product_category: str

    def option_name_of(self, value: str) -> str | None:
        """The option a (lower-case) value belongs to; the last one when two share it, as a
        value-keyed page (WebShop's clickables) would."""
        found = None
        for name, values in self.options.items():
            if value in values:
                found = name
        return found


@dataclass(frozen=True)
class Goal:
    """One instruction: what the shopper asks for, and which product it was written from."""

    id: str
    asin: str
    instruction_text: str
    attributes: tuple[str, ...]
    options: tuple[str, ...]
    price_upper: float
    query: str
    category: str
    product_category: str
    name: str
    split: str = "train"
