"""The construction routes of rejected stories and the quality dimensions they harm."""

from __future__ import annotations

ROUTES: dict[str, str] = {
    "mismatch": "relevance",
    "shuffle": "coherence",
    "drop_resolution": "coherence",
    "repetition": "fluency",
    "name_swap": "characterization",
    "cliche": "creativity",
    "contradiction": "coherence",
}
"""Construction route of a rejected story -> the dimension it harms."""

DIMENSIONS = ("coherence", "creativity", "characterization", "fluency", "relevance")


def check_route(route: str) -> None:
    """Raise ValueError unless `route` is a key of ROUTES."""
    if route not in ROUTES:
        raise ValueError(f"route must be one of {sorted(ROUTES)}, got {route!r}")
