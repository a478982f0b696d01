"""The phrase and rubric tables of the data generators, shipped as YAML next to this module,
and the one loader that reads them.

Each generator (the knowledge-graph world, health chats, wild conversations, stories, the
judge-bias registry) keeps its words in `<name>.yaml` here and its logic in code. `table`
reads one top-level key of one file and checks it against the type the code expects, so a
bad edit fails at import with the file, line and key at fault, never later as a wrong row.
Sequences come back as tuples and records as the dataclass or NamedTuple asked for; the file
is parsed once per process.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from posttrain.data.io import DataError, read_text

TABLES_DIR = Path(__file__).resolve().parent
"""Where the YAML tables live (package data: pyproject lists `data/tables/*.yaml`)."""

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def table_path(name: str) -> Path:
    """The file of table `name` ("kg" -> .../tables/kg.yaml)."""
    return TABLES_DIR / f"{name}.yaml"


@functools.cache
def _parsed(name: str) -> tuple[str, dict[str, Any]]:
    """(text, top-level mapping) of table `name`; the text is kept to find lines for errors."""
    path = table_path(name)
    text = read_text(path)
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        line = err.problem_mark.line + 1 if err.problem_mark else None
        raise DataError(f"not valid YAML: {err.problem}", path, line=line) from None
    if not isinstance(data, dict):
        raise DataError("expected a mapping of table names at the top level", path)
    return text, data


def table_keys(name: str) -> list[str]:
    """The top-level keys of table `name`, in file order."""
    return list(_parsed(name)[1])


def table(name: str, key: str, expected: Any) -> Any:
    """Top-level `key` of table `name`, checked against the type `expected` and converted:
    `str`, `int`, `float`, `bool`, `tuple[X, ...]`, `tuple[X, Y]`, `dict[K, V]`,
    `frozenset[X]`, `X | None`, a dataclass or a NamedTuple (both read from a mapping of
    their fields). A mismatch raises `DataError` naming the file, line and key."""
    path = table_path(name)
    text, data = _parsed(name)
    if key not in data:
        raise DataError(f"missing table; the file has {', '.join(data) or 'none'}", path, key=key)
    try:
        return _convert(data[key], expected, [key])
    except _Mismatch as err:
        where = _dotted(err.keys)
        raise DataError(err.detail, path, line=_line_of(text, err.keys), key=where) from None


class _Mismatch(Exception):
    def __init__(self, detail: str, keys: list[str | int]) -> None:
        super().__init__(detail)
        self.detail = detail
        self.keys = keys


def _dotted(keys: list[str | int]) -> str:
    out = ""
    for k in keys:
        out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else str(k))
    return out


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    kind = {dict: "a mapping", list: "a list", bool: "true/false"}.get(type(value))
    return kind or f"{type(value).__name__} {value!r:.60}"


def _convert(value: Any, expected: Any, keys: list[str | int]) -> Any:
    origin, args = typing.get_origin(expected), typing.get_args(expected)
    if origin in (types.UnionType, typing.Union):
        for option in args:
            try:
                return _convert(value, option, keys)
            except _Mismatch:
                continue
        names = " or ".join(getattr(a, "__name__", str(a)) for a in args)
        raise _Mismatch(f"expected {names}, got {_describe(value)}", keys)
    if expected is type(None):
        if value is not None:
            raise _Mismatch(f"expected nothing (null), got {_describe(value)}", keys)
        return None
    if origin is tuple:
        return _sequence(value, args, keys)
    if origin is frozenset:
        return frozenset(_sequence(value, (args[0], ...), keys))
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch(f"expected a mapping, got {_describe(value)}", keys)
        return {
            _convert(k, args[0], [*keys, str(k)]): _convert(v, args[1], [*keys, str(k)])
            for k, v in value.items()
        }
    if dataclasses.is_dataclass(expected) or _is_namedtuple(expected):
        return _record(value, expected, keys)
    return _scalar(value, expected, keys)


def _sequence(value: Any, args: tuple[Any, ...], keys: list[str | int]) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise _Mismatch(f"expected a list, got {_describe(value)}", keys)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(_convert(v, args[0], [*keys, i]) for i, v in enumerate(value))
    if len(value) != len(args):
        raise _Mismatch(f"expected a list of {len(args)} items, got {len(value)}", keys)
    pairs = enumerate(zip(value, args, strict=True))
    return tuple(_convert(v, a, [*keys, i]) for i, (v, a) in pairs)


def _is_namedtuple(cls: Any) -> bool:
    return isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")


def _record(value: Any, cls: Any, keys: list[str | int]) -> Any:
    """A dataclass or NamedTuple from a mapping of its fields (defaulted ones may be left out)."""
    if not isinstance(value, dict):
        raise _Mismatch(f"expected a mapping with the fields of {cls.__name__}", keys)
    hints = typing.get_type_hints(cls)
    if dataclasses.is_dataclass(cls):
        fields = [f.name for f in dataclasses.fields(cls)]
        required = {
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        }
    else:
        fields = list(cls._fields)
        required = set(fields) - set(cls._field_defaults)
    unknown = [k for k in value if k not in fields]
    if unknown:
        raise _Mismatch(
            f"unknown field {unknown[0]!r}; {cls.__name__} has {', '.join(fields)}",
            [*keys, str(unknown[0])],
        )
    missing = [f for f in fields if f in required and f not in value]
    if missing:
        raise _Mismatch(f"missing field {missing[0]!r} of {cls.__name__}", keys)
    converted = {k: _convert(v, hints[k], [*keys, k]) for k, v in value.items()}
    return cls(**converted)


def _scalar(value: Any, expected: Any, keys: list[str | int]) -> Any:
    if expected is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if expected is Any:
        return value
    # bool is an int in Python; a YAML `yes`/`no` where a number or text belongs is a mistake.
    if isinstance(value, bool) and expected is not bool:
        raise _Mismatch(f"expected {expected.__name__}, got {_describe(value)} (quote it)", keys)
    if not isinstance(value, expected):
        raise _Mismatch(f"expected {expected.__name__}, got {_describe(value)}", keys)
    return value


def _line_of(text: str, keys: list[str | int]) -> int | None:
    """The 1-based line of the node at `keys`, or of the deepest node found on the way."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return None
    line = None
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            found = [(k, v) for k, v in node.value if k.value == str(key)]
            if not found:
                break
            key_node, node = found[0]
            line = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int):
            if key >= len(node.value):
                break
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line
