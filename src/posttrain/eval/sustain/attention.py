"""How much of the answer's attention lands on the inserted constraint (local HF models).

For one constrained variant: the prompt is rendered with the tokenizer's chat template, the
constraint block is located in it by character offsets (the fast tokenizer's offset mapping
gives its token span), the model's answer tokens are appended, and one forward pass with
eager attention returns every layer's attention. The share is, for each answer token, the
attention mass on the constraint tokens, averaged over answer tokens, heads and layers. The
paper finds more attention on the constraint in instances that fail after insertion.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch


def attention_share(
    attentions: Sequence[torch.Tensor], keys: Sequence[int], queries: Sequence[int]
) -> float:
    """Mean over layers, heads and `queries` of the attention summed over `keys`.

    `attentions`: one tensor per layer, shaped (1, heads, T, T), rows summing to 1.
    """
    if not keys or not queries:
        raise ValueError("need at least one key and one query position")
    stacked = torch.stack([layer[0].float() for layer in attentions])  # (L, H, T, T)
    rows = stacked[:, :, list(queries), :]
    return float(rows[..., list(keys)].sum(-1).mean())


def token_span(offsets: Sequence[tuple[int, int]], start: int, end: int) -> list[int]:
    """Token positions whose character range overlaps [start, end)."""
    return [i for i, (s, e) in enumerate(offsets) if e > s and s < end and e > start]


def load_eager(model_dir: str | Path) -> tuple[Any, Any]:
    """The model with eager attention (needed to return attention weights) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, attn_implementation="eager")
    return model.eval(), tokenizer


@torch.no_grad()
def constraint_attention_share(
    model: Any,
    tokenizer: Any,
    prompt: str,
    constraint_text: str,
    answer: str,
    max_answer_tokens: int = 64,
) -> float | None:
    """The share for one variant; None when the answer is empty or it does not fit the context."""
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
    )
    start = rendered.rfind(constraint_text)
    if start < 0:
        raise ValueError("the constraint text is not in the rendered prompt")
    encoded = tokenizer(rendered, add_special_tokens=False, return_offsets_mapping=True)
    keys = token_span(encoded["offset_mapping"], start, start + len(constraint_text))
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"][:max_answer_tokens]
    ids = list(encoded["input_ids"]) + list(answer_ids)
    limit = getattr(model.config, "max_position_embeddings", None)
    if not answer_ids or not keys or (limit is not None and len(ids) > limit):
        return None
    out = model(torch.tensor([ids], device=model.device), output_attentions=True)
    queries = range(len(encoded["input_ids"]), len(ids))
    return attention_share(out.attentions, keys, list(queries))


def compare(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean share for variants that stayed solved against those that failed."""

    def group(correct: bool) -> dict[str, Any]:
        shares = [r["share"] for r in records if r["correct"] == correct and r["share"] is not None]
        return {"n": len(shares), "mean_share": sum(shares) / len(shares) if shares else None}

    return {"stayed_solved": group(True), "failed": group(False)}
