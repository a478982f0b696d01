"""IndexCache over transformers' own DSA models (`glm_moe_dsa`, `deepseek_v32`, and any model
whose decoder layers carry `self_attn.indexer`), without copying their model code.

A *pattern* is one letter a layer: "F" (the layer runs its own indexer) or "S" (it reuses the
top-k of the nearest full layer above it), e.g. "FSFS". transformers stores it as
`config.indexer_types` (["full", "shared", ...]) on GLM-5's model.

What this module reads and changes, and where:

- `dsa_layers`, `pattern_of`, `apply_pattern`, `using_pattern`: the attention modules and
  `indexer_types`. GLM's attention builds `indexer=None` for shared layers, so
  `apply_pattern` on a loaded model drops the indexers of layers turned "S" (their weights
  are gone: keep the original checkpoint to undo) and builds one for layers turned "F",
  initialised as a copy of the indexer whose top-k that layer was reusing (a warm start from
  the nearest trained indexer rather than random weights; it still needs the indexer
  warm-up to fit its own layer). The config changes with the modules, so `save_pretrained`
  then `from_pretrained` gives the same model. DeepSeek-V3.2's attention in transformers
  always calls its own indexer, so `apply_pattern` refuses any "S" there. `using_pattern`
  applies a pattern for a block only and gives the original indexers back (searches).
- `capture_topk`, `count_indexer_calls`: forward hooks on the indexer modules.
- `index_scores`: the indexer's score recomputed with gradients from its own submodules,
  because the module's forward is `torch.no_grad`.
- `attention_probs`: the main attention's probabilities via transformers' eager path and
  `output_attentions`, as distillation targets.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel

DSA_MODEL_TYPES = ("glm_moe_dsa", "deepseek_v32")
# Model types whose attention reads `config.indexer_types` (cross-layer top-k sharing).
SHARING_MODEL_TYPES = ("glm_moe_dsa",)
_LETTER = {"full": "F", "shared": "S"}
_TYPE = {"F": "full", "S": "shared"}


def _decoder_layers(model: nn.Module) -> nn.ModuleList:
    base = getattr(model, "base_model", model)
    layers = getattr(base, "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__} has no decoder layers at .base_model.layers")
    return layers


def is_dsa_model(model: nn.Module) -> bool:
    """True for a transformers DSA model: a known model type or layers with an indexer."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) in DSA_MODEL_TYPES:
        return True
    try:
        layers = _decoder_layers(model)
    except ValueError:
        return False
    return any(hasattr(getattr(layer, "self_attn", None), "indexer") for layer in layers)


def dsa_layers(model: nn.Module) -> list[nn.Module]:
    """The attention module of every decoder layer, in order; each has `.indexer` (None on
    a shared layer)."""
    if not is_dsa_model(model):
        raise ValueError(f"{type(model).__name__} is not a DSA model (no self_attn.indexer)")
    return [layer.self_attn for layer in _decoder_layers(model)]


def pattern_of(model_or_config: nn.Module | PretrainedConfig) -> str:
    """The pattern ("FSFS...": which layers run their own indexer), read from the modules for
    a model and from `indexer_types` for a config (every layer full where it has none)."""
    if isinstance(model_or_config, PretrainedConfig):
        types = getattr(model_or_config, "indexer_types", None)
        if types is None:
            return "F" * model_or_config.num_hidden_layers
        return "".join(_LETTER[t] for t in types)
    return "".join("S" if attn.indexer is None else "F" for attn in dsa_layers(model_or_config))


def _check_pattern(pattern: str, num_layers: int, model_type: str | None) -> str:
    pattern = pattern.upper()
    if len(pattern) != num_layers or set(pattern) - {"F", "S"}:
        raise ValueError(f"pattern {pattern!r}: need {num_layers} letters, each F or S")
    if pattern[0] != "F":
        raise ValueError(f"pattern {pattern!r}: the first layer has no top-k to reuse")
    if "S" in pattern and model_type not in SHARING_MODEL_TYPES:
        raise ValueError(
            f"{model_type} has no cross-layer top-k sharing in transformers (its attention "
            f"always calls its own indexer); only {list(SHARING_MODEL_TYPES)} accept 'S' layers"
        )
    return pattern


