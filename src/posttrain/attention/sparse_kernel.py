"""Gathered sparse attention for transformers' DSA models, as the `"posttrain_sparse"`
attention implementation.

transformers' DSA architectures (`GlmMoeDsaForCausalLM`, `DeepseekV32ForCausalLM`) select
top-k keys per query with their lightning indexer. Under `"eager"` / `"sdpa"` they turn that
selection into a full Lq x Lk mask and do dense attention over every key; any other
registered implementation receives the raw selection as `indices=` (B, Lq, k). The kernel
transformers has for it, FlashMLA's sparse decode, is CUDA/Hopper-only. So this module is our
own: for each query it gathers its k keys and values and takes an exact softmax over them,
chunked over queries so that memory is O(B * H * chunk * k * d) and no Lq x Lk tensor is
built by the attention itself (the causal/padding mask transformers passes in is read only at
the gathered positions).

Without `indices` (a dense model, or a model without an indexer) it is transformers' own
SDPA path, so `attn_implementation="posttrain_sparse"` is safe on any model.

Importing this module registers the name; `register()` does it again explicitly (idempotent).
"""

from __future__ import annotations

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "posttrain_sparse"
QUERY_CHUNK = 256
"""Queries per chunk: the gathered keys of one chunk are B * H * QUERY_CHUNK * k * d."""


def sparse_attention_forward(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    indices: torch.Tensor | None = None,
    query_chunk: int | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-interface function: query (B, H, Lq, d), key (B, Hkv, Lk, d),
    value (B, Hkv, Lk, dv), `indices` (B, Lq, k) key positions per query. Returns the output
    as (B, Lq, H, dv) and no attention weights.

    The indexer's top-k may name masked keys (future or padding positions, when a query sees
    fewer than k keys): those get zero weight here. A query that sees none of its keys (a
    padding row) gets a zero output rather than NaN, so nothing undefined reaches later layers.
    `query_chunk` defaults to the module's `QUERY_CHUNK`, read at each call (models pass no
    such argument, so setting the constant is how a caller changes it).
    """
    if indices is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    query_chunk = query_chunk or QUERY_CHUNK
    batch, heads, q_len, head_dim = query.shape
    k_len = key.shape[2]
    if scaling is None:
        scaling = head_dim**-0.5
    # GQA: key heads are shared by groups of query heads (MLA has already expanded its keys
    # per head, so there the group is 1 whatever the config says).
    group = heads // key.shape[1]
    keys = key.transpose(1, 2)  # (B, Lk, Hkv, d): gathering picks whole positions
    values = value.transpose(1, 2)
    rows = torch.arange(batch, device=query.device)[:, None, None]
    drop = dropout if module.training else 0.0
    out = query.new_empty(batch, q_len, heads, value.shape[-1])
    for start in range(0, q_len, query_chunk):
        stop = min(start + query_chunk, q_len)
        idx = indices[:, start:stop].long()  # (B, c, k)
        valid = (idx >= 0) & (idx < k_len)  # FlashMLA's convention pads with -1
        idx = idx.clamp(0, k_len - 1)
        valid &= _allowed(attention_mask, idx, start, stop, q_len, k_len)
        k_sel = keys[rows, idx]  # (B, c, k, Hkv, d)
        v_sel = values[rows, idx]
        if group > 1:
            k_sel = k_sel.repeat_interleave(group, dim=3)
            v_sel = v_sel.repeat_interleave(group, dim=3)
        q = query[:, :, start:stop].transpose(1, 2)  # (B, c, H, d)
        scores = torch.einsum("bchd,bckhd->bchk", q.float(), k_sel.float()) * scaling
        additive = _additive(attention_mask, idx, start, stop)
        if additive is not None:
            scores = scores + additive[:, :, None, :]
        keep = valid[:, :, None, :]
        scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores, dim=-1) * keep  # all-masked rows: zeros, not NaN
        if drop > 0.0:
            weights = torch.nn.functional.dropout(weights, p=drop, training=True)
        out[:, start:stop] = torch.einsum("bchk,bckhd->bchd", weights, v_sel.float()).to(out.dtype)
    return out, None


def _mask_rows(mask: torch.Tensor, start: int, stop: int, batch: int) -> torch.Tensor:
    """The (B, c, Lk) rows of a (B or 1, 1, Lq, Lk) mask for queries start..stop (a view)."""
    return mask[:, 0, start:stop].expand(batch, -1, -1)


def _allowed(
    mask: torch.Tensor | None,
    idx: torch.Tensor,
    start: int,
    stop: int,
    q_len: int,
    k_len: int,
) -> torch.Tensor:
    """Whether each gathered key may be attended: the boolean mask at those positions, or
    (no mask) causality with the queries at the end of the keys, as SDPA's `is_causal`."""
    if mask is None:
        positions = torch.arange(start, stop, device=idx.device) + (k_len - q_len)
        return idx <= positions[None, :, None]
    gathered = _mask_rows(mask, start, stop, idx.shape[0]).gather(-1, idx)
    if mask.dtype == torch.bool:
        return gathered
    # An additive mask marks masked keys with its dtype's minimum (or -inf).
    return gathered > torch.finfo(mask.dtype).min / 2


def _additive(
    mask: torch.Tensor | None, idx: torch.Tensor, start: int, stop: int
) -> torch.Tensor | None:
    """An additive (float) mask's values at the gathered positions, in float32."""
    if mask is None or mask.dtype == torch.bool:
        return None
    return _mask_rows(mask, start, stop, idx.shape[0]).gather(-1, idx).float()


def register() -> None:
    """Register `"posttrain_sparse"` with transformers: the attention function, and SDPA's
    boolean mask builder, so models build the same causal/padding mask as under `"sdpa"`
    (a name missing from the mask interface gets no mask at all)."""
    AttentionInterface.register(NAME, sparse_attention_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)


register()
