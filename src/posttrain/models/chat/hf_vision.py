"""`HFVisionChat`: a local vision-language model directory behind the `ChatModel` protocol.

A directory whose config.json has a `vision_config` (LLaVA, Qwen2-VL, Idefics3 / SmolVLM,
... and `posttrain.models.tiny_vlm`) is loaded with `AutoProcessor` +
`AutoModelForImageTextToText`, as its model card says. Images come as data-URL content
parts (`posttrain.models.chat.images`), are decoded here, and go through the processor with
the text its chat template writes, so image tokens sit where the message had its image.

Generation mirrors `LocalGenerator` (left padding, the same GenerationParams, token ids,
finish reasons; its `finish_row` cuts rows), but each prompt carries its image tensors,
which `LocalGenerator.generate` (token ids only) has no room for.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from posttrain.models.chat.base import ChatResult, Choice, Conversation, GenerationParams
from posttrain.models.chat.hf import HFChat
from posttrain.models.chat.images import content_image_urls, content_parts, load_image
from posttrain.models.generation import LocalGenerator

ImageInputs = dict[str, torch.Tensor]
"""One prompt's image tensors as its processor returns them (`pixel_values`, and e.g.
`image_grid_thw` or `pixel_attention_mask`), first dimension per image."""

# Processor outputs that are per text token (padded with the ids), not per image.
_TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")


def is_vision_model_dir(model_dir: str | Path) -> bool:
    """Whether a local model directory holds a vision-language model (its config.json has
    a `vision_config`); False for anything else, including Hub names."""
    config = Path(model_dir).expanduser() / "config.json"
    if not config.is_file():
        return False
    try:
        return "vision_config" in json.loads(config.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False  # HFChat's loading names an unreadable config


def load_local_chat(model_dir: str | Path, **kwargs: Any) -> HFChat:
    """The chat backend for a local directory: HFVisionChat for a vision-language model,
    HFChat otherwise (`kwargs` go to its constructor)."""
    if is_vision_model_dir(model_dir):
        return HFVisionChat(model_dir, **kwargs)
    return HFChat(model_dir, **kwargs)


def hf_messages(conversation: Conversation) -> tuple[list[dict[str, Any]], list[str]]:
    """The conversation with each image part written as HF's `{"type": "image"}` placeholder
    (which every VLM chat template places), and the image URLs in order of appearance."""
    messages, urls = [], []
    for message in conversation:
        content = message.get("content")
        if isinstance(content, str) or content is None:
            messages.append(dict(message))
            continue
        parts = []
        for part in content_parts(content):
            if part.get("type") == "image_url":
                urls.extend(content_image_urls([part]))
                parts.append({"type": "image"})
            else:
                parts.append(dict(part))
        messages.append({**message, "content": parts})
    return messages, urls


class VisionGenerator(LocalGenerator):
    """Batched left-padded generation from token-id prompts, each with its image inputs."""

    def __init__(self, model: Any, processor: Any) -> None:
        super().__init__(model, processor.tokenizer)
        self.processor = processor

    @property
    def context_length(self) -> int:
        text = self.model.config.get_text_config()
        return int(getattr(text, "max_position_embeddings", 0) or 2048)

    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: GenerationParams,
        should_stop: Callable[[], bool] | None = None,
        images: Sequence[ImageInputs | None] | None = None,
    ) -> list[list[Choice]]:
        """`params.n` choices per prompt, in prompt order; `images[i]` are prompt i's image
        inputs (None: a prompt without images). As `LocalGenerator.generate` otherwise."""
        if not prompts:
            return []
        images = list(images) if images is not None else [None] * len(prompts)
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} image inputs for {len(prompts)} prompts")
        row_images = [i for i in images for _ in range(params.n)]  # the rows' order there
        extra = self.batch_images(row_images)
        return super().generate(prompts, params, should_stop, model_inputs=extra)

    def batch_images(self, images: Sequence[ImageInputs | None]) -> ImageInputs:
        """The rows' image inputs as one batch, in the layout the model takes.

        Per-image layouts (LLaVA's [images, C, H, W]; flattened patches with a grid per
        image) are concatenated over the rows that have images, in row order, which is the
        order of the image tokens in the padded batch. Per-row layouts (Idefics3 / SmolVLM:
        pixel_values [rows, images, C, H, W]) get one entry per row, padded with all-zero
        images, which those models drop, as their processors pad a batch."""
        present = [i for i in images if i]
        if not present:
            return {}
        keys = set(present[0])
        if any(set(i) != keys for i in present):
            raise ValueError("the prompts' image inputs have different keys")
        per_row = present[0]["pixel_values"].dim() == 5 if "pixel_values" in keys else False
        batch = {}
        for key in sorted(keys):
            if per_row:
                value = _per_row([i[key] if i else None for i in images])
            else:
                value = torch.cat([i[key] for i in present])
            value = value.to(self.model.device)
            batch[key] = value.to(self.model.dtype) if value.is_floating_point() else value
        return batch


def _per_row(values: Sequence[torch.Tensor | None]) -> torch.Tensor:
    """[1, images, ...] tensors (None: a row without images) as one [rows, most images, ...]
    tensor, zero-padded along the images dimension."""
    shaped = next(v for v in values if v is not None)
    most = max(v.shape[1] for v in values if v is not None)
    rows = []
    for value in values:
        row = shaped.new_zeros((1, most, *shaped.shape[2:]))
        if value is not None:
            row[:, : value.shape[1]] = value
        rows.append(row)
    return torch.cat(rows)


class HFVisionChat(HFChat):
    """Batched chat generation with a local vision-language model directory."""

    @staticmethod
    def load_generator(model_dir: Path, device: str, **settings: Any) -> VisionGenerator:
        """The generator over the directory's model and processor (`settings`:
        `from_pretrained`'s)."""
        processor = AutoProcessor.from_pretrained(model_dir)
        processor.tokenizer.padding_side = "left"
        model = AutoModelForImageTextToText.from_pretrained(model_dir, **settings)
        return VisionGenerator(model.to(device), processor)

    @classmethod
    def from_model(
        cls, model: Any, processor: Any, *, name: str, batch_size: int = 32
    ) -> HFVisionChat:
        """A chat over a VLM already in memory (e.g. one in training) and its processor."""
        chat = cls.__new__(cls)
        chat.model_dir, chat.name, chat.batch_size = None, name, batch_size
        chat.generator = VisionGenerator(model, processor)
        return chat

    @property
    def processor(self) -> Any:
        return self.generator.processor

    def encode(self, conversation: Conversation) -> list[int]:
        """Prompt token ids (image tokens expanded); `encode_with_images` gives the pixels."""
        return self.encode_with_images(conversation)[0]

    def encode_with_images(
        self, conversation: Conversation, processor: Any = None
    ) -> tuple[list[int], ImageInputs | None]:
        """Prompt token ids and image inputs of one conversation (`processor`: another copy
        of this model's processor, for callers on other threads)."""
        return encode_vision_chat(processor or self.processor, conversation)

    def chat(
        self, conversations: Sequence[Conversation], params: GenerationParams | None = None
    ) -> list[ChatResult]:
        params = params or GenerationParams()
        encoded = [self.encode_with_images(c) for c in conversations]
        results: list[ChatResult] = []
        for start in range(0, len(encoded), self.batch_size):
            batch = encoded[start : start + self.batch_size]
            generated = self.generator.generate(
                [ids for ids, _ in batch], params, images=[images for _, images in batch]
            )
            results.extend(ChatResult(model=self.name, choices=c) for c in generated)
        return results


def encode_vision_chat(
    processor: Any, conversation: Conversation
) -> tuple[list[int], ImageInputs | None]:
    """Token ids and image inputs of a conversation through a VLM processor: its chat
    template writes the text, the processor expands each image placeholder to the image's
    tokens. Image parts must be data URLs (nothing is fetched)."""
    messages, urls = hf_messages(conversation)
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    images = [load_image(url) for url in urls]
    encoded = processor(text=[text], images=images or None, return_tensors="pt")
    ids = encoded["input_ids"][0].tolist()
    inputs = {k: v for k, v in encoded.items() if k not in _TOKEN_KEYS}
    return ids, _as_tensors(inputs) if images else None


def _as_tensors(inputs: Mapping[str, Any]) -> ImageInputs:
    return {k: v if isinstance(v, torch.Tensor) else torch.as_tensor(v) for k, v in inputs.items()}
