"""Environments by name: `register_env("name")` on a factory, `make_env(spec)` to build one.

A spec is a registered name or a dotted import path (`package.module:Factory`), so a user's
environment plugs in from config without touching posttrain.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from posttrain.envs.base import Env

_ENVS: dict[str, Callable[..., Env]] = {}


def register_env(name: str) -> Callable[[Callable[..., Env]], Callable[..., Env]]:
    def add(factory: Callable[..., Env]) -> Callable[..., Env]:
        if name in _ENVS:
            raise ValueError(f"environment {name!r} is already registered")
        _ENVS[name] = factory
        return factory

    return add


def env_factory(spec: str, **kwargs: Any) -> Callable[[], Env]:
    """A zero-argument constructor for the environment `spec` names."""
    if spec in _ENVS:
        factory = _ENVS[spec]
    elif ":" in spec or "." in spec:
        module_name, _, attr = spec.replace(":", ".").rpartition(".")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as error:
            raise ValueError(f"cannot import environment {spec!r}: {error}") from None
    else:
        raise ValueError(f"unknown environment {spec!r}; registered: {sorted(_ENVS)}")
    return lambda: factory(**kwargs)
