"""The attention stage: DeepSeek Sparse Attention (DSA) and IndexCache.

``dsa`` holds the lightning indexer, top-k selection, sparse core attention, FP8 index
quantisation and the indexer's KL losses (DeepSeek-V3.2, arXiv:2512.02556). ``indexcache``
holds the cross-layer index reuse of IndexCache (THUDM, 2026): F/S layer patterns, the
runner that skips indexers on Shared layers, the multi-layer distillation loss, the greedy
pattern search and the cross-layer overlap diagnostics. Everything is model-agnostic:
tensors in, tensors out, attention tensors laid out as (B, H, L, d).
"""
