"""Training and evaluating transformers' DSA models (`glm_moe_dsa`, `deepseek_v32`) for IndexCache.

The stages, over the adapter in `posttrain.attention.hf_dsa` (the loop, batching and
learning-rate schedule are `posttrain.attention.train`'s):

1. ``pretrain_lm``: dense LM pre-training from scratch (a tiny model has no dense checkpoint
   to start from). transformers' DSA attention always masks to its indexer's top-k, so
   "dense" means every indexer keeps every causal key (``hf_dsa._dense_indexers``); the
   indexers themselves get no gradient (their forward is no-grad, and top-k has none).
2. ``indexer_warmup``: DeepSeek-V3.2's dense warm-up (arXiv:2512.02556, section 2.1.1). Only
   the indexers learn, by KL(p || softmax(I)) with p the layer's dense main attention summed
   over heads and L1-normalised. The scores are recomputed with gradients
   (``hf_dsa.index_scores``) from inputs captured in a dense forward; under an IndexCache
   pattern each kept indexer learns against the averaged attention of the layers it serves
   (``indexcache.multi_layer_distillation_loss``): that is IndexCache's multi-layer
   distillation.
3. ``sparse_stage``: DeepSeek-V3.2's sparse training stage. The whole model trains through
   its own top-k attention: the main model by the LM loss, the indexers by the KL restricted
   to each query's selected keys (p: the main attention over the selected set, summed over
   heads and L1-normalised, detached). The indexer's input is detached, so each loss trains
   only its own parameters: transformers' indexer forward is no-grad already, and the
   scores with gradients are recomputed from detached copies of its inputs.
4. evaluation: held-out LM loss (the model's own sparse attention, dense, or under a pattern
   for the call only), the greedy search's memoised calibration loss, teacher-forced recall,
   and the cross-layer overlap of the indexers' top-k.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PreTrainedModel

from posttrain.attention.hf_dsa import (
    IndexerInputs,
    _dense_indexers,
    apply_pattern,
    attention_probs,
    attn_implementation,
    capture_topk,
    dsa_layers,
    index_scores,
    indexer_inputs,
    pattern_of,
    using_pattern,
)
from posttrain.attention.indexcache import (
    FULL,
    index_overlap_matrix,
    multi_layer_distillation_loss,
    served_layers,
)
from posttrain.attention.train import (
    DSATrainConfig,
    _check_blocks,
    _decay_groups,
    _optimizer,
    _training,
    per_layer_kl,
    recall_from_logits,
    stage_loop,
)
from posttrain.data.code_corpus import RecallItem
from posttrain.runs import Run


def indexer_parameters(model: PreTrainedModel) -> list[nn.Parameter]:
    """The parameters of the indexers the model has now (shared layers have none)."""
    return [p for attn in dsa_layers(model) if attn.indexer for p in attn.indexer.parameters()]


def _lm_loss(model: PreTrainedModel, ids: Tensor) -> Tensor:
    return model(input_ids=ids, labels=ids, use_cache=False).loss


# --- stages ---------------------------------------------------------------------------------


def pretrain_lm(
    model: PreTrainedModel,
    blocks: Tensor,
    cfg: DSATrainConfig,
    run: Run | None = None,
    eval_blocks: Tensor | None = None,
    step_offset: int = 0,
) -> list[dict[str, Any]]:
    """Dense LM pre-training of everything but the indexers for ``cfg.pretrain_steps`` steps
    (AdamW at ``cfg.lr``); logs ``pretrain/loss`` and, on evaluation steps, the dense
    ``pretrain/heldout_loss``. Leaves the model in eval mode with its flags as it found them."""
    blocks = _check_blocks(blocks, cfg)
    index = {id(p) for p in indexer_parameters(model)}
    params = [p for p in model.parameters() if id(p) not in index]
    with _training(model), _dense_indexers(model):
        for p in params:
            p.requires_grad_(True)

        def step_losses(ids: Tensor) -> tuple[Tensor, dict[str, float]]:
            return _lm_loss(model, ids), {}

        def held() -> float:
            assert eval_blocks is not None  # only asked on evaluation steps
            return heldout_loss(model, eval_blocks, dense=True, batch_size=cfg.eval_batch_size)

        optimizer = _optimizer(_decay_groups(params, cfg.lr, cfg.weight_decay))
        return stage_loop(
            model,
            "pretrain",
            cfg.pretrain_steps,
            optimizer,
            [params],
            blocks,
            cfg,
            step_losses,
            ("heldout_loss", held),
            run,
            eval_blocks,
            step_offset,
        )


def indexer_losses(
    model: PreTrainedModel, ids: Tensor, distill: bool = True
) -> tuple[Tensor, dict[int, Tensor]]:
    """(mean over kept indexers, {layer: loss}) of the dense warm-up KL under the model's
    current pattern; with ``distill`` each kept indexer's target is the averaged dense
    attention of every layer it serves, else its own layer's only.

    The dense attention, and so the hidden states the indexers see, do not depend on the
    pattern, so one dense forward gives every layer's target."""
    with _dense_indexers(model):
        inputs = indexer_inputs(model, ids)
    probs = attention_probs(model, ids, dense=True)
    serves = served_layers(pattern_of(model))
    per_layer = {}
    for layer, captured in inputs.items():
        scores = index_scores(model, layer, inputs=captured)
        targets = [probs[i] for i in serves[layer]] if distill else [probs[layer]]
        per_layer[layer] = multi_layer_distillation_loss(scores, targets)
    total = torch.stack(list(per_layer.values())).mean()
    return total, per_layer


