"""A tiny causal LM with DeepSeek Sparse Attention (DSA) and IndexCache, as a transformers model.

Why: ``dsa`` and ``indexcache`` are model-agnostic pieces; to train indexers, measure IndexCache
patterns and benchmark sparse against dense attention we need a real language model that uses
them end to end, saves with ``save_pretrained``, loads with ``AutoModelForCausalLM`` and decodes
with a cache. This is that model, kept small enough for a CPU.

Architecture (a Llama/Qwen2-style decoder; no code taken from them): token embedding, N decoder
layers (RMSNorm pre-norm, multi-head attention with RoPE on the full head dim, SwiGLU MLP),
final RMSNorm, LM head (tied to the embedding by default). Each layer owns a ``LightningIndexer``
(DeepSeek-V3.2, arXiv:2512.02556, section 2.1):

- Indexer inputs. Keys and head weights come from the layer's normed hidden state ``h`` (the
  input of the q/k/v projections), as in DeepSeek-V3.2. The index *query path* is also ``h``:
  DeepSeek-V3.2 feeds its low-rank ``q_lora`` activation, and this model has no low-rank query,
  so the closest analogue is the input of the query projection. (The q projection's output
  would tie index queries to the main queries' heads and dims, which DSA does not do.)
- Index detachment (config ``indexer_detach_input``, default True). The indexer gets
  ``h.detach()``: DSA's sparse training stage detaches the indexer input so the indexer is
  trained only by its KL loss and the main model only by the LM loss. Top-k selection is not
  differentiable, so the LM loss never reaches the indexer either way; in the dense warm-up the
  rest is frozen, so detaching there changes nothing but saves work.
- Sparse mode (``sparse=True``): the F layers' indexers score all causal keys, every query keeps
  its ``index_topk`` best keys (shared by all heads of the layer) and core attention runs over
  those only (``dsa.sparse_attention``: masked in prefill, gathered in decode).
- IndexCache (THUDM, 2026): ``index_pattern`` is a string over {F, S}. Only F layers run their
  indexer; each S layer reuses the selection of the nearest preceding F layer (done by
  ``indexcache.IndexCacheRunner``). S layers still own indexer weights, so a pattern can be
  changed on a trained all-F model (``set_index_pattern``), which is what the training-free
  greedy search does; those weights are simply never run. ``indexer_calls[l]`` counts how many
  times layer l's indexer has run, so tests can check that S layers never run theirs.
- Dense mode (``sparse=False``, the benchmark's dense baseline): plain causal attention and no
  indexer at all, unless the indexer scores are asked for (``return_indexer_scores=True``), as
  the dense warm-up needs them (the attention stays dense then).

Batching: equal-length batches, and left-padded batches through ``attention_mask`` (padded
keys are masked out of attention and of the indexer scores, positions count only real tokens),
so batched ``generate`` with a left-padding tokenizer works.

Generation: ``DSACache`` holds per-layer keys/values and, for F layers, the indexer's keys.
It is a small own object rather than transformers' ``DynamicCache`` because DSA needs an extra
per-layer tensor (the single index key head, (B, L, d_I)) next to K/V, which ``DynamicCache``
has no slot for. ``model.generate`` works with it for greedy and sampled decoding (the model
creates the cache in the first forward, transformers carries it), and for beam search
(``DSACache.reorder_cache``). ``generate_tokens`` is a small own decoding loop,
used as the reference (``use_cache=False`` recomputes the whole sequence every step).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    GenerationMixin,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import CausalLMOutputWithPast

from posttrain.attention.dsa import (
    LightningIndexer,
    indexer_kl_loss,
    masked_attention_probs,
    masked_sdpa,
    rotary_embedding,
    selection_mask,
    sparse_attention,
    topk_indices,
)
from posttrain.attention.indexcache import (
    FULL,
    IndexCacheRunner,
    multi_layer_distillation_loss,
    parse_pattern,
    served_layers,
)
from posttrain.models.tiny import corpus_tokenizer

MODEL_TYPE = "posttrain_dsa"


# --- configuration --------------------------------------------------------------------------


class DSAConfig(PretrainedConfig):
    """Configuration of ``DSAForCausalLM``.

    Indexer fields follow DeepSeek-V3.2's names (``index_n_heads``, ``index_head_dim``,
    ``index_topk``; production values 64, 128, 2048). ``index_rope_dim`` is how many leading
    dims of the index queries/keys get rotary embeddings (V3.2 uses 64 of 128).
    ``index_pattern`` is the IndexCache F/S layer pattern (default: all F, plain DSA);
    ``sparse=False`` gives the dense baseline; ``fp8_indexer`` FP8-quantises index q/k.
    """

    model_type = MODEL_TYPE

    vocab_size: int = 512
    hidden_size: int = 64
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int | None = None
    intermediate_size: int = 128
    max_position_embeddings: int = 512
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    initializer_range: float = 0.02
    index_n_heads: int = 4
    index_head_dim: int = 16
    index_rope_dim: int = 8
    index_topk: int = 16
    index_pattern: str | None = None
    sparse: bool = True
    fp8_indexer: bool = False
    indexer_detach_input: bool = True
    use_cache: bool = True
    tie_word_embeddings: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None

    def __post_init__(self, **kwargs: Any) -> None:
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError("the attention head dim must be even for RoPE")
        if self.index_topk < 1:
            raise ValueError(f"index_topk must be >= 1, got {self.index_topk}")
        if self.index_pattern is None:
            self.index_pattern = FULL * self.num_hidden_layers
        parse_pattern(self.index_pattern, self.num_hidden_layers)
        super().__post_init__(**kwargs)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


# --- cache ----------------------------------------------------------------------------------


class DSACache:
    """Per-layer K/V plus, for layers whose indexer runs, the indexer's key cache.

    Keys/values are (B, H_kv, P, d) after RoPE; index keys are (B, P, d_I) (one head shared by
    all index heads, DSA). S layers (IndexCache) and dense decoding store no index keys. Own
    object instead of ``DynamicCache``: see the module docstring. It exposes the few members
    ``generate`` looks at (``get_seq_length``, ``is_compileable``, ``is_croppable``,
    ``is_linear``, and ``reorder_cache`` for beam search).
    """

    is_compileable = False
    is_croppable = False

    def __init__(self, n_layers: int) -> None:
        self.n_layers = n_layers
        self.keys: list[Tensor | None] = [None] * n_layers
        self.values: list[Tensor | None] = [None] * n_layers
        self.index_keys: list[Tensor | None] = [None] * n_layers

    @property
    def is_linear(self) -> list[bool]:
        return [False] * self.n_layers

    def get_seq_length(self, layer_idx: int = 0) -> int:
        k = self.keys[layer_idx]
        return 0 if k is None else int(k.shape[2])

    def __len__(self) -> int:
        return self.n_layers

    def update(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Append this step's (B, H_kv, L, d) keys/values; return the full cached ones."""
        if self.keys[layer] is not None:
            k = torch.cat((self.keys[layer], k), dim=2)
            v = torch.cat((self.values[layer], v), dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def reorder_cache(self, beam_idx: Tensor) -> None:
        """Keep batch rows ``beam_idx`` in every tensor (beam search calls this each step)."""
        for store in (self.keys, self.values, self.index_keys):
            for i, t in enumerate(store):
                if t is not None:
                    store[i] = t.index_select(0, beam_idx.to(t.device))

    def index_key_cache(self, layer: int, past: int) -> Tensor | None:
        """The cached index keys of ``layer`` (None at the start); checks they cover ``past``."""
        cached = self.index_keys[layer]
        have = 0 if cached is None else int(cached.shape[1])
        if have != past:
            raise RuntimeError(
                f"layer {layer}: index-key cache holds {have} tokens but the K/V cache {past}; "
                "the indexer did not run on earlier steps (dense prefill, or a pattern change "
                "mid-generation?)"
            )
        return cached

    def append_index_keys(self, layer: int, new_keys: Tensor) -> None:
        cached = self.index_keys[layer]
        self.index_keys[layer] = new_keys if cached is None else torch.cat((cached, new_keys), 1)


# --- outputs --------------------------------------------------------------------------------


@dataclass
class DSACausalLMOutput(CausalLMOutputWithPast):
    """``CausalLMOutputWithPast`` plus the per-layer tensors the indexer losses need.

    With ``return_indexer_scores=True``: ``indexer_scores[l]`` is (B, Lq, Lk) for layers whose
    indexer ran (F layers) and None on S layers; ``selections[l]`` is the ``(indices, valid)``
    top-k pair layer l attended with (an S layer's is its source F layer's; None in dense
    attention); ``attentions[l]`` is layer l's main attention probabilities (B, H, Lq, Lk),
    float32. ``index_pattern`` is the pattern this forward ran with.
    """

    indexer_scores: tuple[Tensor | None, ...] | None = None
    selections: tuple[tuple[Tensor, Tensor] | None, ...] | None = None
    index_pattern: str | None = None


@dataclass
class _Selection:
    """What an F layer's indexer produced, shared with the S layers it serves."""

    scores: Tensor
    indices: Tensor | None
    valid: Tensor | None


# --- modules --------------------------------------------------------------------------------


def _attention_allowed(n_queries: int, key_mask: Tensor | None, n_keys: int, device) -> Tensor:
    """(B or 1, 1, Lq, Lk) mask: causal (query t sees s <= t + Lk - Lq) and not a padded key."""
    t = torch.arange(n_queries, device=device).unsqueeze(-1)
    s = torch.arange(n_keys, device=device).unsqueeze(0)
    allowed = (s <= t + n_keys - n_queries)[None, None]
    if key_mask is not None:
        allowed = allowed & key_mask[:, None, None, :]
    return allowed


def _softmax_where(scores: Tensor, allowed: Tensor) -> Tensor:
    """Float32 softmax over allowed entries; rows with nothing allowed (pad queries) are zero."""
    row_ok = allowed.any(dim=-1, keepdim=True)
    s = scores.float().masked_fill(~allowed, float("-inf")).masked_fill(~row_ok, 0.0)
    return torch.softmax(s, dim=-1).masked_fill(~row_ok, 0.0)


class DSAMLP(nn.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x))."""

    def __init__(self, config: DSAConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DSAAttention(nn.Module):
    """Multi-head (optionally grouped-query) attention with RoPE and a DSA lightning indexer."""

    def __init__(self, config: DSAConfig, layer_idx: int) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.n_heads = config.num_attention_heads
        self.n_kv_heads = config.num_key_value_heads
        self.head_dim = config.head_dim
        self.scale = self.head_dim**-0.5
        hidden = config.hidden_size
        self.q_proj = nn.Linear(hidden, self.n_heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, self.n_kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, self.n_kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.n_heads * self.head_dim, hidden, bias=False)
        self.indexer = LightningIndexer(
            hidden,
            config.index_n_heads,
            config.index_head_dim,
            rope_dim=config.index_rope_dim,
            rope_base=config.rope_theta,
            fp8=config.fp8_indexer,
            norm_eps=config.rms_norm_eps,
        )

    def select(
        self,
        h: Tensor,
        positions: Tensor,
        key_mask: Tensor | None,
        cache: DSACache | None,
        past: int,
        topk: bool,
    ) -> _Selection:
        """Run this layer's indexer (an F layer) and pick the top-k keys of every query.

        Scores get ``-inf`` at padded keys as well as at causally masked ones, so padding is
        never selected and ``valid`` counts only real keys.
        """
        x = h.detach() if self.config.indexer_detach_input else h
        key_cache = None if cache is None else cache.index_key_cache(self.layer_idx, past)
        scores, new_keys = self.indexer(x, positions=positions, key_cache=key_cache)
        if cache is not None:
            cache.append_index_keys(self.layer_idx, new_keys)
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, :], float("-inf"))
        if not topk:
            return _Selection(scores, None, None)
        indices, valid = topk_indices(scores, self.config.index_topk)
        return _Selection(scores, indices, valid)

    def forward(
        self,
        h: Tensor,
        positions: Tensor,
        key_mask: Tensor | None,
        cache: DSACache | None,
        selection: _Selection | None,
        need_probs: bool,
    ) -> tuple[Tensor, Tensor | None]:
        """Attention output (B, L, hidden) and, if ``need_probs``, probabilities (B, H, Lq, Lk).

        ``selection`` None means dense causal attention; otherwise attention is restricted to
        the selection's top-k keys (sparse DSA attention).
        """
        b, length, _ = h.shape
        q = self.q_proj(h).view(b, length, self.n_heads, self.head_dim)
        k = self.k_proj(h).view(b, length, self.n_kv_heads, self.head_dim)
        v = self.v_proj(h).view(b, length, self.n_kv_heads, self.head_dim)
        q = rotary_embedding(q, positions, base=self.config.rope_theta).transpose(1, 2)
        k = rotary_embedding(k, positions, base=self.config.rope_theta).transpose(1, 2)
        v = v.transpose(1, 2)
        if cache is not None:
            k, v = cache.update(self.layer_idx, k, v)
        probs: Tensor | None = None
        if selection is None and not need_probs:
            if key_mask is None and length == k.shape[2]:
                out = F.scaled_dot_product_attention(
                    q,
                    k,
                    v,
                    is_causal=True,
                    scale=self.scale,
                    enable_gqa=self.n_kv_heads != self.n_heads,
                )
            else:
                allowed = _attention_allowed(length, key_mask, k.shape[2], h.device)
                out = masked_sdpa(q, k, v, allowed, self.scale)
        elif selection is None:
            k_rep = k.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)
            v_rep = v.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)
            scores = torch.matmul(q, k_rep.transpose(-1, -2)) * self.scale
            allowed = _attention_allowed(length, key_mask, k.shape[2], h.device)
            probs = _softmax_where(scores, allowed)
            out = torch.matmul(probs.to(v_rep.dtype), v_rep)
        elif need_probs:
            probs = masked_attention_probs(q, k, selection.indices, selection.valid, self.scale)
            v_rep = v.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)
            out = torch.matmul(probs.to(v_rep.dtype), v_rep)
        else:
            out = sparse_attention(q, k, v, selection.indices, selection.valid, self.scale)
        out = out.transpose(1, 2).reshape(b, length, self.n_heads * self.head_dim)
        return self.o_proj(out), probs if need_probs else None


class DSADecoderLayer(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: DSAConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.input_layernorm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.self_attn = DSAAttention(config, layer_idx)
        self.post_attention_layernorm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.mlp = DSAMLP(config)


class DSAPreTrainedModel(PreTrainedModel):
    """Shared base: config class, weight init (transformers' generic init covers all modules)."""

    config_class = DSAConfig
    base_model_prefix = "model"
    _no_split_modules = ["DSADecoderLayer"]

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # generate() must not create a DynamicCache: the model creates its own DSACache.
        return False


class DSAModel(DSAPreTrainedModel):
    """The decoder stack; ``forward`` returns hidden states plus the per-layer DSA records."""

    def __init__(self, config: DSAConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(
            [DSADecoderLayer(config, i) for i in range(config.num_hidden_layers)]
        )
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.indexer_calls: list[int] = [0] * config.num_hidden_layers
        self.post_init()

    def reset_indexer_calls(self) -> None:
        self.indexer_calls = [0] * self.config.num_hidden_layers

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        cache: DSACache | None = None,
        use_cache: bool = False,
        collect: bool = False,
        need_probs: bool = False,
        sparse: bool | None = None,
        index_pattern: str | None = None,
    ) -> dict[str, Any]:
        """Run the stack; returns a dict with the final normed ``hidden`` states, the ``cache``
        and, when asked (``collect`` / ``need_probs``), the per-layer ``indexer_scores``,
        ``selections`` and ``attentions`` described in ``DSACausalLMOutput``.

        Positions count only real tokens (``attention_mask`` cumsum - 1), so a left-padded row
        gets the same RoPE phases as the same row unpadded.
        """
        cfg = self.config
        sparse = cfg.sparse if sparse is None else sparse
        pattern = parse_pattern(index_pattern or cfg.index_pattern, cfg.num_hidden_layers)
        b, length = input_ids.shape
        if use_cache and cache is None:
            cache = DSACache(cfg.num_hidden_layers)
        if not use_cache:
            cache = None
        past = 0 if cache is None else cache.get_seq_length()
        key_mask: Tensor | None = None
        if attention_mask is not None:
            if attention_mask.shape != (b, past + length):
                raise ValueError(
                    f"attention_mask must be (B, past + L) = {(b, past + length)}, "
                    f"got {tuple(attention_mask.shape)}"
                )
            key_mask = attention_mask.bool()
            if bool(key_mask.all()):
                key_mask = None
        if position_ids is None:
            if attention_mask is not None:
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -length:]
            else:
                position_ids = torch.arange(past, past + length, device=input_ids.device)
        run_indexers = sparse or collect
        layers: list[DSADecoderLayer] = list(self.layers)  # type: ignore[arg-type]
        runner: IndexCacheRunner[_Selection] | None = None
        if run_indexers:
            runner = IndexCacheRunner(pattern, [layer.self_attn.select for layer in layers])
        x = self.embed_tokens(input_ids)
        scores_out: list[Tensor | None] = []
        selections_out: list[tuple[Tensor, Tensor] | None] = []
        probs_out: list[Tensor | None] = []
        for i, layer in enumerate(layers):
            h = layer.input_layernorm(x)
            selection: _Selection | None = None
            if runner is not None:
                selection = runner(i, h, position_ids, key_mask, cache, past, sparse)
            attn_sel = selection if sparse else None
            attn, probs = layer.self_attn(h, position_ids, key_mask, cache, attn_sel, need_probs)
            x = x + attn
            x = x + layer.mlp(layer.post_attention_layernorm(x))
            if collect:
                ran = pattern[i] == FULL
                scores_out.append(selection.scores if ran and selection is not None else None)
                selections_out.append(
                    (attn_sel.indices, attn_sel.valid) if attn_sel is not None else None
                )
            probs_out.append(probs)
        if runner is not None:
            self.indexer_calls = [
                a + c for a, c in zip(self.indexer_calls, runner.calls, strict=True)
            ]
        return {
            "hidden": self.norm(x),
            "cache": cache,
            "indexer_scores": tuple(scores_out) if collect else None,
            "selections": tuple(selections_out) if collect else None,
            "attentions": tuple(probs_out) if need_probs else None,
            "index_pattern": pattern,
        }


