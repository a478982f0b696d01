"""DeepSeek Sparse Attention (DSA): lightning indexer, top-k selection, sparse attention, losses.

Why: DSA (DeepSeek-V3.2, arXiv:2512.02556) cuts core attention from O(L^2) to O(L*k) by letting
a cheap *lightning indexer* choose, for every query, the top-k keys that the main attention may
look at. The indexer is still O(L^2) and runs in every layer; IndexCache (THUDM, 2026, see
``posttrain.attention.indexcache``) removes most of those indexers by sharing their top-k
indices across layers. This module is the per-layer part both build on, in plain PyTorch so it
runs on a CPU and serves as the reference for faster kernels.

The indexer (DeepSeek-V3.2, section 2.1). For a query token t and a key token s,

    I[t, s] = sum_h w[t, h] * ReLU(q[t, h] . k[s])

with H_I small index heads ``q[t, h]`` (projected from the query path, which in DeepSeek-V3.2
is the low-rank ``q_lora`` activation), ONE key head ``k[s] = LayerNorm(W_k x_s)`` shared by
all index heads, and per-token head weights ``w[t] = W_w x_t * H_I^-1/2 * d_I^-1/2``. Rotary
embeddings (non-interleaved, "half rotation", base 10000) are applied to the first ``rope_dim``
dims of q and k, as in the V3.2 reference code after its November 2025 RoPE-layout fix. The
Hadamard rotation the reference applies before FP8 quantisation is omitted here: it is an
orthogonal change of basis that leaves full-precision scores unchanged and only matters for
the outlier behaviour of real FP8 kernels.

Conventions: hidden states are (B, L, hidden); indexer scores are (B, Lq, Lk) with ``-inf`` at
causally masked keys (query t of a chunk of Lq new tokens after a cache of Lk - Lq tokens may
see keys s <= t + Lk - Lq); top-k indices are (B, Lq, k) and are shared by all attention heads
of the layer (DSA selects per query, not per head); attention tensors are (B, H, L, d).

Top-k validity (a choice documented here once): ``topk_indices`` returns ``(indices, valid)``
where ``valid`` is a boolean mask and invalid slots of ``indices`` are also filled with -1, so
either can be used. Query t has only min(k, t + 1 + cached) causal keys; the remaining slots of
its k_eff = min(k, Lk) are invalid.

Training (DeepSeek-V3.2, section 2.1.1): in the dense warm-up the indexer is trained with
KL(p_t || softmax(I_t)) where p_t is the main attention summed over heads and L1-normalised;
in the sparse stage both distributions are restricted to the selected keys. See
``indexer_kl_loss``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FP8_E4M3_MAX = 448.0
HAS_TORCH_FP8 = hasattr(torch, "float8_e4m3fn")
_TINY = 1e-30

AttentionMode = Literal["auto", "mask", "gather"]


# --- rotary embeddings ---------------------------------------------------------------------


def rotary_embedding(
    x: Tensor, positions: Tensor, rope_dim: int | None = None, base: float = 10000.0
) -> Tensor:
    """Rotate the first ``rope_dim`` dims of ``x`` by position (non-interleaved half rotation).

    ``x`` is (B, L, ..., d) and ``positions`` is (L,) or (B, L) (integer or float). Within the
    rotated slice, dim i pairs with dim i + rope_dim/2 and turns by angle
    ``pos * base^(-2i/rope_dim)``; dims from ``rope_dim`` on pass through unchanged.
    """
    d = x.shape[-1]
    r = d if rope_dim is None else rope_dim
    if r == 0:
        return x
    if r < 0 or r > d or r % 2:
        raise ValueError(f"rope_dim must be even and in [0, {d}], got {r}")
    if x.dim() < 3:
        raise ValueError(f"x must be (B, L, ..., d), got shape {tuple(x.shape)}")
    pos = positions.to(device=x.device, dtype=torch.float32)
    if pos.dim() == 1:
        pos = pos.unsqueeze(0)
    if pos.dim() != 2 or pos.shape[-1] != x.shape[1]:
        raise ValueError(
            f"positions must be (L,) or (B, L) with L={x.shape[1]}, got {tuple(positions.shape)}"
        )
    half = r // 2
    inv_freq = base ** (-torch.arange(0, half, device=x.device, dtype=torch.float32) / half)
    angles = pos.unsqueeze(-1) * inv_freq  # (b, L, r/2)
    shape = (angles.shape[0], x.shape[1]) + (1,) * (x.dim() - 3) + (half,)
    cos = angles.cos().reshape(shape).to(x.dtype)
    sin = angles.sin().reshape(shape).to(x.dtype)
    x1, x2, rest = x[..., :half], x[..., half:r], x[..., r:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest), dim=-1)


# --- FP8 (e4m3) quantise-dequantise --------------------------------------------------------


def e4m3_round_emulated(y: Tensor) -> Tensor:
    """Round float values to the nearest float8 e4m3 (fn) value, saturating at +-448.

    Emulation for torch builds without ``torch.float8_e4m3fn``: 3 mantissa bits, exponent
    clamped to [-6, 8] (so values below 2^-6 land on the subnormal grid of step 2^-9), round
    half to even (``torch.round``), as the hardware cast does.
    """
    y = y.float().clamp(-FP8_E4M3_MAX, FP8_E4M3_MAX)
    exponent = torch.floor(torch.log2(y.abs().clamp_min(2.0**-6))).clamp(-6, 8)
    step = torch.exp2(exponent - 3)
    return (torch.round(y / step) * step).clamp(-FP8_E4M3_MAX, FP8_E4M3_MAX)


def fp8_quant_dequant(x: Tensor, block: int = 128, emulate: bool | None = None) -> Tensor:
    """Blockwise FP8 e4m3 quantise-dequantise of ``x`` along its last dim.

    Blocks are ``block`` wide (or the whole last dim if it is smaller; a ragged tail is
    zero-padded); each block's scale is amax / 448. Uses the native ``torch.float8_e4m3fn``
    cast when this torch has it (``emulate=None``), else ``e4m3_round_emulated``. The gradient
    is straight-through (identity), so a quantised indexer can still be trained.
    """
    if block < 1:
        raise ValueError(f"block must be >= 1, got {block}")
    use_native = HAS_TORCH_FP8 if emulate is None else not emulate
    if use_native and not HAS_TORCH_FP8:
        raise RuntimeError("this torch has no torch.float8_e4m3fn; pass emulate=True")
    d = x.shape[-1]
    width = min(block, d)
    pad = (-d) % width
    xf = x.detach().float()
    if pad:
        xf = F.pad(xf, (0, pad))
    blocks = xf.reshape(*x.shape[:-1], -1, width)
    scale = (blocks.abs().amax(dim=-1, keepdim=True) / FP8_E4M3_MAX).clamp_min(_TINY)
    scaled = (blocks / scale).clamp(-FP8_E4M3_MAX, FP8_E4M3_MAX)
    native = scaled.to(torch.float8_e4m3fn).float() if use_native else None
    rounded = e4m3_round_emulated(scaled) if native is None else native
    out = (rounded * scale).reshape(*x.shape[:-1], d + pad)[..., :d].to(x.dtype)
    return x + (out - x).detach()


# --- top-k selection ------------------------------------------------------------------------


def causal_mask(n_queries: int, n_keys: int, device: torch.device | None = None) -> Tensor:
    """(Lq, Lk) boolean mask, True where query t may see key s (s <= t + Lk - Lq)."""
    if n_keys < n_queries:
        raise ValueError(f"need n_keys >= n_queries, got {n_keys} < {n_queries}")
    offset = n_keys - n_queries
    t = torch.arange(n_queries, device=device).unsqueeze(-1)
    s = torch.arange(n_keys, device=device).unsqueeze(0)
    return s <= t + offset


def topk_indices(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Top-k keys per query from (B, Lq, Lk) scores with ``-inf`` at masked keys.

    Returns ``(indices, valid)``, both (B, Lq, k_eff) with k_eff = min(k, Lk). A slot is valid
    iff its score is finite, so under a causal mask query t has min(k, t + 1 + cached) valid
    slots, which come first; invalid slots of ``indices`` are filled with -1.

    The result is that of a stable descending sort: ties go to the earlier key, and slots are
    ordered by score, then by key. The indexer's ReLU makes exact ties common (every index
    head at zero scores 0), and ``torch.topk`` breaks ties differently with the width of the
    row, so a cached decode step (scores over the past keys only) and a full recompute (extra
    ``-inf`` columns) could pick different keys; this rule makes the choice depend on the
    finite scores alone. A full sort of every row costs O(Lk log Lk) per query, so only rows
    whose k-th score is tied with an unselected key are sorted; the others keep the
    ``torch.topk`` set, re-ordered canonically (O(k log k)).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k_eff = min(k, scores.shape[-1])
    n_keys = scores.shape[-1]
    values, indices = torch.topk(scores, min(k_eff + 1, n_keys), dim=-1, sorted=True)
    # the k-th score is tied with an unselected key iff the (k+1)-th equals it
    ambiguous = values[..., k_eff] == values[..., k_eff - 1] if n_keys > k_eff else None
    indices = indices[..., :k_eff]
    if ambiguous is not None and bool(ambiguous.any()):
        rows = ambiguous.nonzero(as_tuple=True)
        indices = indices.clone()
        indices[rows] = torch.sort(scores[rows], dim=-1, descending=True, stable=True)[1][
            ..., :k_eff
        ]
    indices = indices.sort(dim=-1).values
    values, order = torch.sort(scores.gather(-1, indices), dim=-1, descending=True, stable=True)
    indices = indices.gather(-1, order)
    valid = torch.isfinite(values)
    return indices.masked_fill(~valid, -1), valid


def selection_mask(indices: Tensor, n_keys: int, valid: Tensor | None = None) -> Tensor:
    """Boolean (..., n_keys) mask that is True at the valid selected key positions."""
    if valid is None:
        valid = indices >= 0
    mask = torch.zeros(*indices.shape[:-1], n_keys + 1, dtype=torch.bool, device=indices.device)
    return mask.scatter_(-1, _scatter_targets(indices, valid, n_keys), True)[..., :n_keys]


def _scatter_targets(indices: Tensor, valid: Tensor, n_keys: int) -> Tensor:
    """Key positions to scatter the selected slots to, over ``n_keys + 1`` columns: invalid
    slots go to the spare last column, so every write at a real key is a selected one and
    duplicate writes all carry the same value (no races), and the spare column is cut off."""
    return torch.where(valid, indices.long(), n_keys)


def topk_overlap(
    a: Tensor, b: Tensor, valid_a: Tensor | None = None, valid_b: Tensor | None = None
) -> float:
    """Mean over queries of |A & B| / |A| for two top-k selections of shape (..., k).

    Only valid entries count (default: entries >= 0). Queries whose A is empty are skipped;
    returns NaN if every one is. Used to check that an FP8 indexer picks (nearly) the same keys
    as the full-precision one.
    """
    n_keys = int(max(a.max().item(), b.max().item(), 0)) + 1
    set_a = selection_mask(a, n_keys, valid_a)
    set_b = selection_mask(b, n_keys, valid_b)
    size = set_a.sum(-1)
    inter = (set_a & set_b).sum(-1)
    rows = size > 0
    if not bool(rows.any()):
        return float("nan")
    return float((inter[rows].double() / size[rows].double()).mean().item())


# --- the lightning indexer ------------------------------------------------------------------


def _index_scores(q: Tensor, keys: Tensor, weights: Tensor) -> Tensor:
    """sum_h w[t, h] * ReLU(q[t, h] . k[s]) for (B, Lq, H_I, d_I) queries, (B, Lk, d_I) keys
    and (B, Lq, H_I) weights; (B, Lq, Lk), no mask. Two batched matmuls."""
    b, lq, heads, dim = q.shape
    # in place: the matmul's backward needs its inputs, not its output
    logits = torch.matmul(q.reshape(b, lq * heads, dim), keys.transpose(1, 2)).relu_()
    logits = logits.view(b, lq, heads, keys.shape[1])
    return torch.matmul(weights.unsqueeze(2), logits).squeeze(2)


class LightningIndexer(nn.Module):
    """DSA lightning indexer: scores every (query, key) pair cheaply to pick top-k keys.

    ``hidden_size`` is the width of ``x`` (the layer input, used for keys and head weights);
    ``q_dim`` is the width of the query-path input ``q_input`` (DeepSeek-V3.2 feeds the
    ``q_lora`` activation; default ``hidden_size``, and ``q_input=None`` then means ``x``).
    With ``fp8=True`` index queries and keys are FP8 quantise-dequantised (blockwise, see
    ``fp8_quant_dequant``) after rotary, as the production indexer runs in FP8.
    ``query_chunk`` bounds how many queries are scored at once (memory, not results).
    """

    def __init__(
        self,
        hidden_size: int,
        n_index_heads: int,
        index_head_dim: int,
        rope_dim: int = 0,
        q_dim: int | None = None,
        rope_base: float = 10000.0,
        fp8: bool = False,
        fp8_block: int = 128,
        norm_eps: float = 1e-6,
        query_chunk: int = 1024,
    ) -> None:
        super().__init__()
        if query_chunk < 1:
            raise ValueError(f"query_chunk must be >= 1, got {query_chunk}")
        if rope_dim < 0 or rope_dim > index_head_dim or rope_dim % 2:
            raise ValueError(f"rope_dim must be even and in [0, {index_head_dim}], got {rope_dim}")
        self.hidden_size = hidden_size
        self.n_index_heads = n_index_heads
        self.index_head_dim = index_head_dim
        self.rope_dim = rope_dim
        self.q_dim = hidden_size if q_dim is None else q_dim
        self.rope_base = rope_base
        self.fp8 = fp8
        self.fp8_block = fp8_block
        self.wq = nn.Linear(self.q_dim, n_index_heads * index_head_dim, bias=False)
        self.wk = nn.Linear(hidden_size, index_head_dim, bias=False)
        self.k_norm = nn.LayerNorm(index_head_dim, eps=norm_eps)
        self.weights_proj = nn.Linear(hidden_size, n_index_heads, bias=False)
        self.head_scale = n_index_heads**-0.5 * index_head_dim**-0.5
        self.query_chunk = query_chunk

    def _positions(self, x: Tensor, positions: Tensor | None, start: int) -> Tensor:
        if positions is not None:
            return positions
        return torch.arange(start, start + x.shape[1], device=x.device)

    def _quant(self, t: Tensor) -> Tensor:
        return fp8_quant_dequant(t, self.fp8_block) if self.fp8 else t

    def queries(self, q_input: Tensor, positions: Tensor) -> Tensor:
        """Index queries (B, L, H_I, d_I), rotary applied (and FP8 if enabled)."""
        b, length = q_input.shape[:2]
        q = self.wq(q_input).view(b, length, self.n_index_heads, self.index_head_dim)
        q = rotary_embedding(q, positions, self.rope_dim, self.rope_base)
        return self._quant(q)

    def keys(self, x: Tensor, positions: Tensor) -> Tensor:
        """The single shared index key head (B, L, d_I), rotary applied (and FP8 if enabled)."""
        k = self.k_norm(self.wk(x))
        k = rotary_embedding(k, positions, self.rope_dim, self.rope_base)
        return self._quant(k)

    def head_weights(self, x: Tensor) -> Tensor:
        """Per-token head weights (B, L, H_I), already scaled by H_I^-1/2 * d_I^-1/2."""
        return self.weights_proj(x) * self.head_scale

    def forward(
        self,
        x: Tensor,
        q_input: Tensor | None = None,
        positions: Tensor | None = None,
        key_cache: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Return ``(scores, new_keys)``.

        ``x`` is (B, Lq, hidden) for the new tokens, ``q_input`` (B, Lq, q_dim) or None,
        ``positions`` (Lq,) or (B, Lq) (default: continue after the cache), ``key_cache``
        (B, P, d_I) the index keys of the P earlier tokens or None. ``scores`` is (B, Lq, P+Lq)
        with ``-inf`` at causally masked keys; ``new_keys`` (B, Lq, d_I) are the keys of the new
        tokens, for the caller to append to its cache.
        """
        if q_input is None:
            if self.q_dim != self.hidden_size:
                raise ValueError("q_input is required when q_dim != hidden_size")
            q_input = x
        cached = 0 if key_cache is None else key_cache.shape[1]
        pos = self._positions(x, positions, cached)
        q = self.queries(q_input, pos)
        new_keys = self.keys(x, pos)
        k_all = new_keys if key_cache is None else torch.cat((key_cache, new_keys), dim=1)
        weights = self.head_weights(x)
        if q.shape[1] <= self.query_chunk:
            scores = _index_scores(q, k_all, weights)
            allowed = causal_mask(x.shape[1], k_all.shape[1], device=x.device)
            return scores.masked_fill(~allowed, float("-inf")), new_keys
        # A long prompt is scored in chunks of queries, each against only the keys it can
        # see: the (B, Lq, H_I, Lk) ReLU logits of the whole prompt would not fit in memory
        # (8k tokens, 4 heads: 1 GiB), and half of them are causally masked anyway.
        b, lq = q.shape[:2]
        scores = q.new_full((b, lq, k_all.shape[1]), float("-inf"))
        for start in range(0, lq, self.query_chunk):
            end = min(lq, start + self.query_chunk)
            seen = cached + end
            part = _index_scores(q[:, start:end], k_all[:, :seen], weights[:, start:end])
            allowed = causal_mask(end - start, seen - start, device=x.device)
            allowed = F.pad(allowed, (start, 0), value=True)
            scores[:, start:end, :seen] = part.masked_fill_(~allowed, float("-inf"))
        return scores, new_keys

    def scores(
        self,
        x: Tensor,
        q_input: Tensor | None = None,
        positions: Tensor | None = None,
        key_cache: Tensor | None = None,
    ) -> Tensor:
        """Index scores (B, Lq, Lk) only; see ``forward`` for the arguments."""
        return self.forward(x, q_input, positions, key_cache)[0]

    @staticmethod
    def topk(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
        """``(indices, valid)`` of the top-k keys per query; see ``topk_indices``."""
        return topk_indices(scores, k)


# --- sparse core attention ------------------------------------------------------------------


def _repeat_kv(t: Tensor, n_heads: int) -> Tensor:
    h = t.shape[1]
    if h == n_heads:
        return t
    if n_heads % h:
        raise ValueError(f"{n_heads} query heads are not a multiple of {h} key/value heads")
    return t.repeat_interleave(n_heads // h, dim=1)


def _safe_softmax(scores: Tensor, allowed: Tensor) -> Tensor:
    """Softmax over allowed entries in float32; rows with nothing allowed give all zeros."""
    row_ok = allowed.any(dim=-1, keepdim=True)
    s = scores.float().masked_fill(~allowed, float("-inf")).masked_fill(~row_ok, 0.0)
    return torch.softmax(s, dim=-1).masked_fill(~row_ok, 0.0)


def masked_attention_probs(
    q: Tensor,
    k: Tensor,
    indices: Tensor,
    valid: Tensor | None = None,
    scale: float | None = None,
) -> Tensor:
    """Main-attention probabilities (B, H, Lq, Lk) restricted to the selected keys (float32).

    ``q`` is (B, H, Lq, d), ``k`` (B, H or H_kv, Lk, d), ``indices``/``valid`` (B, Lq, k)
    shared by all heads. The sparse-stage indexer loss needs these probabilities.
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    k = _repeat_kv(k, q.shape[1])
    allowed = selection_mask(indices, k.shape[2], valid).unsqueeze(1)  # (B, 1, Lq, Lk)
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    return _safe_softmax(scores, allowed)


def causal_attention_probs(q: Tensor, k: Tensor, scale: float | None = None) -> Tensor:
    """Dense causal attention probabilities (B, H, Lq, Lk) in float32 (dense warm-up target)."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    k = _repeat_kv(k, q.shape[1])
    allowed = causal_mask(q.shape[2], k.shape[2], device=q.device)
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    return _safe_softmax(scores, allowed)


def sparse_attention_masked(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    indices: Tensor,
    valid: Tensor | None = None,
    scale: float | None = None,
) -> Tensor:
    """Sparse attention by masking dense scores (the prefill path); returns (B, H, Lq, d_v).

    Builds the (B, Lq, Lk) selection mask from ``indices`` and hands it to PyTorch's fused
    ``scaled_dot_product_attention``, so no (B, H, Lq, Lk) probability tensor is materialised.
    It still does O(L^2) work: on a CPU a fused masked kernel is faster than gathering k keys
    per query at the lengths we run, and the result is the same. Queries with no selected key
    (padding) get zeros.
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    if valid is None:
        valid = indices >= 0
    # An additive float mask built directly: SDPA would otherwise convert a boolean one
    # with a pass over all Lq x Lk entries, and the per-row check needs only ``valid``.
    n_keys = k.shape[2]
    bias = q.new_full((*indices.shape[:-1], n_keys + 1), float("-inf"))
    bias = bias.scatter_(-1, _scatter_targets(indices, valid, n_keys), 0.0)[..., :n_keys]
    row_ok = valid.any(dim=-1)[:, None, :, None]
    return masked_sdpa(q, k, v, bias.unsqueeze(1), scale, row_ok)  # bias: (B, 1, Lq, Lk)


def masked_sdpa(
    q: Tensor, k: Tensor, v: Tensor, mask: Tensor, scale: float, row_ok: Tensor | None = None
) -> Tensor:
    """Fused attention of ``q`` over the keys ``mask`` allows (boolean, or additive with
    ``-inf``; broadcastable to (B, 1, Lq, Lk)).

    Key/value heads may be fewer than query heads (grouped-query attention). Rows with no
    allowed key (``row_ok`` False; derived from a boolean mask when not given) return zeros
    instead of the NaN a fully masked softmax gives.
    """
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, scale=scale, enable_gqa=k.shape[1] != q.shape[1]
    )
    if row_ok is None:
        row_ok = mask.any(dim=-1, keepdim=True)
    return out if bool(row_ok.all()) else out.masked_fill(~row_ok, 0.0)


def sparse_attention_gathered(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    indices: Tensor,
    valid: Tensor | None = None,
    scale: float | None = None,
) -> Tensor:
    """Sparse attention by gathering the selected keys/values (the decode path).

    Gathers (B, H, Lq, k, d) keys and values (Lq = 1 when decoding) so the work is O(k) per
    query; returns (B, H, Lq, d_v). Valid indices of one query must be distinct (as from
    ``topk_indices``).
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    b, h, lq, _ = q.shape
    if valid is None:
        valid = indices >= 0
    k = _repeat_kv(k, h)
    v = _repeat_kv(v, h)
    n_sel = indices.shape[-1]
    idx = indices.clamp(min=0).long()[:, None, :, :, None]  # (B, 1, Lq, k, 1)

    def gather(t: Tensor) -> Tensor:
        src = t[:, :, None].expand(b, h, lq, t.shape[2], t.shape[-1])
        return src.gather(3, idx.expand(b, h, lq, n_sel, t.shape[-1]))

    k_sel, v_sel = gather(k), gather(v)
    scores = torch.einsum("bhqd,bhqkd->bhqk", q, k_sel) * scale
    probs = _safe_softmax(scores, valid.unsqueeze(1).expand(b, h, lq, n_sel))
    return torch.einsum("bhqk,bhqkd->bhqd", probs.to(v.dtype), v_sel)


def sparse_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    indices: Tensor,
    valid: Tensor | None = None,
    scale: float | None = None,
    mode: AttentionMode = "auto",
) -> Tensor:
    """DSA core attention: every query attends only to its selected keys.

    ``q`` (B, H, Lq, d), ``k``/``v`` (B, H or H_kv, Lk, d), ``indices``/``valid`` (B, Lq, k)
    shared by all heads, ``scale`` default d^-1/2. ``mode="auto"`` masks in prefill (Lq > 1)
    and gathers in decode (Lq == 1); both give the same result. With k >= Lk and causal top-k
    indices this equals dense causal attention.
    """
    if mode == "auto":
        mode = "gather" if q.shape[2] == 1 else "mask"
    if mode == "mask":
        return sparse_attention_masked(q, k, v, indices, valid, scale)
    if mode == "gather":
        return sparse_attention_gathered(q, k, v, indices, valid, scale)
    raise ValueError(f"mode must be 'auto', 'mask' or 'gather', got {mode!r}")


# --- indexer training losses ----------------------------------------------------------------


def attention_target(attn_probs: Tensor, mask: Tensor | None = None) -> Tensor:
    """The indexer's target p (B, Lq, Lk): attention summed over heads, L1-normalised per query.

    ``attn_probs`` is (B, H, Lq, Lk); it is detached (the indexer loss trains only the
    indexer). With ``mask`` (B, Lq, Lk) the target is restricted to and renormalised over the
    selected keys. Rows with no mass stay all zero.
    """
    p = attn_probs.detach().float().sum(dim=1)
    if mask is not None:
        p = p.masked_fill(~mask, 0.0)
    return p / p.sum(dim=-1, keepdim=True).clamp_min(_TINY)


def kl_to_target(index_scores: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean over (batch, query) rows of KL(target_t || softmax(I_t)).

    ``index_scores`` (B, Lq, Lk) may hold ``-inf`` (masked keys); ``mask`` restricts the
    softmax to the selected keys. Zero-target entries contribute nothing (no 0 * -inf NaN),
    and rows with no target mass or no allowed key are left out of the mean. Target mass on a
    key whose score is ``-inf`` makes the loss infinite, as KL should; the causal and top-k
    masks used by DSA never produce that.
    """
    s = index_scores.float()
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    target = target.detach().float()
    row_ok = torch.isfinite(s).any(dim=-1) & (target.sum(dim=-1) > 0)
    s = s.masked_fill(~row_ok.unsqueeze(-1), 0.0)
    log_q = F.log_softmax(s, dim=-1)
    support = target > 0
    log_q = log_q.masked_fill(~support, 0.0)
    log_p = target.clamp_min(_TINY).log().masked_fill(~support, 0.0)
    kl_rows = (target * (log_p - log_q)).sum(dim=-1)
    if not bool(row_ok.any()):
        return s.sum() * 0.0
    return kl_rows[row_ok].mean()


def indexer_kl_loss(index_scores: Tensor, attn_probs: Tensor, mask: Tensor | None = None) -> Tensor:
    """DSA indexer loss: mean over queries of KL(p_t || softmax(I_t)).

    ``p_t`` is the main attention of the same layer (``attn_probs`` (B, H, Lq, Lk)) summed
    over heads and L1-normalised. Without ``mask`` this is the dense warm-up loss; with the
    (B, Lq, Lk) selection mask (see ``selection_mask``) it is the sparse-stage loss, where p is
    renormalised over the selected keys and the softmax runs over them only.
    """
    return kl_to_target(index_scores, attention_target(attn_probs, mask), mask)


__all__ = [
    "FP8_E4M3_MAX",
    "HAS_TORCH_FP8",
    "LightningIndexer",
    "attention_target",
    "causal_attention_probs",
    "causal_mask",
    "e4m3_round_emulated",
    "fp8_quant_dequant",
    "indexer_kl_loss",
    "kl_to_target",
    "masked_attention_probs",
    "rotary_embedding",
    "selection_mask",
    "sparse_attention",
    "sparse_attention_gathered",
    "sparse_attention_masked",
    "topk_indices",
    "topk_overlap",
]
