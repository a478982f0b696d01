"""OpenAI-compatible HTTP server for a local model (`posttrain serve MODEL_DIR`)."""

from posttrain.models.server.app import DEFAULT_MAX_BODY_BYTES, create_app, serve
from posttrain.models.server.engine import Engine

__all__ = ["DEFAULT_MAX_BODY_BYTES", "Engine", "create_app", "serve"]
