"""Tiny models of the real DeepSeek Sparse Attention architectures that transformers ships.

`glm_moe_dsa` is GLM-5's model (MLA + MoE + a lightning indexer with interleaved RoPE, and
cross-layer top-k sharing through `config.indexer_types`); `deepseek_v32` is DeepSeek-V3.2's
(the same blocks, a half-split RoPE in the indexer, no sharing). The builder only chooses small
sizes: the modules, RoPE settings and routing rules are transformers' own, so what IndexCache
tools learn on these models carries over to the real checkpoints. The tokenizer is the same
one `posttrain.models.tiny` trains (digits one per token, ChatML template).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PretrainedConfig, PreTrainedTokenizerBase
from transformers.models.deepseek_v32 import DeepseekV32Config
from transformers.models.glm_moe_dsa import GlmMoeDsaConfig

from posttrain.models.tiny import corpus_tokenizer

DSA_ARCHES = ("glm_moe_dsa", "deepseek_v32")


@dataclass(frozen=True)
class TinyDsaSize:
    """Shape of a tiny DSA model; vocabulary size comes from the tokenizer.

    The expert layout (4 routed + 1 shared, 2 per token, first layer dense) and the indexer
    (4 heads of 32 dimensions, top-64) are the same in every size so that sparse attention
    is really sparse on a few hundred tokens.
    """

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    q_lora_rank: int
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    intermediate_size: int
    moe_intermediate_size: int
    n_routed_experts: int = 4
    n_shared_experts: int = 1
    num_experts_per_tok: int = 2
    first_k_dense_replace: int = 1
    index_n_heads: int = 4
    index_head_dim: int = 32
    index_topk: int = 64
    max_position_embeddings: int = 8192


DSA_SIZES: dict[str, TinyDsaSize] = {
    "nano": TinyDsaSize(64, 4, 4, 32, 32, 16, 16, 16, 128, 32),
    "micro": TinyDsaSize(128, 4, 4, 64, 64, 32, 16, 32, 256, 64),
    "mini": TinyDsaSize(256, 4, 8, 128, 64, 32, 32, 32, 512, 128),
    "small": TinyDsaSize(384, 6, 8, 192, 128, 32, 32, 48, 1024, 192),
}

# RoPE as the published configs set it. GLM-5: plain RoPE, theta 1e6. DeepSeek-V3.2(-Exp):
# YaRN stretching a 4096-token pretraining context 40 times, theta 1e4. The tiny DeepSeek keeps
# the factor 40 and shrinks the pretraining context instead (see `_rope_parameters`).
_YARN_FACTOR = 40
_ROPE = {
    "glm_moe_dsa": {"rope_type": "default", "rope_theta": 1000000.0},
    "deepseek_v32": {
        "rope_type": "yarn",
        "rope_theta": 10000.0,
        "factor": float(_YARN_FACTOR),
        "beta_fast": 32.0,
        "beta_slow": 1.0,
        "mscale": 1.0,
        "mscale_all_dim": 1.0,
    },
}


def _rope_parameters(arch: str, shape: TinyDsaSize) -> tuple[dict, int]:
    """RoPE settings and the context length that goes with them.

    transformers checks that YaRN's factor equals max_position_embeddings divided by the
    pretraining context; keeping the real factor 40 means a pretraining context of
    ceil(context / 40) tokens and a context rounded up to a multiple of 40 (8192 -> 8200).
    """
    rope = dict(_ROPE[arch])
    context = shape.max_position_embeddings
    if rope["rope_type"] == "yarn":
        original = -(-context // _YARN_FACTOR)
        rope["original_max_position_embeddings"] = original
        context = original * _YARN_FACTOR
    return rope, context


def resolve_dsa_size(size: str | TinyDsaSize) -> TinyDsaSize:
    if isinstance(size, TinyDsaSize):
        return size
    if size not in DSA_SIZES:
        raise ValueError(f"unknown tiny DSA size {size!r}; choose one of {sorted(DSA_SIZES)}")
    return DSA_SIZES[size]


def tiny_dsa_config(
    tokenizer: PreTrainedTokenizerBase,
    arch: str,
    size: str | TinyDsaSize = "micro",
    indexer_pattern: str | None = None,
) -> PretrainedConfig:
    """A transformers config of `arch` ("glm_moe_dsa" or "deepseek_v32") at a tiny size.

    `indexer_pattern` ("FSFS...", GLM only) chooses which layers run their own indexer; by
    default every layer does, as in the GLM-5 release.
    """
    if arch not in DSA_ARCHES:
        raise ValueError(f"unknown DSA architecture {arch!r}; choose one of {list(DSA_ARCHES)}")
    shape = resolve_dsa_size(size)
    if shape.qk_rope_head_dim > shape.index_head_dim:
        raise ValueError("the indexer rotates qk_rope_head_dim of its index_head_dim dimensions")
    rope, context = _rope_parameters(arch, shape)
    fields = {name: getattr(shape, name) for name in shape.__dataclass_fields__}
    fields["max_position_embeddings"] = context
    common = dict(
        vocab_size=len(tokenizer),
        num_key_value_heads=shape.num_attention_heads,
        rope_parameters=rope,
        routed_scaling_factor=2.5,
        norm_topk_prob=True,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
        **fields,
    )
    if arch == "glm_moe_dsa":
        pattern = indexer_pattern or "F" * shape.num_hidden_layers
        types = [{"F": "full", "S": "shared"}[c] for c in pattern.upper()]
        if len(types) != shape.num_hidden_layers or types[0] != "full":
            raise ValueError(f"pattern {pattern!r}: one F/S a layer, starting with F")
        return GlmMoeDsaConfig(n_group=1, topk_group=1, indexer_types=types, **common)
    if indexer_pattern and set(indexer_pattern.upper()) != {"F"}:
        raise ValueError("deepseek_v32 has no cross-layer top-k sharing in transformers")
    # DeepSeek routes within expert groups; 2 groups of 2 keep that rule alive with 4 experts.
    return DeepseekV32Config(n_group=2, topk_group=1, **common)


def build_tiny_dsa_model(
    out_dir: str | Path,
    corpus: Iterable[str],
    arch: str = "glm_moe_dsa",
    size: str | TinyDsaSize = "micro",
    vocab_size: int = 512,
    seed: int = 0,
    max_positions: int | None = None,
    indexer_pattern: str | None = None,
) -> Path:
    """Train a tokenizer on `corpus`, initialise a tiny `arch` model, save both to `out_dir`."""
    shape = resolve_dsa_size(size)
    if max_positions is not None:
        if max_positions < 16:
            raise ValueError(f"max_positions must be at least 16, got {max_positions}")
        shape = replace(shape, max_position_embeddings=max_positions)
    tokenizer = corpus_tokenizer(corpus, vocab_size, shape.max_position_embeddings)
    config = tiny_dsa_config(tokenizer, arch, shape, indexer_pattern)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
