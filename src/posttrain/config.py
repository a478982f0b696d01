"""Typed configs: YAML files and `--set key=value` overrides into dataclasses.

Every error names the offending key (dotted path), what was expected and what was given,
so a typo in a 200-line config is found at load time rather than an hour into training.
"""

from __future__ import annotations

import dataclasses
import difflib
import keyword
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from posttrain.errors import InputError, not_utf8

T = TypeVar("T")


class ConfigError(InputError):
    """A config file or override that does not fit its dataclass.

    `field`: the dotted key at fault where known (the message names it already); it tells
    a file's mistake from an override's."""

    field: str | None = None


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] = ()) -> T:
    """Build `cls` from a YAML file (optional) and `key=value` overrides applied on top.

    A class with a static `translate_keys(mapping) -> mapping` gets the merged mapping first,
    so it can accept another tool's spellings (RLConfig: TRL's GRPOConfig names). Errors
    name the file (and line) or `--set`, then the key."""
    data = read_yaml_mapping(Path(path)) if path is not None else {}
    overridden = []
    for item in overrides:
        key, value = parse_override(item)
        try:
            set_dotted(data, key, value)
        except ConfigError as err:
            raise ConfigError(str(err), "--set") from None
        overridden.append(key)
    try:
        translate = getattr(cls, "translate_keys", None)
        return from_dict(cls, translate(data) if translate is not None else data)
    except ConfigError as err:
        from_override = err.field is not None and any(
            _related(err.field, key) for key in overridden
        )
        where = "--set" if from_override or (path is None and overrides) else path
        raise ConfigError(err.detail, where) from None


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A config file's top-level mapping; a missing, unreadable, empty or non-mapping file is
    an error naming it (an empty file is a mistake: leave out --config for the defaults)."""
    if not path.exists():
        raise ConfigError("config file not found", path)
    if not path.is_file():
        raise ConfigError("is a directory, not a YAML config file", path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise not_utf8(path, raw, err, ConfigError) from None
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problem = getattr(err, "problem", None) or str(err)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"not valid YAML: {problem}", path, line=line) from None
    if loaded is None:
        raise ConfigError(
            "the config is empty; set at least one key, or leave out --config for the defaults",
            path,
        )
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"expected a mapping of keys at the top level, got a {type(loaded).__name__}", path
        )
    return loaded


def _related(field: str, key: str) -> bool:
    """Whether dotted `field` lies on the path of override `key` (`a.b` and `a.b.c`, `a[1]`)."""
    return any(
        longer == shorter or longer.startswith((shorter + ".", shorter + "["))
        for longer, shorter in ((field, key), (key, field))
    )


def parse_override(item: str) -> tuple[str, Any]:
    """`train.lr=3e-4` -> ("train.lr", 0.0003); the value is read as YAML."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{item!r} is not of the form key=value", "--set")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """Set `a.b.c` in a nested mapping, making the sections on the way."""
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: {part!r} is not a section")
        node = child
    node[leaf] = value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Recursively build dataclass `cls` from a plain mapping, checking keys and types."""
    if not isinstance(data, dict):
        raise _error(
            prefix.rstrip(".") or None,
            f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(data).__name__}",
        )
    # A section named after a Python keyword (`async`) lives in the field `async_`.
    fields = {_key(f.name): f.name for f in dataclasses.fields(cls) if f.init}
    factories = {f.name: f.default_factory for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            raise _error(dotted, f"unknown key {dotted!r}{hint} (known: {', '.join(fields)})")
        name = fields[key]
        factory = factories[name]
        if dataclasses.is_dataclass(hints[name]) and isinstance(value, dict) and callable(factory):
            # A partial section overrides the field's own default (a recipe's demo-sized
            # settings), not the bare defaults of the section's class.
            value = _merged(to_dict(factory()), value)
        kwargs[name] = _coerce(hints[name], value, dotted)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        field = prefix.rstrip(".") or None
        raise _error(field, f"{field or cls.__name__}: {err}") from None


def _error(field: str | None, message: str) -> ConfigError:
    """A ConfigError about dotted key `field` (None: the config as a whole)."""
    err = ConfigError(message)
    err.field = field
    return err


def _merged(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            value = _merged(out[key], value)
        out[key] = value
    return out


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value if value is not None else {}, prefix=f"{key}.")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, key)
            except ConfigError as err:
                errors.append(str(err))
        raise _error(key, f"{key}: expected {_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value in args:
            return value
        raise _error(key, f"{key}: expected one of {list(args)}, got {value!r}")
    if origin in (list, tuple):
        if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
            raise _error(key, f"{key}: expected {_name(tp)}, got {value!r}")
        item_tp = args[0] if args else Any
        items = [_coerce(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value)]
        return items if origin is list else tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise _error(key, f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:  # YAML 1.1 reads "3e-4" (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if tp is Path and isinstance(value, str):
        return Path(value)
    if (
        isinstance(tp, type)
        and isinstance(value, tp)
        and not (tp is int and isinstance(value, bool))
    ):
        return value
    raise _error(key, f"{key}: expected {_name(tp)}, got {value!r} ({type(value).__name__})")


def _key(field_name: str) -> str:
    """The config key of a dataclass field: `async_` is written `async`."""
    bare = field_name.removesuffix("_")
    return bare if bare != field_name and keyword.iskeyword(bare) else field_name


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain YAML-safe data (paths as strings, tuples as lists)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {_key(f.name): plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, Path):
            return str(value)
        return value

    return plain(config)


def dump_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
