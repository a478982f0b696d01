"""Chat backends behind one `ChatModel` protocol: local weights, HTTP endpoints, scripts.

HFChat (torch, transformers) and OpenAIChat (openai) are imported on first use, so that
`import posttrain.models.chat` stays cheap for code that only needs the protocol or scripts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from posttrain.models.chat.base import ChatModel, ChatResult, Choice, GenerationParams, ask
from posttrain.models.chat.cache import ResponseCache
from posttrain.models.chat.scripted import ScriptedChat, register_script
from posttrain.models.chat.spec import load_chat

if TYPE_CHECKING:
    from posttrain.models.chat.hf import HFChat
    from posttrain.models.chat.hf_vision import HFVisionChat
    from posttrain.models.chat.openai_chat import ChatRequestError, OpenAIChat

_LAZY = {
    "HFChat": "posttrain.models.chat.hf",
    "HFVisionChat": "posttrain.models.chat.hf_vision",
    "OpenAIChat": "posttrain.models.chat.openai_chat",
    "ChatRequestError": "posttrain.models.chat.openai_chat",
}

__all__ = [
    "ChatModel",
    "ChatRequestError",
    "ChatResult",
    "Choice",
    "GenerationParams",
    "HFChat",
    "HFVisionChat",
    "OpenAIChat",
    "ResponseCache",
    "ScriptedChat",
    "ask",
    "load_chat",
    "register_script",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
