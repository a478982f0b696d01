"""`load_chat`: turn a one-string model SPEC (as given on the command line) into a ChatModel.

Accepted forms:
  PATH                      an existing local model directory -> HFChat, or HFVisionChat
                            when its config has a vision_config (a vision-language model)
  openai:MODEL[@BASE_URL][#KEY_VAR]
                            an OpenAI-compatible endpoint -> OpenAIChat (BASE_URL from
                            OPENAI_BASE_URL when left out; the API key from the environment
                            variable KEY_VAR, by default OPENAI_API_KEY: a key never goes in
                            a spec, which ends up in configs and logs)
  scripted:NAME             a registered deterministic script -> ScriptedChat

The grammar is `posttrain.specs`' (docs/specs.md), shared with every other spec.
"""

from __future__ import annotations

import os
from typing import Any

from posttrain.models.chat.base import ChatModel
from posttrain.specs import Spec, SpecKind, parse_spec

SPEC_FORMS = "a local model directory, 'openai:MODEL[@BASE_URL][#KEY_VAR]' or 'scripted:NAME'"
CHAT_KINDS = (SpecKind.SCRIPTED, SpecKind.OPENAI, SpecKind.DIRECTORY)
"""The spec forms that name a chat model, for parsers that accept a chat model among others."""


def parse_chat_spec(spec: str) -> Spec:
    """`spec` parsed as a chat model (`posttrain.specs`); a ValueError quoting it otherwise."""
    return parse_spec(spec, CHAT_KINDS, what="model spec", expected=SPEC_FORMS)


def load_chat(spec: str | Spec, **kwargs: Any) -> ChatModel:
    """Build the backend a spec names; `kwargs` go to that backend's constructor or factory.

    `spec` may come parsed already, by a parser that accepts other forms too (a detector)."""
    parsed = spec if isinstance(spec, Spec) else parse_chat_spec(spec)
    if parsed.kind is SpecKind.SCRIPTED:
        from posttrain.models.chat.scripted import make_script

        return make_script(parsed.text, **kwargs)
    if parsed.kind is SpecKind.OPENAI:
        from posttrain.models.chat.openai_chat import OpenAIChat

        if parsed.key_var:
            if not os.environ.get(parsed.key_var):
                raise ValueError(
                    f"model spec {parsed.text!r} takes its API key from ${parsed.key_var}, "
                    "which is not set"
                )
            kwargs = {"api_key": os.environ[parsed.key_var], **kwargs}
        return OpenAIChat(parsed.model, base_url=parsed.base_url or None, **kwargs)
    if parsed.kind is SpecKind.DIRECTORY:
        from posttrain.models.chat.hf_vision import load_local_chat

        return load_local_chat(parsed.path, **kwargs)
    raise ValueError(f"model spec {parsed.text!r} names a {parsed.kind}; expected {SPEC_FORMS}")
