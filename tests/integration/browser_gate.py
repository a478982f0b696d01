"""The browser tests' gate (imported by each browser test module at import time): outside CI
a machine without Debian's chromium or the playwright package skips the module; CI installs
both (the Makefile, as root), so there a missing one is a failure, never a quiet skip."""

from __future__ import annotations

import os

import pytest

from posttrain.maic.browser import CHROMIUM, missing_parts

__all__ = ["CHROMIUM", "require_browser"]


def require_browser(what: str) -> None:
    """Skip the calling module (or fail under CI=true) when the browser cannot run."""
    missing = missing_parts()
    if not missing:
        return
    reason = f"{what} needs " + " and ".join(missing)
    if os.environ.get("CI", "").lower() in ("1", "true"):
        raise RuntimeError(reason + "; `make test` installs both")
    pytest.skip(reason, allow_module_level=True)
