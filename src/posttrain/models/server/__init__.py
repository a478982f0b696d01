"""OpenAI-compatible HTTP server for a local model (`posttrain serve MODEL_DIR`).

The app and engine (torch, transformers) load on first use, so the light modules here
(`security`, `errors`, `limits`) serve the reward-model server and the CLI's checks
without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from posttrain.models.server.app import DEFAULT_MAX_BODY_BYTES, create_app, serve
    from posttrain.models.server.engine import Engine

__all__ = ["DEFAULT_MAX_BODY_BYTES", "Engine", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from posttrain.models.server.engine import Engine

        return Engine
    if name in ("DEFAULT_MAX_BODY_BYTES", "create_app", "serve"):
        from posttrain.models.server import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
