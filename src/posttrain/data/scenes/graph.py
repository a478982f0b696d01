"""Scene graphs: the exact content of a rendered image, as frozen records with a JSON round trip.

Three kinds of scene: `shapes` (labelled objects on a grid), `chart` (a bar chart) and
`table` (a header and rows of a name and integers). Rows and columns count from 1, as the
questions and step sentences say them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("shapes", "chart", "table")
SCENE_CHUNK = "posttrain-scene"
"""The PNG text chunk that carries a rendered image's scene graph as JSON."""


@dataclass(frozen=True)
class Shape:
    """One object of a shapes scene: `box` is its pixel box (left, top, right, bottom)."""

    label: str
    shape: str
    colour: str
    size: str
    row: int
    col: int
    box: tuple[int, int, int, int]
    name: str | None = None


@dataclass(frozen=True)
class Scene:
    kind: str
    width: int
    height: int
    rows: int = 0
    cols: int = 0
    objects: tuple[Shape, ...] = ()
    title: str = ""
    bars: tuple[tuple[str, int], ...] = ()
    y_max: int = 0
    header: tuple[str, ...] = ()
    table: tuple[tuple[Any, ...], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"scene kind must be one of {KINDS}, got {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # -- what the scene says, for questions, the verifier and the reader --
    def object(self, label: str) -> Shape | None:
        return next((o for o in self.objects if o.label.lower() == label.lower()), None)

    def count(self, colour: str, shape: str) -> int:
        return sum(o.colour == colour and o.shape == shape for o in self.objects)

    def bar(self, key: str) -> int | None:
        return next((v for k, v in self.bars if k.lower() == key.lower()), None)

    def cell(self, row: str, column: str) -> int | None:
        """The integer in the table row named `row` under the header `column` (None if absent)."""
        names = [h.lower() for h in self.header]
        if column.lower() not in names[1:]:
            return None
        at = names.index(column.lower())
        return next((r[at] for r in self.table if str(r[0]).lower() == row.lower()), None)

    def numbers(self) -> set[int]:
        """Every quantity the image shows: counts of each kind, bar values, table cells."""
        kinds = {(o.colour, o.shape) for o in self.objects}
        found = {self.count(c, s) for c, s in kinds}
        found |= {v for _, v in self.bars}
        found |= {v for r in self.table for v in r[1:] if isinstance(v, int)}
        return found


def scene_from_dict(record: dict[str, Any]) -> Scene:
    """The Scene of `to_dict`'s record; a ValueError naming the key that is wrong."""
    try:
        objects = tuple(Shape(**{**o, "box": tuple(o["box"])}) for o in record.get("objects", ()))
        return Scene(
            kind=record["kind"],
            width=int(record["width"]),
            height=int(record["height"]),
            rows=int(record.get("rows", 0)),
            cols=int(record.get("cols", 0)),
            objects=objects,
            title=record.get("title", ""),
            bars=tuple((str(k), int(v)) for k, v in record.get("bars", ())),
            y_max=int(record.get("y_max", 0)),
            header=tuple(record.get("header", ())),
            table=tuple(tuple(r) for r in record.get("table", ())),
        )
    except KeyError as error:
        raise ValueError(f"scene graph lacks key {error.args[0]!r}") from None
    except TypeError as error:
        raise ValueError(f"scene graph has a bad object or row: {error}") from None


def scene_from_json(text: str) -> Scene:
    return scene_from_dict(json.loads(text))