def apply_pattern(
    model_or_config: PreTrainedModel | PretrainedConfig, pattern: str
) -> PreTrainedModel | PretrainedConfig:
    """Make `pattern` the model's (or config's) indexer layout; returns its argument.

    On a model the indexer modules follow: see the module docstring for what is dropped and
    how new indexers start.
    """
    is_config = isinstance(model_or_config, PretrainedConfig)
    config = model_or_config if is_config else model_or_config.config
    pattern = _check_pattern(pattern, config.num_hidden_layers, config.model_type)
    if config.model_type in SHARING_MODEL_TYPES:
        config.indexer_types = [_TYPE[c] for c in pattern]
        if getattr(config, "index_topk_pattern", None) is not None:
            config.index_topk_pattern = pattern  # keep the published field in step
    if is_config:
        return model_or_config
    attns = dsa_layers(model_or_config)
    # The indexer each layer used before the change: its own, or the nearest full one above
    # (layers always started with "F", so there is one).
    used, source = [], None
    for attn in attns:
        source = attn.indexer or source
        used.append(source)
    for attn, letter, was in zip(attns, pattern, used, strict=True):
        if letter == "S":
            attn.indexer = None
        elif attn.indexer is None:
            attn.indexer = copy.deepcopy(was, memo={id(config): config})
            attn.indexer.layer_idx = attn.layer_idx
        if hasattr(attn, "skip_topk"):
            attn.skip_topk = letter == "S"
    return model_or_config


@contextmanager
def using_pattern(model: PreTrainedModel, pattern: str) -> Iterator[PreTrainedModel]:
    """`pattern` for the block only: on exit the model gets back its own indexer modules
    (the same objects, weights untouched) and its config. For searches that try many
    patterns on one loaded model, where `apply_pattern` would drop indexers for good."""
    config = model.config
    attns = dsa_layers(model)
    saved = [(attn.indexer, getattr(attn, "skip_topk", None)) for attn in attns]
    fields = {
        k: getattr(config, k) for k in ("indexer_types", "index_topk_pattern") if hasattr(config, k)
    }
    try:
        yield apply_pattern(model, pattern)
    finally:
        for attn, (indexer, skip) in zip(attns, saved, strict=True):
            attn.indexer = indexer
            if skip is not None:
                attn.skip_topk = skip
        for key, value in fields.items():
            setattr(config, key, value)


def _indexers(model: nn.Module) -> dict[int, nn.Module]:
    return {i: a.indexer for i, a in enumerate(dsa_layers(model)) if a.indexer is not None}


@dataclass
class IndexerCalls:
    """Indexer forward calls seen inside `count_indexer_calls`: in all, and by layer."""

    per_layer: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.per_layer.values())


@contextmanager
def count_indexer_calls(model: nn.Module) -> Iterator[IndexerCalls]:
    """Count the indexer calls the model makes while the block runs (the indexers present
    on entry: apply a pattern before entering, not inside)."""
    calls = IndexerCalls()
    handles = [
        indexer.register_forward_hook(lambda *_, i=i: calls.per_layer.update([i]))
        for i, indexer in _indexers(model).items()
    ]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def capture_topk(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    all_layers: bool = False,
) -> dict[int, torch.Tensor]:
    """{layer: top-k token indices [batch, seq, k]} of one forward pass.

    By default the full layers' own indexer choices (the rows of an overlap matrix); with
    `all_layers` also the indices every shared layer attended with (GLM's attention returns
    them as its third output), which are its full layer's.
    """
    found: dict[int, torch.Tensor] = {}
    handles = [
        indexer.register_forward_hook(lambda _m, _a, out, i=i: found.__setitem__(i, out))
        for i, indexer in _indexers(model).items()
    ]
    if all_layers:
        for i, attn in enumerate(dsa_layers(model)):
            if attn.indexer is None:
                hook = _store_attention_topk(found, i)
                handles.append(attn.register_forward_hook(hook))
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return dict(sorted(found.items()))


def _store_attention_topk(found: dict[int, torch.Tensor], layer: int):
    def hook(_module, _args, out):
        if not (isinstance(out, tuple) and len(out) == 3):
            raise ValueError("this attention does not return the top-k it attended with")
        found[layer] = out[2]

    return hook


@dataclass(frozen=True)
class IndexerInputs:
    """What an indexer's forward received: everything needed to recompute its scores."""

    hidden_states: torch.Tensor
    q_resid: torch.Tensor
    position_embeddings: tuple[torch.Tensor, torch.Tensor]
    attention_mask: torch.Tensor