def indexer_warmup(
    model: PreTrainedModel,
    blocks: Tensor,
    cfg: DSATrainConfig,
    run: Run | None = None,
    eval_blocks: Tensor | None = None,
    step_offset: int = 0,
) -> list[dict[str, Any]]:
    """The dense indexer warm-up for ``cfg.warmup_steps`` steps: only the indexers learn
    (AdamW at ``cfg.indexer_lr``), by ``indexer_losses(..., distill=cfg.distill)``.

    ``cfg.index_pattern``, when given, is applied first with ``hf_dsa.apply_pattern`` and
    stays (the model is then that IndexCache variant, ready to save): this is multi-layer
    distillation. Logs the mean KL and each kept layer's KL, and ``warmup/heldout_kl`` on
    evaluation steps."""
    blocks = _check_blocks(blocks, cfg)
    if cfg.index_pattern:
        apply_pattern(model, cfg.index_pattern)
    with _training(model):
        for p in model.parameters():
            p.requires_grad_(False)
        params = indexer_parameters(model)
        for p in params:
            p.requires_grad_(True)

        def heldout_kl() -> float:
            assert eval_blocks is not None  # only asked on evaluation steps
            return indexer_kl(model, eval_blocks, cfg.distill, cfg.eval_batch_size)

        def step_losses(batch: Tensor) -> tuple[Tensor, dict[str, float]]:
            total, per_layer = indexer_losses(model, batch, cfg.distill)
            return total, per_layer_kl(per_layer)

        optimizer = _optimizer([{"params": params, "lr": cfg.indexer_lr, "weight_decay": 0.0}])
        return stage_loop(
            model,
            "warmup",
            cfg.warmup_steps,
            optimizer,
            [params],
            blocks,
            cfg,
            step_losses,
            ("heldout_kl", heldout_kl),
            run,
            eval_blocks,
            step_offset,
        )


@dataclass(frozen=True)
class SparseLosses:
    """One sparse-stage forward: the LM loss (gradients into everything but the indexers),
    the indexer KL (mean over kept indexers; gradients into the indexers only) and each kept
    layer's KL, with the keys each kept indexer selected ([batch, seq, keys], causal ones
    only) that its KL is restricted to."""

    lm: Tensor
    indexer: Tensor
    per_layer: dict[int, Tensor]
    selected: dict[int, Tensor]


@contextmanager
def _captured_indexers(
    model: PreTrainedModel,
) -> Iterator[tuple[dict[int, IndexerInputs], dict[int, Tensor]]]:
    """({layer: its indexer's inputs}, {layer: its top-k}) of the kept indexers while the
    block runs; the inputs are detached, so the KL cannot reach the main model through them."""
    found: dict[int, IndexerInputs] = {}
    chosen: dict[int, Tensor] = {}
    names = ("hidden_states", "q_resid", "position_embeddings", "attention_mask")

    def inputs(layer: int):
        def hook(_module, args, kwargs):
            values = dict(zip(names, args, strict=False)) | {
                k: v for k, v in kwargs.items() if k in names
            }
            cos, sin = values["position_embeddings"]
            found[layer] = IndexerInputs(
                hidden_states=values["hidden_states"].detach(),
                q_resid=values["q_resid"].detach(),
                position_embeddings=(cos.detach(), sin.detach()),
                attention_mask=values["attention_mask"].detach(),
            )

        return hook

    def topk(layer: int):
        return lambda _module, _args, out: chosen.__setitem__(layer, out)

    handles = []
    for layer, attn in enumerate(dsa_layers(model)):
        if attn.indexer is not None:
            pre = attn.indexer.register_forward_pre_hook(inputs(layer), with_kwargs=True)
            handles += [pre, attn.indexer.register_forward_hook(topk(layer))]
    try:
        yield found, chosen
    finally:
        for handle in handles:
            handle.remove()


