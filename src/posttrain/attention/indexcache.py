"""IndexCache: share DSA top-k indices across layers so most layers skip their indexer.

Why: in DeepSeek Sparse Attention (DSA, DeepSeek-V3.2, arXiv:2512.02556) the core attention is
O(L*k) but the lightning indexer that picks the k keys is O(L^2) and runs in every layer, so at
long context it dominates. IndexCache (THUDM, 2026) observes that adjacent layers select
largely the same keys, keeps indexers only in a few *Full* (F) layers and lets every *Shared*
(S) layer reuse the top-k indices of the nearest preceding F layer. Two ways to choose and fit
the pattern:

- training-free: ``greedy_layer_search`` converts F layers to S one at a time, each time the one
  whose conversion hurts the calibration LM loss least (the caller supplies the loss);
- training-aware: ``multi_layer_distillation_loss`` trains each kept indexer against the
  attention of every layer it serves, which has the same gradient as a KL to their averaged
  attention distribution.

Patterns are strings over {"F", "S"}, one letter per layer, layer 0 always "F". This module is
model-agnostic: scores and attention are tensors (see ``dsa`` for layouts); running a model
under a pattern is transformers' (GLM-5's ``indexer_types``, through ``hf_dsa``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from posttrain.attention.dsa import attention_target, kl_to_target, selection_mask

FULL = "F"
SHARED = "S"


# --- patterns -------------------------------------------------------------------------------


def parse_pattern(spec: str, n_layers: int) -> str:
    """Validate an explicit F/S pattern such as ``"FSSSFSSS"`` and return it.

    Raises ValueError when the length is not ``n_layers``, a character is not F or S, or layer
    0 is not F (an S layer needs a preceding F layer to copy from).
    """
    if not isinstance(spec, str):
        raise ValueError(f"pattern must be a string of 'F'/'S', got {type(spec).__name__}")
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    if len(spec) != n_layers:
        raise ValueError(f"pattern {spec!r} has length {len(spec)}, expected n_layers={n_layers}")
    bad = [(i, c) for i, c in enumerate(spec) if c not in (FULL, SHARED)]
    if bad:
        i, c = bad[0]
        raise ValueError(f"pattern {spec!r} has invalid character {c!r} at layer {i}; use F or S")
    if spec[0] != FULL:
        raise ValueError(f"pattern {spec!r}: layer 0 must be F (an S layer reuses a preceding F)")
    return spec


def pattern_from_frequency(n_layers: int, freq: int, offset: int = 2) -> str:
    """F/S pattern from the serving engines' ``index_topk_freq`` / ``index_skip_topk_offset``.

    Convention (vLLM ``deepseek_v2.py`` and its SGLang/Megatron/transformers GLM-DSA
    counterparts): layer i skips its top-k (is S) iff ``max(i - offset + 1, 0) % freq != 0``,
    i.e. layer i is F iff ``i < offset`` or ``(i - offset + 1) % freq == 0``. The engines'
    default offset is 2 (so with freq 1 every layer is F). Example: GLM-5.2, 78 layers,
    freq=4, offset=3 -> F at 0, 1, 2, 6, 10, ..., 74 (21 F layers). Layer 0 is forced F
    (with offset 0 the formula alone would make it S). Note the engines' ``offset`` is one
    more than a "first periodic F layer" offset: freq=4, offset=1 gives ``FSSSFSSS...``.
    """
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    if freq < 1:
        raise ValueError(f"freq (index_topk_freq) must be >= 1, got {freq}")
    if offset < 0:
        raise ValueError(f"offset (index_skip_topk_offset) must be >= 0, got {offset}")
    letters = [
        FULL if i == 0 or max(i - offset + 1, 0) % freq == 0 else SHARED for i in range(n_layers)
    ]
    return "".join(letters)


def source_layers(pattern: str) -> list[int]:
    """For each layer, the F layer whose indices it uses (itself if F, else nearest before)."""
    parse_pattern(pattern, len(pattern))
    sources: list[int] = []
    last = 0
    for i, c in enumerate(pattern):
        if c == FULL:
            last = i
        sources.append(last)
    return sources


def served_layers(pattern: str) -> dict[int, list[int]]:
    """F layer -> the layers that use its indices (itself first, then its S layers)."""
    served: dict[int, list[int]] = {}
    for layer, src in enumerate(source_layers(pattern)):
        served.setdefault(src, []).append(layer)
    return served


def full_layers(pattern: str) -> list[int]:
    """Indices of the F layers."""
    return [i for i, c in enumerate(parse_pattern(pattern, len(pattern))) if c == FULL]


# --- training-aware: multi-layer distillation -----------------------------------------------


def multi_layer_distillation_loss(
    index_scores: Tensor,
    attn_probs_per_layer: Sequence[Tensor],
    mask: Tensor | None = None,
) -> Tensor:
    """IndexCache's distillation loss for one kept indexer serving m + 1 layers.

    L = sum over served layers l of 1/(m+1) * KL(p^(l) || softmax(I)), each KL averaged over
    (batch, query) rows as in ``dsa.indexer_kl_loss``; p^(l) is layer l's attention
    (B, H, Lq, Lk) summed over heads and L1-normalised (restricted to ``mask`` if given).
    Because KL is linear in its target up to a constant, the gradient w.r.t. ``index_scores``
    equals that of one KL to the averaged target 1/(m+1) * sum_l p^(l).
    """
    if len(attn_probs_per_layer) == 0:
        raise ValueError("attn_probs_per_layer is empty")
    weight = 1.0 / len(attn_probs_per_layer)
    total = index_scores.new_zeros((), dtype=torch.float32)
    for probs in attn_probs_per_layer:
        total = total + weight * kl_to_target(index_scores, attention_target(probs, mask), mask)
    return total


def averaged_target(attn_probs_per_layer: Sequence[Tensor], mask: Tensor | None = None) -> Tensor:
    """1/(m+1) * sum_l p^(l): the single distribution the distillation loss is equivalent to."""
    targets = [attention_target(p, mask) for p in attn_probs_per_layer]
    return torch.stack(targets).mean(dim=0)


# --- training-free: greedy layer search ------------------------------------------------------


def greedy_layer_search(
    n_layers: int,
    loss_fn: Callable[[str], float],
    target_full: int | None = None,
) -> list[tuple[int, str, float]]:
    """Greedy F -> S conversion by calibration loss (IndexCache, training-free).

    Starts from all F and records ``(n_full, pattern, loss)`` for it; then, at each step,
    tries converting every F layer except layer 0 to S, evaluates ``loss_fn(pattern)`` (the
    caller's LM loss on fixed, cached calibration batches), keeps the conversion with the
    lowest loss (ties: the lowest layer index) and records it, until ``target_full`` F layers
    remain (default 1). Costs O(n_layers^2) loss evaluations.
    """
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    target = 1 if target_full is None else target_full
    if not 1 <= target <= n_layers:
        raise ValueError(f"target_full must be in [1, {n_layers}], got {target_full}")
    pattern = FULL * n_layers
    history = [(n_layers, pattern, float(loss_fn(pattern)))]
    n_full = n_layers
    while n_full > target:
        best: tuple[float, str] | None = None
        for layer in range(1, n_layers):
            if pattern[layer] != FULL:
                continue
            candidate = pattern[:layer] + SHARED + pattern[layer + 1 :]
            loss = float(loss_fn(candidate))
            if best is None or loss < best[0]:
                best = (loss, candidate)
        assert best is not None
        n_full -= 1
        pattern = best[1]
        history.append((n_full, pattern, best[0]))
    return history


# --- diagnostics: cross-layer overlap -------------------------------------------------------


def index_overlap_matrix(
    indices_per_layer: Sequence[Tensor],
    valid: Tensor | Sequence[Tensor] | None = None,
) -> np.ndarray:
    """Jaccard |A & B| / |A | B| of the top-k sets of every layer pair, averaged over queries.

    ``indices_per_layer[l]`` is layer l's (B, Lq, k) selection; ``valid`` is one mask for all
    layers, a mask per layer, or None (entries >= 0 are valid). Queries where both sets are
    empty count as overlap 1. Returns an (n_layers, n_layers) symmetric float array with a
    unit diagonal. The high off-diagonal values next to the diagonal are IndexCache's
    motivation.
    """
    n = len(indices_per_layer)
    if n == 0:
        return np.zeros((0, 0))
    if valid is None or isinstance(valid, Tensor):
        valids: list[Tensor | None] = [valid] * n
    else:
        valids = list(valid)
        if len(valids) != n:
            raise ValueError(f"got {len(valids)} validity masks for {n} layers")
    n_keys = int(max(max(int(ix.max().item()) for ix in indices_per_layer), 0)) + 1
    sets = [selection_mask(ix, n_keys, v) for ix, v in zip(indices_per_layer, valids, strict=True)]
    out = np.eye(n)
    for i in range(n):
        for j in range(i + 1, n):
            inter = (sets[i] & sets[j]).sum(-1).double()
            union = (sets[i] | sets[j]).sum(-1).double()
            jac = torch.where(union > 0, inter / union.clamp_min(1.0), torch.ones_like(union))
            out[i, j] = out[j, i] = float(jac.mean().item())
    return out


def plot_overlap(matrix: np.ndarray, path: str | Path, title: str | None = None) -> Path:
    """Write the overlap matrix as a heat map PNG (Agg canvas, no global backend change)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = matrix.shape[0]
    size = min(max(4.0, 0.25 * n + 2.0), 16.0)
    fig = Figure(figsize=(size + 1.0, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis", origin="upper")
    fig.colorbar(image, ax=ax, label="top-k Jaccard overlap")
    ax.set_xlabel("layer")
    ax.set_ylabel("layer")
    ax.set_title(title or "Cross-layer top-k index overlap")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


__all__ = [
    "FULL",
    "SHARED",
    "averaged_target",
    "full_layers",
    "greedy_layer_search",
    "index_overlap_matrix",
    "multi_layer_distillation_loss",
    "parse_pattern",
    "pattern_from_frequency",
    "plot_overlap",
    "served_layers",
    "source_layers",
]
