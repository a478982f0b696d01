"""Read WebShop's own data files (princeton-nlp/WebShop, `setup.sh` downloads them):

- products, `items_shuffle*.json`: a JSON list of scraped products, each with `asin`, `name`,
  `full_description`, `small_description` (a string or a list of feature lines), `pricing`
  ("$12.99", or two prices such as "$9.99 - $15.99"), `customization_options`
  ({option name: [{"value": ..., "image": ...}, ...]} or null), `category`, `query` and
  `product_category`; other keys are ignored;
- attributes, `items_ins_v2*.json`: {asin: {"attributes": [...], "instruction": ...,
  "instruction_attributes": [...]}}, the product attributes the reward looks for;
- human instructions, `items_human_ins.json`: {asin: [{"instruction": ...,
  "instruction_attributes": [...], "instruction_options": [...]}, ...]}.

`parse_products`, `parse_attributes` and `goals_from_instructions` are the one reading path:
the generated catalogue (generate.py) writes these same formats and goes through them too.
Options are read as WebShop's engine reads them (names and values lower-cased, "/" in a value
shown as " | "), a price range is priced at one draw inside it (WebShop draws uniformly;
here the draw is seeded by the asin so every process agrees), and a goal's price bound
follows WebShop's rule: two of the first four multiples of 10 above the price, the larger
kept, the instruction ending ", and price lower than X dollars".

Every problem is an `InputError` naming the file and the key path (`[3].pricing`,
`B0123.instruction_options`).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from posttrain.envs.webshop.records import Goal, Product
from posttrain.errors import InputError

PRICE_STEPS = tuple(10.0 * i for i in range(1, 100))
"""WebShop's candidate price bounds."""

PRICE_TEXT = ", and price lower than {:.2f} dollars"

_PRODUCT_KEYS = (
    "asin",
    "name",
    "full_description",
    "small_description",
    "pricing",
    "customization_options",
    "category",
    "query",
    "product_category",
)


def read_json(path: str | Path) -> Any:
    """The JSON value in `path`; an InputError naming the file when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("file not found", path) from None
    except UnicodeDecodeError as error:
        raise InputError(f"not UTF-8 text ({error.reason})", path) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"not JSON: {error.msg}", path, line=error.lineno) from None


def _need(record: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path, where: str):
    """`record[key]`, checked for presence and type."""
    if key not in record:
        raise InputError("missing key", path, key=f"{where}.{key}")
    value = record[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InputError(
            f"expected {names}, got {type(value).__name__}", path, key=f"{where}.{key}"
        )
    return value


def _string_list(value: Any, path, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InputError("expected a list of strings", path, key=key)
    return tuple(value)


def parse_pricing(text: str | None, path, key: str) -> list[float]:
    """The one or two prices in a WebShop `pricing` string ([] when there is none)."""
    if not text:
        return []
    prices = []
    for piece in text.split("$")[1:]:
        digits = re.sub(r"[^\d.]", "", piece)
        try:
            prices.append(float(digits))
        except ValueError:
            raise InputError(f"unreadable price {piece.strip()!r}", path, key=key) from None
    if not prices:
        raise InputError(f"no $-price in {text!r}", path, key=key)
    return prices[:2]


def _options(raw: Any, path, key: str) -> MappingProxyType[str, tuple[str, ...]]:
    if raw is None:
        return MappingProxyType({})
    if not isinstance(raw, dict):
        raise InputError(f"expected an object or null, got {type(raw).__name__}", path, key=key)
    options: dict[str, tuple[str, ...]] = {}
    for name, contents in raw.items():
        if contents is None:
            continue
        if not isinstance(contents, list):
            raise InputError("expected a list of {value, image}", path, key=f"{key}.{name}")
        values = []
        for i, content in enumerate(contents):
            if not isinstance(content, dict) or not isinstance(content.get("value"), str):
                raise InputError("missing string 'value'", path, key=f"{key}.{name}[{i}]")
            values.append(content["value"].strip().replace("/", " | ").lower())
        options[name.lower()] = tuple(values)
    return MappingProxyType(options)


def parse_products(
    raw: Any, path: str | Path, attributes: Mapping[str, list[str]] | None = None
) -> list[Product]:
    """Products from the value of an `items_shuffle*.json` file; `attributes` ({asin: [...]},
    from `parse_attributes`) fills each product's attribute list. Repeated asins keep the
    first, as WebShop's loader does."""
    if not isinstance(raw, list):
        raise InputError(f"expected a JSON list of products, got {type(raw).__name__}", path)
    attributes = attributes or {}
    products: dict[str, Product] = {}
    for i, record in enumerate(raw):
        where = f"[{i}]"
        if not isinstance(record, dict):
            raise InputError("expected an object", path, key=where)
        for key in _PRODUCT_KEYS:
            if key not in record:
                raise InputError("missing key", path, key=f"{where}.{key}")
        asin = _need(record, "asin", str, path, where)
        if asin in products:
            continue
        bullets = _need(record, "small_description", (str, list), path, where)
        bullets = _string_list(bullets if isinstance(bullets, list) else [bullets], path, where)
        pricing = _need(record, "pricing", (str, type(None)), path, where)
        prices = parse_pricing(pricing, path, f"{where}.pricing") or [100.0]
        if len(prices) == 1:
            price, tag = prices[0], f"${prices[0]:.2f}"
        else:
            price = random.Random(asin).uniform(*prices)
            tag = f"${prices[0]:.2f} to ${prices[1]:.2f}"
        products[asin] = Product(
            asin=asin,
            title=_need(record, "name", str, path, where),
            price=round(price, 2),
            price_tag=tag,
            description=_need(record, "full_description", (str, type(None)), path, where) or "",
            bullet_points=bullets,
            options=_options(
                record["customization_options"], path, f"{where}.customization_options"
            ),
            attributes=tuple(attributes.get(asin, ())),
            category=_need(record, "category", str, path, where),
            query=_need(record, "query", str, path, where).lower().strip(),
            product_category=_need(record, "product_category", str, path, where),
        )
    return list(products.values())