class DSAForCausalLM(DSAPreTrainedModel, GenerationMixin):
    """Causal LM with DSA sparse attention and IndexCache layer sharing (see module docstring).

    ``forward`` accepts the usual ``input_ids``, ``attention_mask``, ``labels`` (shifted
    cross-entropy, -100 ignored), ``cache`` (alias ``past_key_values``, a ``DSACache``) and
    ``use_cache``; plus ``return_indexer_scores`` (indexer scores, selections and attention
    probabilities for the indexer losses), ``output_attentions``, and per-call overrides
    ``sparse`` and ``index_pattern``.
    """

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: DSAConfig) -> None:
        super().__init__(config)
        self.model = DSAModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @property
    def indexer_calls(self) -> list[int]:
        """How many times each layer's indexer has run since the last reset."""
        return self.model.indexer_calls

    def reset_indexer_calls(self) -> None:
        self.model.reset_indexer_calls()

    def set_index_pattern(self, pattern: str) -> None:
        """Switch the IndexCache F/S pattern in place (training-free conversion)."""
        self.config.index_pattern = parse_pattern(pattern, self.config.num_hidden_layers)

    def get_input_embeddings(self) -> nn.Module:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        cache: DSACache | None = None,
        labels: Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_indexer_scores: bool = False,
        sparse: bool | None = None,
        index_pattern: str | None = None,
        past_key_values: DSACache | None = None,
        return_dict: bool | None = None,
        **kwargs: Any,
    ) -> DSACausalLMOutput:
        if output_hidden_states:
            raise ValueError("output_hidden_states is not supported by DSAForCausalLM")
        if kwargs.get("inputs_embeds") is not None:
            raise ValueError("inputs_embeds is not supported by DSAForCausalLM")
        if cache is None:
            cache = past_key_values
        if cache is not None and not isinstance(cache, DSACache):
            raise TypeError(f"cache must be a DSACache, got {type(cache).__name__}")
        if use_cache is None:
            use_cache = cache is not None or (self.config.use_cache and not self.training)
        collect = bool(return_indexer_scores)
        need_probs = collect or bool(output_attentions)
        out = self.model(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            collect=collect,
            need_probs=need_probs,
            sparse=sparse,
            index_pattern=index_pattern,
        )
        logits = self.lm_head(out["hidden"])
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                labels[:, 1:].reshape(-1).to(logits.device),
                ignore_index=-100,
            )
        return DSACausalLMOutput(
            loss=loss,
            logits=logits,
            cache=out["cache"],
            attentions=out["attentions"],
            indexer_scores=out["indexer_scores"],
            selections=out["selections"],
            index_pattern=out["index_pattern"],
        )


