"""The shipped phrase tables: the loader's type checks and its errors (file, line, key), and
that every shipped table file parses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import pytest

from posttrain.data import tables
from posttrain.data.io import DataError
from posttrain.data.tables import TABLES_DIR, table, table_keys


@dataclass(frozen=True)
class Item:
    name: str
    points: int
    tags: tuple[str, ...] = ()


class Pair(NamedTuple):
    left: str
    right: float


@pytest.fixture
def tables_in(tmp_path, monkeypatch):
    """Point the loader at `tmp_path`; the parse cache is emptied before and after."""
    monkeypatch.setattr(tables, "TABLES_DIR", tmp_path)
    tables._parsed.cache_clear()
    yield tmp_path
    tables._parsed.cache_clear()


def write(directory, text: str) -> None:
    (directory / "t.yaml").write_text(text, encoding="utf-8")


def test_values_come_back_typed_and_immutable(tables_in):
    write(
        tables_in,
        "words: [a, b]\n"
        "nested: {x: [[p, 1], [q, 2]]}\n"
        "items:\n  - {name: one, points: 3}\n  - {name: two, points: -1, tags: [t]}\n"
        "pair: {left: l, right: 2}\n"
        "maybe: null\n"
        "counts: {1: [a], 2: [b, c]}\n",
    )
    assert table("t", "words", tuple[str, ...]) == ("a", "b")
    nested = table("t", "nested", dict[str, tuple[tuple[str, int], ...]])
    assert nested == {"x": (("p", 1), ("q", 2))}
    assert table("t", "items", tuple[Item, ...]) == (Item("one", 3), Item("two", -1, ("t",)))
    pair = table("t", "pair", Pair)
    assert pair == ("l", 2.0) and isinstance(pair.right, float)
    assert table("t", "maybe", str | None) is None
    assert table("t", "counts", dict[int, tuple[str, ...]]) == {1: ("a",), 2: ("b", "c")}
    assert table("t", "words", frozenset[str]) == frozenset({"a", "b"})
    assert table_keys("t") == ["words", "nested", "items", "pair", "maybe", "counts"]
    # Each call converts afresh, so no caller can change what another one reads.
    assert table("t", "nested", dict[str, tuple[tuple[str, int], ...]]) is not nested


@pytest.mark.parametrize(
    ("text", "expected", "message"),
    [
        ("k:\n  - a\n  - 3\n", tuple[str, ...], r"t\.yaml:3: k\[1\]: expected str, got int 3"),
        ("k:\n  - a\n  - no\n", tuple[str, ...], r"t\.yaml:3: k\[1\]: .*true/false \(quote it\)"),
        ("k: [a, b, c]\n", tuple[str, str], r"t\.yaml:1: k: expected a list of 2 items, got 3"),
        ("k: {a: x}\n", tuple[str, ...], r"t\.yaml:1: k: expected a list, got a mapping"),
        (
            "k:\n  - {name: one, points: 3}\n  - {name: two, pionts: 1}\n",
            tuple[Item, ...],
            r"t\.yaml:3: k\[1\]\.pionts: unknown field 'pionts'; Item has name, points, tags",
        ),
        (
            "k:\n  - {name: one}\n",
            tuple[Item, ...],
            r"t\.yaml:2: k\[0\]: missing field 'points' of Item",
        ),
        (
            "k:\n  x:\n    y: [1, 2]\n",
            dict[str, dict[str, tuple[str, ...]]],
            r"t\.yaml:3: k\.x\.y\[0\]: expected str, got int 1",
        ),
        ("other: 1\n", str, r"t\.yaml: k: missing table; the file has other"),
        ("k: [a\nb: c\n", str, r"t\.yaml:\d+: not valid YAML"),
        ("- a\n- b\n", str, r"t\.yaml: expected a mapping of table names at the top level"),
    ],
)
def test_errors_name_file_line_and_key(tables_in, text, expected, message):
    write(tables_in, text)
    with pytest.raises(DataError, match=message):
        table("t", "k", expected)


def test_a_missing_table_file_is_named(tables_in):
    with pytest.raises(DataError, match=r"nothing\.yaml: file not found"):
        table("nothing", "k", str)


@pytest.mark.parametrize("path", sorted(TABLES_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_each_shipped_table_parses(path):
    assert table_keys(path.stem), f"{path} has no tables"
