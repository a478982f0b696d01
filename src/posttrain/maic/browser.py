"""A headless Chromium for checking MAIC-UI pages: Debian's chromium driven by Playwright.

Why this shape: Playwright's own browser download needs the network and a second copy of
Chromium, so we always launch the system browser through `executable_path` (Debian's
`chromium` package) with flags for a root user on a closed network. Launching costs about
a second, so callers that check many pages open one browser with `chromium()` and pass it
to `verify_page(..., browser=...)`; each page then gets its own cheap browser context.

The sync Playwright API is used (the verifier is a plain function called from the
generator, the benchmark and the studio's worker). A sync Playwright object belongs to the
thread that started it and cannot run inside a running asyncio loop: a server must call
the verifier from one worker thread that owns the browser.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # playwright is an optional extra; importing it is deferred to launch
    from playwright.sync_api import Browser

CHROMIUM = "/usr/bin/chromium"
"""Debian's chromium (`apt-get install chromium`)."""

FLAGS = (
    "--no-sandbox",  # runs as root in containers, where the setuid sandbox is unavailable
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def missing_parts(executable: str | Path = CHROMIUM) -> list[str]:
    """What is missing to launch the browser, each with how to install it (empty: ready)."""
    missing = []
    if not Path(executable).exists():
        missing.append(f"chromium at {executable} (Debian: apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install playwright)")
    return missing


@contextmanager
def chromium(headless: bool = True, *, executable: str | Path = CHROMIUM) -> Iterator[Browser]:
    """A launched Chromium for as long as the `with` block lasts, closed after.

    Raises RuntimeError naming what is missing (the browser, the Python package) and how to
    install it, instead of Playwright's advice to download its own browser."""
    missing = missing_parts(executable)
    if missing:
        raise RuntimeError(
            "checking pages in a browser needs " + " and ".join(missing) + "; no browser is "
            "downloaded (Playwright is pointed at the system chromium)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=headless, args=list(FLAGS)
        )
        try:
            yield browser
        finally:
            browser.close()
