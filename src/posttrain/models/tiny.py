"""Tiny Qwen2-architecture models that posttrain builds itself (about 100k to 10M parameters).

They are ordinary transformers models saved with `save_pretrained`, so everything
downstream loads them with `from_pretrained(path)`, exactly as it loads a real checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from transformers import (
    PreTrainedTokenizerBase,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2ForSequenceClassification,
)

from posttrain.models.tokenizer import train_tokenizer


@dataclass(frozen=True)
class TinySize:
    """Shape of a tiny Qwen2 model; vocabulary size comes from the tokenizer."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512


SIZES: dict[str, TinySize] = {
    "nano": TinySize(64, 2, 4, 2, 128),  # ~0.09M parameters with a 512-token vocabulary
    "micro": TinySize(128, 4, 4, 2, 384),  # ~0.8M
    "mini": TinySize(256, 4, 8, 4, 768),  # ~3.2M
    "small": TinySize(384, 6, 8, 4, 1152),  # ~10.7M
}

# Role names are always in the tokenizer's corpus so that chat markup stays compact.
CHAT_WORDS = ["system\n", "user\n", "assistant\n"]


def corpus_tokenizer(corpus: Iterable[str], vocab_size: int, max_positions: int):
    """A byte-level BPE tokenizer with the chat template, trained on `corpus` and the chat
    role names (an empty corpus is a ValueError): what every tiny model here is built with."""
    texts = list(corpus)
    if not texts:
        raise ValueError("the tokenizer corpus is empty")
    return train_tokenizer(
        [*texts, *CHAT_WORDS], vocab_size=vocab_size, model_max_length=max_positions
    )


def resolve_size(size: str | TinySize) -> TinySize:
    if isinstance(size, TinySize):
        return size
    if size not in SIZES:
        raise ValueError(f"unknown tiny model size {size!r}; choose one of {sorted(SIZES)}")
    return SIZES[size]


def tiny_config(
    tokenizer: PreTrainedTokenizerBase, size: str | TinySize = "micro", num_labels: int = 1
) -> Qwen2Config:
    shape = resolve_size(size)
    return Qwen2Config(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        rope_theta=10000.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        num_labels=num_labels,
        **asdict(shape),
    )


def build_tiny_model(
    out_dir: str | Path,
    corpus: Iterable[str],
    size: str | TinySize = "micro",
    vocab_size: int = 512,
    kind: str = "causal-lm",
    seed: int = 0,
    max_positions: int | None = None,
) -> Path:
    """Train a tokenizer on `corpus`, initialise a tiny model, and save both to `out_dir`.

    `kind` is "causal-lm" (a policy) or "seq-cls" (a scalar reward model head).
    `max_positions` overrides the size's context length (512), e.g. for long-context tasks.
    """
    if kind not in ("causal-lm", "seq-cls"):
        raise ValueError(f"kind must be 'causal-lm' or 'seq-cls', got {kind!r}")
    shape = resolve_size(size)
    if max_positions is not None:
        if max_positions < 16:
            raise ValueError(f"max_positions must be at least 16, got {max_positions}")
        shape = replace(shape, max_position_embeddings=max_positions)
    tokenizer = corpus_tokenizer(corpus, vocab_size, shape.max_position_embeddings)
    torch.manual_seed(seed)
    config = tiny_config(tokenizer, shape)
    model_cls = Qwen2ForCausalLM if kind == "causal-lm" else Qwen2ForSequenceClassification
    model = model_cls(config)
    if kind == "causal-lm":
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def describe_saved(model_dir: str | Path, kind: str = "causal-lm") -> str:
    """`qwen2, 812,800 parameters, vocab 512`: a saved model's type, its parameters (counted
    on a fresh `kind` model built from its config, so no weights are read) and vocabulary."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    config = AutoConfig.from_pretrained(model_dir)
    model_cls = AutoModelForCausalLM if kind == "causal-lm" else AutoModelForSequenceClassification
    parameters = count_parameters(model_cls.from_config(config))
    return f"{config.model_type}, {parameters:,} parameters, vocab {config.vocab_size}"
