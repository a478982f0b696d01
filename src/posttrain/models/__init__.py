"""Tokenizers, tiny models, generation, chat backends and the OpenAI-compatible server."""
