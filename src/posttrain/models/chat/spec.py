"""`load_chat`: turn a one-string model SPEC (as given on the command line) into a ChatModel.

Accepted forms:
  PATH                      an existing local model directory -> HFChat
  openai:MODEL[@BASE_URL][#KEY_VAR]
                            an OpenAI-compatible endpoint -> OpenAIChat (BASE_URL from
                            OPENAI_BASE_URL when left out; the API key from the environment
                            variable KEY_VAR, by default OPENAI_API_KEY: a key never goes in
                            a spec, which ends up in configs and logs)
  scripted:NAME             a registered deterministic script -> ScriptedChat
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from posttrain.models.chat.base import ChatModel

SPEC_FORMS = "a local model directory, 'openai:MODEL[@BASE_URL][#KEY_VAR]' or 'scripted:NAME'"


def load_chat(spec: str, **kwargs: Any) -> ChatModel:
    """Build the backend a spec names; `kwargs` go to that backend's constructor or factory."""
    if spec.startswith("scripted:"):
        from posttrain.models.chat.scripted import make_script

        return make_script(spec, **kwargs)
    if spec.startswith("openai:"):
        from posttrain.models.chat.openai_chat import OpenAIChat

        rest, _, key_var = spec.removeprefix("openai:").partition("#")
        model, _, base_url = rest.partition("@")
        if not model:
            raise ValueError(f"model spec {spec!r} names no model; expected {SPEC_FORMS}")
        if key_var:
            if not os.environ.get(key_var):
                raise ValueError(
                    f"model spec {spec!r} takes its API key from ${key_var}, which is not set"
                )
            kwargs = {"api_key": os.environ[key_var], **kwargs}
        return OpenAIChat(model, base_url=base_url or None, **kwargs)
    path = Path(spec).expanduser()
    if spec and path.is_dir():
        from posttrain.models.chat.hf import HFChat

        return HFChat(path, **kwargs)
    reason = "no such directory" if spec and not path.exists() else "not a recognised form"
    raise ValueError(f"unknown model spec {spec!r} ({reason}); expected {SPEC_FORMS}")
