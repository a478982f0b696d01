"""The fields of a nano GLM-5 / DeepSeek-V3.2 config (transformers' own classes) shared by the
sparse-kernel and speed tests: 4 layers, MLA and MoE at toy widths, top-8 of 40-token inputs."""

VOCAB = 97
TOPK = 8
LENGTH = 40  # longer than TOPK: most queries see more keys than they may pick

FIELDS = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    moe_intermediate_size=32,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=4,
    n_shared_experts=1,
    n_routed_experts=4,
    num_experts_per_tok=2,
    topk_group=1,
    kv_lora_rank=16,
    q_lora_rank=24,
    qk_rope_head_dim=8,
    qk_nope_head_dim=8,
    v_head_dim=12,  # unlike the key width: the output takes the value's
    index_topk=TOPK,
    index_head_dim=16,
    # The indexer sums ReLU'd head scores, so with few heads many keys score exactly 0 and
    # top-k breaks those ties by position, which padding shifts (seen with 2 heads, under
    # SDPA too); 8 heads make an all-zero key rare.
    index_n_heads=8,
    first_k_dense_replace=1,
    max_position_embeddings=256,
    # Far from uniform attention, so picking 8 of 40 keys changes the logits visibly.
    initializer_range=0.3,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)
"""`n_group` is left to each test: GLM-5 takes 1; DeepSeek-V3.2's router groups experts."""
