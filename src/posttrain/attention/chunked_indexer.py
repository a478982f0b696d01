"""The lightning indexer of transformers' DSA models, run over query chunks during prefill.

transformers' DSA indexer (`GlmMoeDsaIndexer`, `DeepseekV32Indexer`) scores every query
against every key at once: an (S, heads, T) float tensor, ReLU, the head-weighted sum into
(S, T), the causal mask added, then top-k. For a prefill of S = T tokens that is the full
square, half of it for future keys that the mask throws away, and several S x T x heads
buffers; on a CPU it costs more than the dense attention it is meant to save. The sparse
kernel (`sparse_kernel`) fixes the attention's side; this fixes the indexer's.

`chunked_indexers(model)` makes each indexer take its queries `chunk` at a time, the way a
chunked prefill would: a chunk's queries see the keys up to its own end only (the causal
triangle, about half the square in all), and at most chunk x T scores exist at once. The
scoring is still the module's own forward, unchanged: this module only slices its inputs
and hands it a cache stand-in whose `update_indexer` returns the keys so far (the real
cache, when there is one, is appended to chunk by chunk, which leaves it as one call would).
So the code of each architecture (interleaved or half-split RoPE, its norms and scales) is
transformers', not copied here.

The result names the same keys per query as the unchunked indexer. Where a chunk sees fewer
keys than top-k (its first queries), the missing picks point at the last position, which
is in the future of every query in that chunk and so masked, as the unchunked indexer's
own surplus picks (future keys at -inf) are. Decode steps (one query) and prefills no
longer than a chunk go straight to the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

CHUNK = 512
"""Queries per indexer call: chunk x T x heads float scores at a time."""


class _KeysSoFar:
    """Stands in for the cache inside one chunked call: `update_indexer` returns every key
    given so far (appending to the real cache when the model has one)."""

    def __init__(self, cache: Any, layer_idx: int) -> None:
        self.cache = cache
        self.layer_idx = layer_idx
        self.keys: Tensor | None = None

    def update_indexer(self, keys: Tensor, layer_idx: int) -> Tensor:
        if self.cache is not None:
            return self.cache.update_indexer(keys, layer_idx)
        self.keys = keys if self.keys is None else torch.cat((self.keys, keys), dim=1)
        return self.keys


def _slice_positions(embeddings: Any, start: int, end: int) -> Any:
    """(cos, sin) of shape (B, S, d) for the chunk's positions."""
    cos, sin = embeddings
    return cos[:, start:end], sin[:, start:end]


def chunked_forward(indexer: nn.Module, chunk: int = CHUNK):
    """A forward for ``indexer`` with its own signature that runs it ``chunk`` queries at a
    time; top-k indices (B, S, k) as the module gives them."""
    unchunked = type(indexer).forward.__get__(indexer)

    def forward(
        hidden_states: Tensor,
        q_resid: Tensor,
        position_embeddings: tuple[Tensor, Tensor],
        attention_mask: Tensor,
        position_ids: Tensor | None = None,
        cache: Any = None,
    ) -> Tensor:
        seq = hidden_states.shape[1]
        if seq <= chunk:
            return unchunked(
                hidden_states,
                q_resid,
                position_embeddings,
                attention_mask,
                position_ids,
                cache=cache,
            )
        total = attention_mask.shape[-1]
        past = total - seq
        width = min(indexer.index_topk, total)
        keys = _KeysSoFar(cache, indexer.layer_idx)
        picks = []
        for start in range(0, seq, chunk):
            end = min(seq, start + chunk)
            chosen = unchunked(
                hidden_states[:, start:end],
                q_resid[:, start:end],
                _slice_positions(position_embeddings, start, end),
                attention_mask[:, start:end, : past + end],
                None if position_ids is None else position_ids[:, start:end],
                cache=keys,
            )
            if chosen.shape[-1] < width:  # the chunk saw fewer keys than top-k
                chosen = torch.cat(
                    (
                        chosen,
                        chosen.new_full((*chosen.shape[:-1], width - chosen.shape[-1]), total - 1),
                    ),
                    dim=-1,
                )
            picks.append(chosen)
        return torch.cat(picks, dim=1)

    return forward


def _indexers(model: nn.Module) -> list[nn.Module]:
    base = getattr(model, "base_model", model)
    layers = getattr(base, "layers", [])
    return [
        layer.self_attn.indexer
        for layer in layers
        if getattr(getattr(layer, "self_attn", None), "indexer", None) is not None
    ]


@contextmanager
def chunked_indexers(model: nn.Module, chunk: int = CHUNK) -> Iterator[nn.Module]:
    """Run every indexer of ``model`` in query chunks inside the block; restored after."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    patched = _indexers(model)
    for indexer in patched:
        indexer.forward = chunked_forward(indexer, chunk)
    try:
        yield model
    finally:
        for indexer in patched:
            indexer.__dict__.pop("forward", None)


__all__ = ["CHUNK", "chunked_forward", "chunked_indexers"]
