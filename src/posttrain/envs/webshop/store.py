"""A store: products, goals split into train and held-out, and the search index.

A store is built once per process and settings (`generated_store`, `webshop_store`, both
cached) and shared read-only by every environment instance, on any thread.

The split. Held-out goals are written about products (`split_by="product"`, the default) or
product types (`split_by="type"`, the breadcrumb) that no training goal names, and no
instruction text occurs in both splits (a held-out goal repeating a training text is dropped).
By product, the held-out set asks the question WebShop's own test goals ask, new
instructions in the same store, while making sure a policy cannot pass it by remembering
which asin answered which training instruction; by type it is the harder out-of-distribution
split, like ALFWorld's unseen rooms. Every product stays in the one catalogue either way,
since a shop does not hide goods: held-out products are found by search like any other.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from posttrain.envs.webshop.generate import generate_catalogue
from posttrain.envs.webshop.loader import (
    goals_from_instructions,
    load_webshop,
    parse_attributes,
    parse_products,
)
from posttrain.envs.webshop.records import Goal, Product
from posttrain.envs.webshop.search import ProductIndex

SPLITS = ("train", "heldout")
SPLIT_BY = ("product", "type")


@dataclass(frozen=True)
class Store:
    """Everything an episode reads; nothing in it changes after construction."""

    products: MappingProxyType[str, Product]
    goals: MappingProxyType[str, Goal]
    splits: MappingProxyType[str, tuple[str, ...]]
    index: ProductIndex
    build_seconds: float

    def goal(self, goal_id: str) -> Goal:
        try:
            return self.goals[goal_id]
        except KeyError:
            raise ValueError(f"unknown WebShop instruction_id {goal_id!r}") from None

    def split_goals(self, split: str) -> list[Goal]:
        if split not in self.splits:
            raise ValueError(f"unknown WebShop split {split!r}; choose from {list(SPLITS)}")
        return [self.goals[goal_id] for goal_id in self.splits[split]]


def heldout_units(units: Sequence[str], fraction: float, seed: int) -> set[str]:
    """A seeded `fraction` of the distinct `units` (at least one, never all when there are
    two or more)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {fraction}")
    distinct = sorted(set(units))
    random.Random(seed).shuffle(distinct)
    count = min(max(1, math.ceil(fraction * len(distinct))), max(1, len(distinct) - 1))
    return set(distinct[:count])


def build_store(
    products: Sequence[Product],
    goals: Sequence[Goal],
    *,
    split_by: str = "product",
    heldout_fraction: float = 0.2,
    seed: int = 0,
) -> Store:
    """Split `goals` (see the module docstring) and index `products`."""
    start = time.perf_counter()
    if split_by not in SPLIT_BY:
        raise ValueError(f"split_by must be one of {list(SPLIT_BY)}, got {split_by!r}")
    by_asin = {product.asin: product for product in products}

    def unit(goal: Goal) -> str:
        return goal.asin if split_by == "product" else goal.product_category

    held = heldout_units([unit(goal) for goal in goals], heldout_fraction, seed)
    kept: dict[str, Goal] = {}
    splits: dict[str, list[str]] = {split: [] for split in SPLITS}
    seen_texts: set[str] = set()
    ordered = sorted(goals, key=lambda goal: unit(goal) in held)  # training goals first
    for goal in ordered:
        if goal.asin not in by_asin:
            raise ValueError(f"goal {goal.id!r} names asin {goal.asin!r}, not in the catalogue")
        if goal.instruction_text in seen_texts:
            continue
        seen_texts.add(goal.instruction_text)
        split = "heldout" if unit(goal) in held else "train"
        kept[goal.id] = replace(goal, split=split)
        splits[split].append(goal.id)
    index = ProductIndex(products)
    return Store(
        products=MappingProxyType(by_asin),
        goals=MappingProxyType(kept),
        splits=MappingProxyType({k: tuple(v) for k, v in splits.items()}),
        index=index,
        build_seconds=time.perf_counter() - start,
    )


@lru_cache(maxsize=8)
def generated_store(
    n_products: int = 300,
    seed: int = 0,
    instructions_per_product: int = 2,
    split_by: str = "product",
    heldout_fraction: float = 0.2,
) -> Store:
    """The generated store for these settings, built once per process."""
    start = time.perf_counter()
    raw_products, raw_attributes, raw_instructions = generate_catalogue(
        n_products, seed, instructions_per_product
    )
    where = f"<generated catalogue n_products={n_products} seed={seed}>"
    attributes = parse_attributes(raw_attributes, where)
    products = parse_products(raw_products, where, attributes)
    goals = goals_from_instructions(
        raw_instructions, where, {p.asin: p for p in products}, seed=seed
    )
    store = build_store(
        products, goals, split_by=split_by, heldout_fraction=heldout_fraction, seed=seed
    )
    return replace(store, build_seconds=time.perf_counter() - start)


def webshop_store(
    products_path: str | Path,
    instructions_path: str | Path,
    attributes_path: str | Path | None = None,
    *,
    split_by: str = "product",
    heldout_fraction: float = 0.2,
    seed: int = 0,
) -> Store:
    """A store over WebShop's own files, built once per process per files (a file changed
    on disk is read again)."""
    paths = [Path(p).resolve() for p in (products_path, instructions_path)]
    if attributes_path is not None:
        paths.append(Path(attributes_path).resolve())
    stamps = tuple((str(p), p.stat().st_mtime_ns if p.exists() else 0) for p in paths)
    return _webshop_store(stamps, attributes_path is not None, split_by, heldout_fraction, seed)


@lru_cache(maxsize=4)
def _webshop_store(
    stamps: tuple[tuple[str, int], ...],
    has_attributes: bool,
    split_by: str,
    heldout_fraction: float,
    seed: int,
) -> Store:
    start = time.perf_counter()
    paths = [path for path, _ in stamps]
    products, goals = load_webshop(
        paths[0], paths[1], paths[2] if has_attributes else None, seed=seed
    )
    store = build_store(
        products, goals, split_by=split_by, heldout_fraction=heldout_fraction, seed=seed
    )
    return replace(store, build_seconds=time.perf_counter() - start)
