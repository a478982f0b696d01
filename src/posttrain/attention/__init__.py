"""The attention stage: DeepSeek Sparse Attention (DSA) and IndexCache on transformers' DSA models.

The models are transformers' own (GLM-5's ``glm_moe_dsa``, DeepSeek-V3.2's ``deepseek_v32``),
reached through ``hf_dsa``; ``hf_train`` trains and evaluates them (dense pre-training, the
indexer warm-up, DSA's sparse stage) over ``train``'s shared loop. ``dsa`` holds what
transformers does not ship: FP8 index quantisation, top-k selection helpers and the indexer's
KL losses (DeepSeek-V3.2, arXiv:2512.02556). ``indexcache`` holds IndexCache's (THUDM, 2026)
model-agnostic tools: F/S layer patterns, the multi-layer distillation loss, the greedy
pattern search and the cross-layer overlap diagnostics. ``sparse_kernel`` is the gathered
sparse attention kernel, ``speed`` the latency and FLOP measurement.
"""
