"""`HFChat`: a local transformers model behind the `ChatModel` protocol."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from posttrain.models.chat.base import ChatResult, Conversation, GenerationParams, Message
from posttrain.models.chat.images import content_image_urls, content_text
from posttrain.models.generation import LocalGenerator
from posttrain.models.model_dir import require_model_dir


class HFChat:
    """Batched chat generation with a local model directory (tiny or a real checkpoint)."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        name: str | None = None,
        device: str = "auto",
        dtype: torch.dtype | str = "auto",
        batch_size: int = 32,
        attn_implementation: str | None = None,
    ) -> None:
        """`attn_implementation`: a name transformers knows (registered before this call);
        None leaves transformers' own choice."""
        require_model_dir(model_dir)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model_dir: Path | None = Path(model_dir)
        self.name = name or Path(model_dir).name
        chosen = {"attn_implementation": attn_implementation} if attn_implementation else {}
        self.generator = self.load_generator(Path(model_dir), device, dtype=dtype, **chosen)
        self.batch_size = batch_size

    @staticmethod
    def load_generator(model_dir: Path, device: str, **settings: Any) -> LocalGenerator:
        """The generator over the directory's model (`settings`: `from_pretrained`'s)."""
        tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
        model = AutoModelForCausalLM.from_pretrained(model_dir, **settings).to(device)
        return LocalGenerator(model, tokenizer)

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, *, name: str, batch_size: int = 32) -> HFChat:
        """A chat over a model already in memory (e.g. one in training), generating exactly
        as one loaded from its directory would."""
        chat = cls.__new__(cls)
        chat.model_dir, chat.name, chat.batch_size = None, name, batch_size
        chat.generator = LocalGenerator(model, tokenizer)
        return chat

    @property
    def tokenizer(self):  # noqa: ANN201 - a PreTrainedTokenizerBase
        return self.generator.tokenizer

    @property
    def model(self):  # noqa: ANN201 - a PreTrainedModel
        return self.generator.model

    def encode(self, conversation: Conversation) -> list[int]:
        """Prompt token ids for a conversation, ending with the assistant's turn opening.
        Content given as parts is joined to its text; an image part is a ValueError (a text
        model cannot see it, and dropping it silently would change the question)."""
        messages = [self._text_message(message) for message in conversation]
        return list(
            self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=False
            )
        )

    def _text_message(self, message: Message) -> Message:
        content = message.get("content")
        if isinstance(content, str) or content is None:
            return dict(message)
        if content_image_urls(content):
            where = self.model_dir if self.model_dir is not None else self.name
            raise ValueError(
                f"model {where} is a text-only model (its config has no vision_config): "
                "it cannot take image content parts; use a vision-language model directory"
            )
        return {**message, "content": content_text(content)}

    def chat(
        self, conversations: Sequence[Conversation], params: GenerationParams | None = None
    ) -> list[ChatResult]:
        params = params or GenerationParams()
        prompts = [self.encode(c) for c in conversations]
        results: list[ChatResult] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start : start + self.batch_size]
            for choices in self.generator.generate(batch, params):
                results.append(ChatResult(model=self.name, choices=choices))
        return results