def _selected_keys(topk: Tensor, mask: Tensor) -> Tensor:
    """[batch, seq, keys] True at the selected keys the query may see: the indexer returns k
    slots even for a query with fewer causal keys, and those point at masked keys."""
    allowed = mask if mask.dtype == torch.bool else mask == 0
    chosen = torch.zeros(allowed.shape, dtype=torch.bool, device=topk.device)
    return chosen.scatter_(-1, topk.long(), True) & allowed


def sparse_losses(model: PreTrainedModel, ids: Tensor, distill: bool = True) -> SparseLosses:
    """The sparse stage's losses on ``ids`` from one forward of the model's own DSA attention
    (under its current pattern), with gradients.

    The forward runs transformers' eager attention so it returns the main attention's
    probabilities, which are zero outside each query's top-k. Each kept indexer's KL is
    ``multi_layer_distillation_loss`` restricted to its selected keys: against the attention
    of every layer it serves with ``distill`` (they attend over its selection), else its own
    layer's only."""
    with attn_implementation(model, "eager"), _captured_indexers(model) as (found, chosen):
        out = model(input_ids=ids, labels=ids, output_attentions=True, use_cache=False)
    per_layer, selected = {}, {}
    for layer, served in served_layers(pattern_of(model)).items():
        captured = found[layer]
        selected[layer] = _selected_keys(chosen[layer], captured.attention_mask)
        scores = index_scores(model, layer, inputs=captured)
        targets = [out.attentions[i] for i in (served if distill else [layer])]
        per_layer[layer] = multi_layer_distillation_loss(scores, targets, selected[layer])
    indexer = torch.stack(list(per_layer.values())).mean()
    return SparseLosses(lm=out.loss, indexer=indexer, per_layer=per_layer, selected=selected)


def sparse_stage(
    model: PreTrainedModel,
    blocks: Tensor,
    cfg: DSATrainConfig,
    run: Run | None = None,
    eval_blocks: Tensor | None = None,
    step_offset: int = 0,
) -> list[dict[str, Any]]:
    """DSA's sparse training stage for ``cfg.sparse_steps`` steps: minimises the LM loss plus
    ``cfg.indexer_loss_weight`` times the indexer KL on the selected keys (``sparse_losses``),
    the main model at ``cfg.sparse_lr`` and the indexers at ``cfg.indexer_lr``, each set's gradient
    clipped on its own. ``cfg.index_pattern``, when given, is applied first and stays (as in
    ``indexer_warmup``). Logs ``sparse/loss``, ``sparse/lm_loss``, ``sparse/indexer_kl``,
    each kept layer's KL and, on evaluation steps, the sparse ``sparse/heldout_loss``."""
    blocks = _check_blocks(blocks, cfg)
    if cfg.index_pattern:
        apply_pattern(model, cfg.index_pattern)
    with _training(model):
        for p in model.parameters():
            p.requires_grad_(True)
        index = indexer_parameters(model)
        indexer_ids = {id(p) for p in index}
        main = [p for p in model.parameters() if id(p) not in indexer_ids]
        groups = _decay_groups(main, cfg.sparse_lr, cfg.weight_decay)
        groups.append({"params": index, "lr": cfg.indexer_lr, "weight_decay": 0.0})

        def step_losses(batch: Tensor) -> tuple[Tensor, dict[str, float]]:
            losses = sparse_losses(model, batch, cfg.distill)
            extra = {
                "lm_loss": float(losses.lm.detach()),
                "indexer_kl": float(losses.indexer.detach()),
            }
            total = losses.lm + cfg.indexer_loss_weight * losses.indexer
            return total, extra | per_layer_kl(losses.per_layer)

        def held() -> float:
            assert eval_blocks is not None  # only asked on evaluation steps
            return heldout_loss(model, eval_blocks, batch_size=cfg.eval_batch_size)

        return stage_loop(
            model,
            "sparse",
            cfg.sparse_steps,
            _optimizer(groups),
            [main, index],
            blocks,
            cfg,
            step_losses,
            ("heldout_loss", held),
            run,
            eval_blocks,
            step_offset,
        )


