"""`load_chat`: turn a one-string model SPEC (as given on the command line) into a ChatModel.

Accepted forms:
  PATH                      an existing local model directory -> HFChat
  openai:MODEL[@BASE_URL]   an OpenAI-compatible endpoint -> OpenAIChat (BASE_URL from
                            OPENAI_BASE_URL when left out)
  scripted:NAME             a registered deterministic script -> ScriptedChat
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posttrain.models.chat.base import ChatModel

SPEC_FORMS = "a local model directory, 'openai:MODEL[@BASE_URL]' or 'scripted:NAME'"


def load_chat(spec: str, **kwargs: Any) -> ChatModel:
    """Build the backend a spec names; `kwargs` go to that backend's constructor or factory."""
    if spec.startswith("scripted:"):
        from posttrain.models.chat.scripted import make_script

        return make_script(spec, **kwargs)
    if spec.startswith("openai:"):
        from posttrain.models.chat.openai_chat import OpenAIChat

        model, _, base_url = spec.removeprefix("openai:").partition("@")
        if not model:
            raise ValueError(f"model spec {spec!r} names no model; expected {SPEC_FORMS}")
        return OpenAIChat(model, base_url=base_url or None, **kwargs)
    path = Path(spec).expanduser()
    if spec and path.is_dir():
        from posttrain.models.chat.hf import HFChat

        return HFChat(path, **kwargs)
    reason = "no such directory" if spec and not path.exists() else "not a recognised form"
    raise ValueError(f"unknown model spec {spec!r} ({reason}); expected {SPEC_FORMS}")
