"""Random scene graphs, deterministic from a `random.Random`, shaped by a `Layout`."""

from __future__ import annotations

import random
from dataclasses import dataclass

from posttrain.data.scenes.facts import fact_table
from posttrain.data.scenes.graph import Scene, Shape
from posttrain.data.scenes.render import PALETTE, SHAPES

CHART_KEYS = ("cats", "dogs", "birds", "fish", "cows", "pigs", "ducks", "bees")
TABLE_COLUMNS = ("Apples", "Pears", "Books", "Pens", "Cards")
TABLE_NAMES = ("Ann", "Bob", "Cai", "Dan", "Eve", "Fay", "Gus", "Hal")
CHART_TITLES = ("Animals seen", "Votes", "Pets")


@dataclass(frozen=True)
class Layout:
    """How the scenes of one split look: image size, grid, and how much each scene holds."""

    size: int = 128
    grid: int = 4
    objects: tuple[int, int] = (3, 6)
    bars: tuple[int, int] = (3, 4)
    table_rows: tuple[int, int] = (2, 3)
    table_columns: int = 2
    named: int = 2

    def __post_init__(self) -> None:
        if self.size < 32:
            raise ValueError(f"size must be at least 32 pixels, got {self.size}")
        if not 2 <= self.grid <= 8:
            raise ValueError(f"grid must be 2..8 cells a side, got {self.grid}")
        for name, (low, high), top in (
            ("objects", self.objects, self.grid * self.grid),
            ("bars", self.bars, len(CHART_KEYS)),
            ("table_rows", self.table_rows, len(TABLE_NAMES)),
        ):
            if not 2 <= low <= high <= top:
                raise ValueError(
                    f"{name} must be a range 2 <= low <= high <= {top}, got {low, high}"
                )
        if not 1 <= self.table_columns <= len(TABLE_COLUMNS):
            raise ValueError(f"table_columns must be 1..{len(TABLE_COLUMNS)}")


def make_scene(rng: random.Random, kind: str, layout: Layout) -> Scene:
    if kind == "shapes":
        return _shapes(rng, layout)
    if kind == "chart":
        keys = rng.sample(CHART_KEYS, rng.randint(*layout.bars))
        bars = tuple((key, rng.randint(1, 9)) for key in keys)
        title = rng.choice(CHART_TITLES)
        return Scene("chart", layout.size, layout.size, title=title, bars=bars, y_max=10)
    if kind == "table":
        header = ("Name", *rng.sample(TABLE_COLUMNS, layout.table_columns))
        names = rng.sample(TABLE_NAMES, rng.randint(*layout.table_rows))
        rows = tuple((n, *(rng.randint(0, 9) for _ in header[1:])) for n in names)
        return Scene("table", layout.size, layout.size, header=header, table=rows)
    raise ValueError(f"unknown scene kind {kind!r}")


def _shapes(rng: random.Random, layout: Layout) -> Scene:
    # Few colours and shapes per scene, so that kinds repeat and counts exceed one.
    colours = rng.sample(sorted(PALETTE), 3)
    shapes = rng.sample(SHAPES, 3)
    n = rng.randint(*layout.objects)
    cells = rng.sample(
        [(r, c) for r in range(1, layout.grid + 1) for c in range(1, layout.grid + 1)], n
    )
    named = set(rng.sample(range(n), min(layout.named, n)))
    names = rng.sample(sorted(fact_table()), len(named))
    cell = layout.size / layout.grid
    objects = []
    for i, (row, col) in enumerate(cells):
        size = rng.choice(("small", "large"))
        half = cell * (0.32 if size == "large" else 0.2)
        cx, cy = (col - 0.5) * cell, (row - 0.6) * cell  # upper part: room for a caption
        box = (round(cx - half), round(cy - half), round(cx + half), round(cy + half))
        name = names.pop() if i in named else None
        objects.append(
            Shape(chr(65 + i), rng.choice(shapes), rng.choice(colours), size, row, col, box, name)
        )
    return Scene("shapes", layout.size, layout.size, rows=layout.grid, cols=layout.grid,
                 objects=tuple(objects))  # fmt: skip