@torch.no_grad()
def indexer_inputs(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> dict[int, IndexerInputs]:
    """{full layer: its indexer's inputs} from one no-grad forward pass (detached)."""
    found: dict[int, IndexerInputs] = {}

    def capture(i: int):
        def hook(_module, args, kwargs):
            names = ("hidden_states", "q_resid", "position_embeddings", "attention_mask")
            values = dict(zip(names, args, strict=False)) | {
                k: v for k, v in kwargs.items() if k in names
            }
            found[i] = IndexerInputs(**{k: values[k] for k in names})

        return hook

    handles = [
        indexer.register_forward_pre_hook(capture(i), with_kwargs=True)
        for i, indexer in _indexers(model).items()
    ]
    try:
        model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return dict(sorted(found.items()))


def _indexer_rope(model_type: str):
    """The RoPE variant transformers' indexer applies: interleaved pairs for GLM-5, the
    half-split layout for DeepSeek-V3.2 (taken from transformers, not copied)."""
    if model_type == "glm_moe_dsa":
        from transformers.models.glm_moe_dsa.modeling_glm_moe_dsa import (
            apply_rotary_pos_emb_interleave,
        )

        return apply_rotary_pos_emb_interleave
    if model_type == "deepseek_v32":
        from transformers.models.deepseek_v32.modeling_deepseek_v32 import apply_rotary_pos_emb

        return apply_rotary_pos_emb
    raise ValueError(f"no known indexer RoPE for model type {model_type!r}")


def index_scores(
    model: nn.Module,
    layer: int,
    input_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    inputs: IndexerInputs | None = None,
) -> torch.Tensor:
    """The indexer's scores [batch, seq, keys] of `layer`, with gradients into its weights.

    Same arithmetic as the module's forward (which is no-grad): ReLU of each head's scaled
    q.k, weighted by `weights_proj`, summed over heads; masked keys are -inf. Give `inputs`
    (from `indexer_inputs`, one pass for all layers) or `input_ids` to capture them here.
    """
    indexer = dsa_layers(model)[layer].indexer
    if indexer is None:
        raise ValueError(f"layer {layer} is a shared layer: it has no indexer")
    if inputs is None:
        if input_ids is None:
            raise ValueError("give input_ids or inputs")
        inputs = indexer_inputs(model, input_ids, attention_mask)[layer]
    rope = _indexer_rope(model.config.model_type)
    x, mask = inputs.hidden_states, inputs.attention_mask
    batch, seq, _ = x.shape
    rot = indexer.qk_rope_head_dim
    q = indexer.wq_b(inputs.q_resid).view(batch, seq, indexer.n_heads, indexer.head_dim)
    k = indexer.k_norm(indexer.wk(x)).unsqueeze(2)
    cos, sin = inputs.position_embeddings
    q_rot, k_rot = rope(q[..., :rot], k[..., :rot], cos, sin, unsqueeze_dim=2)
    q = torch.cat([q_rot, q[..., rot:]], dim=-1)
    k = torch.cat([k_rot, k[..., rot:]], dim=-1).squeeze(2)
    per_head = F.relu(q.float() @ k.float().transpose(-1, -2).unsqueeze(1) * indexer.softmax_scale)
    weights = indexer.weights_proj(x.to(indexer.weights_proj.weight.dtype)).float()
    scores = (weights * indexer.n_heads**-0.5).unsqueeze(-2) @ per_head
    scores = scores.squeeze(-2)
    if mask.dtype == torch.bool:
        return scores.masked_fill(~mask, float("-inf"))
    return scores + mask


@contextmanager
def attn_implementation(model: PreTrainedModel, name: str) -> Iterator[None]:
    """``name`` as the model's attention implementation for the block (then the one before)."""
    before = model.config._attn_implementation
    model.set_attn_implementation(name)
    try:
        yield
    finally:
        model.set_attn_implementation(before)


@contextmanager
def _dense_indexers(model: nn.Module) -> Iterator[None]:
    """Every indexer keeps every key, so the attention is the dense causal one."""
    indexers = list(_indexers(model).values())
    before = [indexer.index_topk for indexer in indexers]
    for indexer in indexers:
        indexer.index_topk = 1 << 62  # the module takes min(index_topk, keys)
    try:
        yield
    finally:
        for indexer, k in zip(indexers, before, strict=True):
            indexer.index_topk = k


@torch.no_grad()
def attention_probs(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    dense: bool = True,
) -> dict[int, torch.Tensor]:
    """{layer: the main attention's probabilities [batch, heads, seq, keys]}.

    `dense` (the warm-up target) lets every query see all earlier keys; otherwise they are
    the model's own sparse probabilities, zero outside each layer's top-k.
    """
    with attn_implementation(model, "eager"), _maybe(_dense_indexers(model), dense):
        out = model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_attentions=True,
            use_cache=False,
        )
    return dict(enumerate(out.attentions))


@contextmanager
def _maybe(context, enabled: bool) -> Iterator[None]:
    if enabled:
        with context:
            yield
    else:
        yield
