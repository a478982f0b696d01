"""DeepSeek Sparse Attention (DSA) tools that transformers' DSA models do not ship: FP8 indexer
simulation, top-k selection helpers and the indexer's KL losses, model-agnostic (tensors in,
tensors out).

Why: DSA (DeepSeek-V3.2, arXiv:2512.02556) cuts core attention from O(L^2) to O(L*k) by letting
a cheap *lightning indexer* choose, for every query, the top-k keys that the main attention may
look at. The indexer is still O(L^2) and runs in every layer; IndexCache (THUDM, 2026, see
``posttrain.attention.indexcache``) removes most of those indexers by sharing their top-k
indices across layers. The models themselves (indexer, sparse attention) are transformers'
(``glm_moe_dsa``, ``deepseek_v32``, reached through ``posttrain.attention.hf_dsa``); this
module holds what is measured and trained on them:

- FP8: the production indexer runs in FP8 (e4m3, blockwise scales); ``fp8_quant_dequant``
  simulates it on any tensor (native cast or ``e4m3_round_emulated``), so the benchmark can
  compare the FP8 indexer's top-k with the float one (``topk_overlap``).
- top-k: ``topk_indices`` (a canonical, tie-stable top-k with a validity mask),
  ``selection_mask``.
- losses (DeepSeek-V3.2, section 2.1.1): in the dense warm-up the indexer is trained with
  KL(p_t || softmax(I_t)) where p_t is the main attention summed over heads and L1-normalised;
  in the sparse stage both distributions are restricted to the selected keys. See
  ``indexer_kl_loss``, ``attention_target``, ``kl_to_target``.

Conventions: indexer scores are (B, Lq, Lk) with ``-inf`` at masked keys; top-k indices are
(B, Lq, k) and are shared by all attention heads of the layer (DSA selects per query, not per
head); attention probabilities are (B, H, Lq, Lk).

Top-k validity (a choice documented here once): ``topk_indices`` returns ``(indices, valid)``
where ``valid`` is a boolean mask and invalid slots of ``indices`` are also filled with -1, so
either can be used. Query t has only min(k, t + 1 + cached) causal keys; the remaining slots of
its k_eff = min(k, Lk) are invalid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

FP8_E4M3_MAX = 448.0
HAS_TORCH_FP8 = hasattr(torch, "float8_e4m3fn")
_TINY = 1e-30


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
    "attention_target",
    "e4m3_round_emulated",
    "fp8_quant_dequant",
    "indexer_kl_loss",
    "kl_to_target",
    "selection_mask",
    "topk_indices",
    "topk_overlap",
]
