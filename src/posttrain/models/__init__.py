"""Tokenizers, tiny models, warm start, chat backends and the OpenAI-compatible server."""
