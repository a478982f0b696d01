"""Tiny vision-language models built here from transformers' own classes (LLaVA by default).

Why LLaVA: its processor is the simplest of the families (one `<image>` token repeated once
per vision patch, no tiling or resolution-dependent grids as in Idefics3 / SmolVLM, and no
3-D rope positions as in Qwen2-VL), it takes any vision tower (a tiny SigLIP here: no CLS
token, so every patch is an image token) and any text model (the tiny Qwen2 of
`posttrain.models.tiny`, with its corpus-trained tokenizer). The saved directory loads with
`AutoProcessor` + `AutoModelForImageTextToText` exactly as a real LLaVA checkpoint does.

`family="idefics3"` builds the same sizes in Idefics3's layout (SmolVLM's: pixel values
per row, a pixel-shuffle connector, image tokens framed by `<fake_token_around_image>`), so
code is checked on a second family's checkpoint shape. Qwen2-VL is not offered: its
processor requires a video processor, which needs torchvision.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import torch
from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    SiglipImageProcessorPil,
    SiglipVisionConfig,
)

from posttrain.models.tiny import TinySize, corpus_tokenizer, resolve_size, tiny_config

IMAGE_TOKEN = "<image>"
PATCH_SIZE = 16
FAMILIES = ("llava", "idefics3")
IDEFICS3_TOKENS = ["<fake_token_around_image>", "<end_of_utterance>", "<global-img>"]
IDEFICS3_SCALE = 2  # Idefics3's pixel shuffle: 2x2 patches make one image token

# ChatML as the text models' template writes it, plus image parts: an image part (HF's
# {"type": "image"} or OpenAI's {"type": "image_url"}) becomes one `<image>` placeholder,
# which the processor expands to one token per vision patch. String content renders exactly
# as in `posttrain.models.tokenizer.CHAT_TEMPLATE`.
VISION_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{% set parts = [message['content']] %}"
    "{% else %}{% set parts = message['content'] %}{% endif %}"
    "{% if message['role'] == 'assistant' %}{% generation %}"
    "{% for part in parts %}"
    "{% if part is string %}{{ part }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{{ '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}"
    "{% for part in parts %}"
    "{% if part is string %}{{ part }}"
    "{% elif part['type'] in ('image', 'image_url') %}{{ '<image>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{{ '<|im_end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tiny_vision_config(hidden_size: int, image_size: int) -> SiglipVisionConfig:
    """A one-layer SigLIP tower: `image_size` must be a multiple of the patch size."""
    if image_size < PATCH_SIZE or image_size % PATCH_SIZE:
        raise ValueError(f"image_size must be a multiple of {PATCH_SIZE}, got {image_size}")
    return SiglipVisionConfig(
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=PATCH_SIZE,
        num_channels=3,
        vision_use_head=False,  # LLaVA reads the patch states, never SigLIP's pooled output
    )


def build_tiny_vlm(
    out_dir: str | Path,
    corpus_texts: Iterable[str],
    *,
    image_size: int = 64,
    size: str | TinySize = "micro",
    vocab_size: int = 512,
    vision_hidden_size: int = 64,
    family: str = "llava",
    seed: int = 0,
) -> Path:
    """Train a tokenizer on `corpus_texts` (plus `<image>`), initialise a tiny LLaVA (SigLIP
    tower, Qwen2 text model of `size`) and save model, tokenizer and processor to `out_dir`.

    An image of `image_size` pixels becomes (image_size / 16)^2 image tokens (16 at 64 px;
    a quarter of that, framed by marker tokens, for `family="idefics3"`).
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    shape = resolve_size(size)
    image_tokens = (image_size // PATCH_SIZE) ** 2
    if shape.max_position_embeddings <= image_tokens + 16:
        shape = replace(shape, max_position_embeddings=image_tokens + 512)
    tokenizer = corpus_tokenizer(corpus_texts, vocab_size, shape.max_position_embeddings)
    extra = IDEFICS3_TOKENS if family == "idefics3" else []
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<|im_start|>", IMAGE_TOKEN, *extra]}
    )
    tokenizer.chat_template = VISION_CHAT_TEMPLATE
    text = tiny_config(tokenizer, shape)
    vision = tiny_vision_config(vision_hidden_size, image_size)
    torch.manual_seed(seed)
    if family == "idefics3":
        model, processor = _idefics3(tokenizer, text, vision, image_tokens)
    else:
        model, processor = _llava(tokenizer, text, vision, image_tokens)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def _llava(tokenizer, text, vision, image_tokens):  # noqa: ANN001, ANN202 - transformers types
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=image_tokens,
        vision_feature_select_strategy="full",  # SigLIP has no CLS token to drop
        vision_feature_layer=-1,
        tie_word_embeddings=True,
    )
    size = {"height": vision.image_size, "width": vision.image_size}
    image_processor = SiglipImageProcessorPil(size=size, do_resize=True)
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="full",
        chat_template=VISION_CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
    )
    return LlavaForConditionalGeneration(config), processor


def _idefics3(tokenizer, text, vision, image_tokens):  # noqa: ANN001, ANN202
    config = Idefics3Config(
        vision_config=vision.to_dict(),
        text_config=text,
        scale_factor=IDEFICS3_SCALE,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        tie_word_embeddings=True,
    )
    edge = {"longest_edge": vision.image_size}
    # No splitting into tiles: one global image, resized to the tower's size.
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False, size=edge, max_image_size=edge
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=image_tokens // IDEFICS3_SCALE**2,
        chat_template=VISION_CHAT_TEMPLATE,
    )
    return Idefics3ForConditionalGeneration(config), processor
