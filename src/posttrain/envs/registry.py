"""Environments by name: `register_env("name")` on a factory, `env_factory(spec)` to build one.

A spec is a registered name or an import path (`package.module:Factory`; `posttrain.specs`'
grammar, docs/specs.md), so a user's environment plugs in from config without touching
posttrain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from posttrain.envs.base import Env
from posttrain.specs import SpecKind, parse_spec, resolve_import_path

_ENVS: dict[str, Callable[..., Env]] = {}


def register_env(name: str) -> Callable[[Callable[..., Env]], Callable[..., Env]]:
    def add(factory: Callable[..., Env]) -> Callable[..., Env]:
        if name in _ENVS:
            raise ValueError(f"environment {name!r} is already registered")
        _ENVS[name] = factory
        return factory

    return add


def env_factory(spec: str, **kwargs: Any) -> Callable[[], Env]:
    """A zero-argument constructor for the environment `spec` names: a registered name or an
    import path of a factory (a ValueError quoting the spec otherwise)."""
    parsed = parse_spec(
        spec, (SpecKind.NAME, SpecKind.IMPORT_PATH), what="environment", names=_ENVS
    )
    if parsed.kind is SpecKind.NAME:
        factory = _ENVS[parsed.name]
    else:
        factory = resolve_import_path(parsed, what="environment")
    return lambda: factory(**kwargs)