AutoConfig.register(MODEL_TYPE, DSAConfig, exist_ok=True)
AutoModelForCausalLM.register(DSAConfig, DSAForCausalLM, exist_ok=True)


# --- decoding -------------------------------------------------------------------------------


@torch.no_grad()
def generate_tokens(
    model: DSAForCausalLM,
    input_ids: Tensor,
    max_new_tokens: int,
    attention_mask: Tensor | None = None,
    use_cache: bool = True,
    do_sample: bool = False,
    temperature: float = 1.0,
    eos_token_id: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Greedy (or sampled) decoding with an own loop; returns (B, L + new) token ids.

    With ``use_cache=True`` each step feeds only the new token and the ``DSACache``; with
    ``use_cache=False`` it recomputes the full forward on the whole sequence every step (the
    reference the cache is tested against). Rows that produced ``eos_token_id`` continue with
    the pad id (or eos) and the loop stops when every row has finished.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    was_training = model.training
    model.eval()
    ids = input_ids
    mask = attention_mask
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else eos_token_id
    finished = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    cache: DSACache | None = None
    step_ids = ids
    for _ in range(max_new_tokens):
        if use_cache:
            out = model(step_ids, attention_mask=mask, cache=cache, use_cache=True)
            cache = out.cache
        else:
            out = model(ids, attention_mask=mask, use_cache=False)
        logits = out.logits[:, -1].float()
        if do_sample:
            probs = torch.softmax(logits / max(temperature, 1e-6), dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        else:
            nxt = logits.argmax(dim=-1)
        if eos_token_id is not None:
            if pad is not None:
                nxt = torch.where(finished, torch.full_like(nxt, pad), nxt)
            finished = finished | (nxt == eos_token_id)
        ids = torch.cat((ids, nxt[:, None]), dim=1)
        step_ids = nxt[:, None]
        if mask is not None:
            mask = torch.cat((mask, mask.new_ones((mask.shape[0], 1))), dim=1)
        if eos_token_id is not None and bool(finished.all()):
            break
    model.train(was_training)
    return ids


# --- indexer training -----------------------------------------------------------------------


def indexer_parameters(model: DSAForCausalLM, active_only: bool = False) -> list[nn.Parameter]:
    """The lightning indexers' parameters (all layers, or only F layers with ``active_only``)."""
    pattern = model.config.index_pattern
    params: list[nn.Parameter] = []
    for i, layer in enumerate(model.model.layers):
        if active_only and pattern[i] != FULL:
            continue
        params.extend(layer.self_attn.indexer.parameters())
    return params


def freeze_non_indexer(model: DSAForCausalLM) -> list[nn.Parameter]:
    """Dense warm-up setup: freeze everything except the indexers; return the trainable ones."""
    keep = {id(p) for p in indexer_parameters(model)}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return indexer_parameters(model)


@dataclass
class IndexerLosses:
    """``total`` (mean over F layers) and the loss of each F layer's indexer."""

    total: Tensor
    per_layer: dict[int, Tensor]


def indexer_losses(
    outputs: DSACausalLMOutput,
    stage: str = "dense",
    pattern: str | None = None,
    distill: bool = True,
) -> IndexerLosses:
    """DSA indexer KL losses from a forward run with ``return_indexer_scores=True``.

    ``stage="dense"`` (DSA warm-up): KL(p || softmax(I)) over all causal keys, p the main
    attention summed over heads and L1-normalised (``dsa.indexer_kl_loss``); run the forward
    with dense attention (``sparse=False``) and train only ``indexer_parameters``.
    ``stage="sparse"``: both distributions restricted to the F layer's selected keys (the
    selection mask), added to the LM loss; the indexer input is detached inside the model.
    IndexCache (``pattern``, default the one the forward ran with): with ``distill`` each F
    layer's indexer is trained against every layer it serves (``served_layers``) with
    ``multi_layer_distillation_loss``; without it, against its own layer only. For an all-F
    pattern both are plain DSA.
    """
    if stage not in ("dense", "sparse"):
        raise ValueError(f"stage must be 'dense' or 'sparse', got {stage!r}")
    if outputs.indexer_scores is None or outputs.attentions is None:
        raise ValueError("run the model with return_indexer_scores=True")
    pattern = pattern or outputs.index_pattern
    if pattern is None:
        raise ValueError("no index pattern given or recorded in the outputs")
    parse_pattern(pattern, len(outputs.attentions))
    per_layer: dict[int, Tensor] = {}
    for src, layers in served_layers(pattern).items():
        scores = outputs.indexer_scores[src]
        if scores is None:
            raise ValueError(f"layer {src} is F in {pattern!r} but its indexer did not run")
        mask = None
        if stage == "sparse":
            sel = outputs.selections[src] if outputs.selections is not None else None
            if sel is None:
                raise ValueError("stage='sparse' needs a forward with sparse attention")
            mask = selection_mask(sel[0], scores.shape[-1], sel[1])
        if distill:
            targets: Sequence[Tensor] = [outputs.attentions[j] for j in layers]
            per_layer[src] = multi_layer_distillation_loss(scores, targets, mask)
        else:
            per_layer[src] = indexer_kl_loss(scores, outputs.attentions[src], mask)
    total = torch.stack(list(per_layer.values())).mean()
    return IndexerLosses(total=total, per_layer=per_layer)


# --- building a model on disk ---------------------------------------------------------------


SIZES: dict[str, dict[str, int]] = {
    "nano": dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        index_n_heads=2,
        index_head_dim=8,
        index_rope_dim=4,
        index_topk=8,
    ),
    "tiny": dict(
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=128,
        index_n_heads=4,
        index_head_dim=16,
        index_rope_dim=8,
        index_topk=16,
    ),
    "small": dict(
        hidden_size=128,
        num_hidden_layers=8,
        num_attention_heads=4,
        intermediate_size=384,
        index_n_heads=4,
        index_head_dim=32,
        index_rope_dim=16,
        index_topk=64,
    ),
}


def build_dsa_model(
    out_dir: str | Path,
    corpus: Iterable[str],
    size: str = "tiny",
    vocab_size: int = 512,
    seed: int = 0,
    max_positions: int = 512,
    **overrides: Any,
) -> Path:
    """Train a tokenizer on ``corpus``, initialise a ``DSAForCausalLM``, save both to ``out_dir``.

    ``size`` picks a shape from ``SIZES``; ``overrides`` set any ``DSAConfig`` field (for
    instance ``index_pattern="FSFS"``, ``sparse=False``, ``index_topk=32``). Load it back with
    ``AutoModelForCausalLM.from_pretrained(out_dir)`` after importing this module.
    """
    if size not in SIZES:
        raise ValueError(f"unknown DSA model size {size!r}; choose one of {sorted(SIZES)}")
    tokenizer = corpus_tokenizer(corpus, vocab_size, max_positions)
    fields = {**SIZES[size], "max_position_embeddings": max_positions, **overrides}
    config = DSAConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **fields,
    )
    torch.manual_seed(seed)
    model = DSAForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


__all__ = [
    "MODEL_TYPE",
    "SIZES",
    "DSAAttention",
    "DSACache",
    "DSACausalLMOutput",
    "DSAConfig",
    "DSADecoderLayer",
    "DSAForCausalLM",
    "DSAModel",
    "IndexerLosses",
    "build_dsa_model",
    "freeze_non_indexer",
    "generate_tokens",
    "indexer_losses",
    "indexer_parameters",
]
