"""A generated store in WebShop's own file formats, since the scraped one cannot be fetched.

`generate_catalogue(n_products, seed)` returns the three JSON values WebShop ships (see
loader.py): products as in `items_shuffle*.json`, attributes as in `items_ins_v2*.json` and
instructions as in `items_human_ins.json`, so the generated store is read by exactly the code
that reads WebShop's real data. The five categories are WebShop's (beauty, electronics,
fashion, food, furniture); product types, attribute phrases, option values, brands and
sentence templates are our own small tables.

Each product takes a brand, three of its type's attribute phrases, two to four values of each
of its type's options and a price in the type's range; its instructions ask for one or two of
its attributes and one value of every option ("i need a hoodie that is fleece lined, in grey
color and large size"), as WebShop's human instructions do. Same `seed`, same store.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProductType:
    """A kind of product: where it sits in the store and what varies between products."""

    category: str
    breadcrumb: str
    query: str
    noun: str
    attributes: tuple[str, ...]
    options: tuple[tuple[str, tuple[str, ...]], ...]
    price_range: tuple[float, float]


_COLOURS = ("black", "white", "navy blue", "grey", "red", "green", "beige", "pink")
_CLOTHES = ("small", "medium", "large", "x-large", "xx-large")
_SHOE_SIZES = ("7", "8", "9", "10", "11", "12")
_FLAVOURS = ("vanilla", "chocolate", "strawberry", "sea salt", "original", "honey")


def _type(category, breadcrumb, query, noun, attributes, options, low, high) -> ProductType:
    return ProductType(
        category,
        breadcrumb,
        query,
        noun,
        tuple(attributes.split(", ")),
        tuple((name, tuple(values)) for name, values in options),
        (low, high),
    )


PRODUCT_TYPES: tuple[ProductType, ...] = (
    _type(
        "fashion",
        "Clothing, Shoes & Jewelry › Men › Clothing › T-Shirts",
        "men's t-shirts",
        "t-shirt",
        "short sleeve, cotton, machine wash, slim fit, crew neck, moisture wicking",
        [("color", _COLOURS), ("size", _CLOTHES)],
        8,
        35,
    ),
    _type(
        "fashion",
        "Clothing, Shoes & Jewelry › Women › Clothing › Hoodies",
        "women's hoodies",
        "hoodie",
        "fleece lined, long sleeve, drawstring hood, relaxed fit, machine wash, zip up",
        [("color", _COLOURS), ("size", _CLOTHES)],
        18,
        60,
    ),
    _type(
        "fashion",
        "Clothing, Shoes & Jewelry › Men › Shoes › Sneakers",
        "men's running sneakers",
        "running sneaker",
        "non slip, breathable mesh, rubber sole, lightweight, lace up, memory foam",
        [("color", _COLOURS), ("size", _SHOE_SIZES)],
        30,
        120,
    ),
    _type(
        "fashion",
        "Clothing, Shoes & Jewelry › Women › Accessories › Sunglasses",
        "women's sunglasses",
        "sunglasses",
        "polarized lens, uv protection, metal frame, oversized, scratch resistant, lightweight",
        [("color", _COLOURS[:6])],
        10,
        80,
    ),
    _type(
        "beauty",
        "Beauty & Personal Care › Hair Care › Shampoo & Conditioner › Shampoos",
        "sulfate free shampoo",
        "shampoo",
        "sulfate free, paraben free, tea tree, argan oil, dry hair, color safe",
        [("size", ("8 fl oz", "12 fl oz", "16 fl oz", "32 fl oz"))],
        6,
        40,
    ),
    _type(
        "beauty",
        "Beauty & Personal Care › Skin Care › Face › Moisturizers",
        "face moisturizer",
        "face moisturizer",
        "hyaluronic acid, fragrance free, sensitive skin, spf 30, cruelty free, oil free",
        [("size", ("1.7 oz", "2.5 oz", "3.4 oz"))],
        9,
        55,
    ),
    _type(
        "beauty",
        "Beauty & Personal Care › Makeup › Lips › Lipstick",
        "long lasting lipstick",
        "lipstick",
        "long lasting, matte finish, cruelty free, vegan, moisturizing, waterproof",
        [("color", ("red", "pink", "coral", "nude", "plum", "berry"))],
        5,
        30,
    ),
    _type(
        "beauty",
        "Beauty & Personal Care › Tools & Accessories › Hair Dryers",
        "ionic hair dryer",
        "hair dryer",
        "ionic technology, fast drying, low noise, diffuser attachment, foldable handle, cool shot",
        [("color", ("black", "white", "pink", "rose gold"))],
        20,
        150,
    ),
    _type(
        "electronics",
        "Electronics › Headphones › Over-Ear Headphones",
        "wireless headphones",
        "headphone",
        "wireless bluetooth, noise cancelling, long battery life, built-in microphone, "
        "foldable design, fast charging",
        [("color", ("black", "white", "navy blue", "silver"))],
        25,
        200,
    ),
    _type(
        "electronics",
        "Electronics › Cell Phones & Accessories › Cases",
        "phone case",
        "phone case",
        "shockproof, slim design, wireless charging compatible, clear back, "
        "raised edges, kickstand",
        [
            ("color", ("black", "clear", "blue", "pink", "green")),
            ("size", ("6.1 inch", "6.7 inch")),
        ],
        6,
        35,
    ),
    _type(
        "electronics",
        "Electronics › Computers & Accessories › Cables › USB Cables",
        "usb c cable",
        "usb c cable",
        "fast charging, braided nylon, data transfer, durable, tangle free, 60w power",
        [("size", ("3 ft", "6 ft", "10 ft")), ("color", ("black", "white", "grey"))],
        5,
        25,
    ),
    _type(
        "electronics",
        "Electronics › Home Audio › Speakers › Portable Speakers",
        "portable bluetooth speaker",
        "portable speaker",
        "waterproof, wireless bluetooth, deep bass, long battery life, outdoor, "
        "built-in microphone",
        [("color", ("black", "blue", "red", "grey"))],
        20,
        150,
    ),
    _type(
        "food",
        "Grocery & Gourmet Food › Snacks › Protein Bars",
        "protein bars",
        "protein bar",
        "gluten free, high protein, low sugar, keto friendly, non gmo, plant based",
        [("flavor", _FLAVOURS), ("size", ("pack of 6", "pack of 12", "pack of 24"))],
        10,
        45,
    ),
    _type(
        "food",
        "Grocery & Gourmet Food › Beverages › Coffee › Ground Coffee",
        "ground coffee",
        "ground coffee",
        "medium roast, dark roast, organic, fair trade, arabica beans, low acid",
        [("flavor", ("original", "hazelnut", "vanilla", "caramel")), ("size", ("12 oz", "2 lb"))],
        7,
        40,
    ),
    _type(
        "food",
        "Grocery & Gourmet Food › Beverages › Tea › Green Tea",
        "green tea bags",
        "green tea",
        "caffeine free, organic, individually wrapped, non gmo, sugar free, decaf",
        [
            ("flavor", ("original", "jasmine", "mint", "lemon", "honey")),
            ("size", ("20 count", "100 count")),
        ],
        4,
        25,
    ),
    _type(
        "food",
        "Grocery & Gourmet Food › Pantry › Nut Butters",
        "peanut butter",
        "peanut butter",
        "no sugar added, natural ingredients, high protein, vegan, gluten free, crunchy",
        [("flavor", ("original", "honey", "chocolate", "sea salt")), ("size", ("16 oz", "28 oz"))],
        4,
        20,
    ),
    _type(
        "furniture",
        "Home & Kitchen › Furniture › Living Room Furniture › Coffee Tables",
        "coffee table",
        "coffee table",
        "easy assembly, solid wood, storage shelf, metal frame, rustic style, space saving",
        [("color", ("walnut", "black", "white", "oak"))],
        50,
        300,
    ),
    _type(
        "furniture",
        "Home & Kitchen › Furniture › Home Office Furniture › Office Chairs",
        "ergonomic office chair",
        "office chair",
        "lumbar support, adjustable height, breathable mesh, swivel, armrest, high back",
        [("color", ("black", "grey", "white", "blue"))],
        60,
        350,
    ),
    _type(
        "furniture",
        "Home & Kitchen › Furniture › Bedroom Furniture › Nightstands",
        "nightstand",
        "nightstand",
        "easy assembly, storage drawer, solid wood, modern style, charging station, space saving",
        [("color", ("white", "black", "oak", "grey"))],
        30,
        180,
    ),
    _type(
        "furniture",
        "Home & Kitchen › Bedding › Blankets & Throws › Throws",
        "throw blanket",
        "throw blanket",
        "super soft, machine washable, fleece, lightweight, all season, faux fur",
        [("color", _COLOURS), ("size", ("50 x 60 inch", "60 x 80 inch", "90 x 90 inch"))],
        15,
        70,
    ),
)

BRANDS = [
    "Norvik",
    "Arlo",
    "Belmont",
    "Calder",
    "Dunmore",
    "Elvara",
    "Fenwick",
    "Galloway",
    "Halden",
    "Iverly",
    "Juniper",
    "Kestrel",
    "Lumen",
    "Marlow",
    "Northway",
    "Orrin",
    "Pellam",
    "Quill",
    "Redmond",
    "Sable",
    "Tamsin",
    "Umbra",
    "Verity",
    "Wexley",
]

_INSTRUCTION_TEMPLATES = (
    "i need {a} {noun} that is {attributes}{options}",
    "i am looking for {a} {attributes} {noun}{options}",
    "find me {a} {noun} with {attributes}{options}",
    "i want to buy {a} {noun}, {attributes}{options}",
)
_FEATURE_TEMPLATES = (
    "{Attribute}: made to last, tested for everyday use",
    "{Attribute} design that customers ask for",
    "Backed by {brand}'s 30-day return promise",
)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _asin(rng: random.Random, taken: set[str]) -> str:
    while True:
        asin = "B0" + "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", k=8))
        if asin not in taken:
            taken.add(asin)
            return asin


def _product(rng: random.Random, kind: ProductType, asin: str) -> tuple[dict, list[str]]:
    """One product in `items_shuffle` format, and its attributes."""
    brand = rng.choice(BRANDS)
    attributes = rng.sample(kind.attributes, 3)
    shown = " ".join(word.capitalize() for word in attributes[0].split())
    title = f"{brand} {shown} {kind.noun.title()} - {attributes[1].title()}"
    options = {}
    for name, values in kind.options:
        chosen = rng.sample(values, rng.randint(2, min(4, len(values))))
        options[name] = [{"value": value.title(), "image": None} for value in chosen]
    price = round(rng.uniform(*kind.price_range), 2) - 0.01
    description = (
        f"The {brand} {kind.noun} is {attributes[0]} and {attributes[1]}. "
        f"It is also {attributes[2]}, so it suits daily use."
    )
    features = [
        template.format(Attribute=attributes[i].capitalize(), brand=brand)
        for i, template in enumerate(_FEATURE_TEMPLATES)
    ]
    raw = {
        "asin": asin,
        "name": title,
        "full_description": description,
        "small_description": features,
        "pricing": f"${max(price, 0.99):.2f}",
        "customization_options": options,
        "images": [],
        "category": kind.category,
        "query": kind.query,
        "product_category": kind.breadcrumb,
    }
    return raw, attributes


def _instruction(rng: random.Random, kind: ProductType, raw: dict, attributes: list[str]) -> dict:
    """One `items_human_ins` entry asking for this product."""
    wanted = rng.sample(attributes, rng.randint(1, 2))
    chosen = {
        name: rng.choice(values)["value"].lower()
        for name, values in raw["customization_options"].items()
    }
    options = ", in " + " and ".join(f"{value} {name}" for name, value in chosen.items())
    template = rng.choice(_INSTRUCTION_TEMPLATES)
    text = template.format(
        a=_article(kind.noun if "{a} {noun}" in template else wanted[0]),
        noun=kind.noun,
        attributes=" and ".join(wanted),
        options=options if chosen else "",
    )
    return {
        "asin": raw["asin"],
        "instruction": text,
        "instruction_attributes": wanted,
        "instruction_options": list(chosen.values()),
    }


def generate_catalogue(
    n_products: int = 300, seed: int = 0, instructions_per_product: int = 2
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """(products, attributes, instructions) in WebShop's JSON formats; types take turns so
    every type has about `n_products / len(PRODUCT_TYPES)` products."""
    if n_products < 1:
        raise ValueError(f"n_products must be >= 1, got {n_products}")
    if instructions_per_product < 1:
        raise ValueError(f"instructions_per_product must be >= 1, got {instructions_per_product}")
    rng = random.Random(seed)
    taken: set[str] = set()
    products, attributes, instructions = [], {}, {}
    for i in range(n_products):
        kind = PRODUCT_TYPES[i % len(PRODUCT_TYPES)]
        raw, attrs = _product(rng, kind, _asin(rng, taken))
        products.append(raw)
        attributes[raw["asin"]] = {"attributes": attrs}
        instructions[raw["asin"]] = [
            _instruction(rng, kind, raw, attrs) for _ in range(instructions_per_product)
        ]
    rng.shuffle(products)  # items_shuffle: no order to exploit
    return products, attributes, instructions