def parse_attributes(raw: Any, path: str | Path) -> dict[str, list[str]]:
    """{asin: attributes} from the value of an `items_ins_v2*.json` file."""
    if not isinstance(raw, dict):
        raise InputError(f"expected a JSON object keyed by asin, got {type(raw).__name__}", path)
    found = {}
    for asin, record in raw.items():
        if not isinstance(record, dict):
            raise InputError("expected an object", path, key=asin)
        if "attributes" in record:
            found[asin] = list(_string_list(record["attributes"], path, f"{asin}.attributes"))
    return found


def price_bound(price: float, rng: random.Random) -> float | None:
    """WebShop's bound for a goal on a product costing `price`; None when fewer than two
    steps lie above it (the instruction then states no price)."""
    above = [step for step in PRICE_STEPS if step > price][:4]
    if len(above) < 2:
        return None
    return max(rng.sample(above, 2))


def goals_from_instructions(
    raw: Any, path: str | Path, products: Mapping[str, Product], *, seed: int = 0
) -> list[Goal]:
    """Goals from the value of an `items_human_ins.json`-format file, for products in
    `products` (instructions on other products are skipped, as WebShop's loader never sees
    them). Instructions without attributes are skipped, as in WebShop."""
    if not isinstance(raw, dict):
        raise InputError(f"expected a JSON object keyed by asin, got {type(raw).__name__}", path)
    goals = []
    for asin, entries in raw.items():
        if not isinstance(entries, list):
            raise InputError("expected a list of instructions", path, key=asin)
        product = products.get(asin)
        for k, entry in enumerate(entries):
            where = f"{asin}[{k}]"
            if not isinstance(entry, dict):
                raise InputError("expected an object", path, key=where)
            text = _need(entry, "instruction", str, path, where)
            wanted = _string_list(
                _need(entry, "instruction_attributes", list, path, where),
                path,
                f"{where}.instruction_attributes",
            )
            options = _need(entry, "instruction_options", (list, dict), path, where)
            if isinstance(options, dict):  # the synthetic goals' {name: value} form
                options = list(options.values())
            options = _string_list(options, path, f"{where}.instruction_options")
            if product is None or not wanted:
                continue
            bound = price_bound(product.price, random.Random(f"{seed}:{asin}:{k}"))
            suffix = "" if bound is None else PRICE_TEXT.format(bound)
            goals.append(
                Goal(
                    id=f"{asin}-{k}",
                    asin=asin,
                    instruction_text=text.strip().strip(".") + suffix,
                    attributes=wanted,
                    options=options,
                    price_upper=1_000_000.0 if bound is None else bound,
                    query=product.query,
                    category=product.category,
                    product_category=product.product_category,
                    name=product.title,
                )
            )
    return goals


def load_webshop(
    products_path: str | Path,
    instructions_path: str | Path,
    attributes_path: str | Path | None = None,
    *,
    seed: int = 0,
) -> tuple[list[Product], list[Goal]]:
    """WebShop's own files: products (`items_shuffle*.json`), human instructions
    (`items_human_ins.json`) and optionally attributes (`items_ins_v2*.json`)."""
    attributes = (
        parse_attributes(read_json(attributes_path), attributes_path) if attributes_path else {}
    )
    products = parse_products(read_json(products_path), products_path, attributes)
    by_asin = {product.asin: product for product in products}
    goals = goals_from_instructions(
        read_json(instructions_path), instructions_path, by_asin, seed=seed
    )
    if not goals:
        raise InputError("no instruction names a product of the product file", instructions_path)
    return products, goals