def train_dsa(
    model: PreTrainedModel,
    blocks: Tensor,
    cfg: DSATrainConfig,
    run: Run | None = None,
    eval_blocks: Tensor | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Pre-training, the dense warm-up, then the sparse stage (a stage with 0 steps is
    skipped), steps numbered on across them in ``run``'s metrics. Returns each stage's
    history under its name."""
    out: dict[str, list[dict[str, Any]]] = {}
    offset = 0
    stages = (
        ("pretrain", cfg.pretrain_steps, pretrain_lm),
        ("warmup", cfg.warmup_steps, indexer_warmup),
        ("sparse", cfg.sparse_steps, sparse_stage),
    )
    for name, steps, stage in stages:
        if steps > 0:
            out[name] = stage(model, blocks, cfg, run, eval_blocks, step_offset=offset)
            offset += steps
    return out


# --- evaluation -----------------------------------------------------------------------------


def _variant(model: PreTrainedModel, pattern: str | None, dense: bool):
    """The context a measurement runs in: dense attention, or sparse under ``pattern`` (the
    model's own when None), for the block only."""
    if dense:
        return _dense_indexers(model)
    if pattern is None or pattern == pattern_of(model):
        return nullcontext()
    return using_pattern(model, pattern)


@torch.no_grad()
def heldout_loss(
    model: PreTrainedModel,
    blocks: Tensor,
    pattern: str | None = None,
    dense: bool = False,
    batch_size: int = 8,
) -> float:
    """Mean next-token cross-entropy over every predicted token of ``blocks``: with the
    model's DSA attention under ``pattern`` (None: its own; the model is unchanged after),
    or with dense attention."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with _variant(model, pattern, dense):
            for start in range(0, len(blocks), batch_size):
                ids = blocks[start : start + batch_size].to(model.device)
                logits = model(input_ids=ids, use_cache=False).logits[:, :-1].float()
                flat = logits.reshape(-1, logits.shape[-1])
                total += float(F.cross_entropy(flat, ids[:, 1:].reshape(-1), reduction="sum"))
                count += ids[:, 1:].numel()
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("no tokens to evaluate")
    return total / count


@torch.no_grad()
def indexer_kl(
    model: PreTrainedModel, blocks: Tensor, distill: bool = True, batch_size: int = 8
) -> float:
    """``indexer_losses``' mean KL over batches of ``blocks``, weighted by batch size."""
    was_training = model.training
    model.eval()
    values, weights = [], []
    try:
        for start in range(0, len(blocks), batch_size):
            ids = blocks[start : start + batch_size].to(model.device)
            values.append(float(indexer_losses(model, ids, distill)[0]))
            weights.append(len(ids))
    finally:
        model.train(was_training)
    return sum(v * w for v, w in zip(values, weights, strict=True)) / max(1, sum(weights))


def calibration_loss_fn(
    model: PreTrainedModel, calib_blocks: Tensor, batch_size: int = 8
) -> Callable[[str], float]:
    """``pattern -> LM loss`` on fixed calibration blocks under that pattern (applied with
    ``hf_dsa.using_pattern`` for the call only), memoised: ``greedy_layer_search``'s loss."""
    if len(calib_blocks) == 0:
        raise ValueError("no calibration blocks")
    fixed = calib_blocks.detach().clone()
    memo: dict[str, float] = {}

    def loss_fn(pattern: str) -> float:
        pattern = pattern.upper()
        if pattern not in memo:
            memo[pattern] = heldout_loss(model, fixed, pattern, batch_size=batch_size)
        return memo[pattern]

    return loss_fn


@torch.no_grad()
def recall_accuracy(
    model: PreTrainedModel,
    tokenizer: Any,
    recall_items: Sequence[RecallItem],
    pattern: str | None = None,
    dense: bool = False,
) -> dict[str, float]:
    """Teacher-forced recall (`train.recall_from_logits`) with ``heldout_loss``'s choice of
    attention."""
    was_training = model.training
    model.eval()
    try:
        with _variant(model, pattern, dense):
            return recall_from_logits(
                lambda ids: model(input_ids=ids, use_cache=False).logits,
                tokenizer,
                recall_items,
                model.device,
            )
    finally:
        model.train(was_training)


def overlap_matrix(model: PreTrainedModel, ids: Tensor) -> np.ndarray:
    """Jaccard overlap of every pair of layers' indexer top-k on ``ids``, every layer running
    its own indexer. Queries that see at most k keys select all of them in every layer, so
    they are left out (they would count as perfect overlap)."""
    if FULL * len(dsa_layers(model)) != pattern_of(model):
        raise ValueError(f"overlap needs every layer's own indexer; pattern {pattern_of(model)}")
    k = model.config.index_topk
    if ids.shape[1] <= k:
        raise ValueError(f"sequences of {ids.shape[1]} tokens: need more than top-{k}")
    chosen = capture_topk(model, ids)
    return index_overlap_matrix([chosen[i][:, k:].long() for i in sorted(chosen)])


__all__ = [
    "SparseLosses",
    "calibration_loss_fn",
    "heldout_loss",
    "indexer_kl",
    "indexer_losses",
    "indexer_parameters",
    "indexer_warmup",
    "overlap_matrix",
    "pretrain_lm",
    "recall_accuracy",
    "sparse_losses",
    "sparse_stage",
    "train_dsa",
]
