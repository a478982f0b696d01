"""Training a DSA model from scratch on a CPU: LM pre-training, indexer warm-up, sparse stage.

Why: DeepSeek Sparse Attention (DSA, DeepSeek-V3.2, arXiv:2512.02556, section 2.1.1) does not
train its lightning indexer with the language-modelling loss (top-k selection has no
gradient). It continues training a dense model in two stages:

1. dense warm-up: the main model is frozen and only the indexers learn, by
   KL(p_t || softmax(I_t)), p_t the main attention of the same layer summed over heads and
   L1-normalised, over all causal keys (attention stays dense);
2. sparse training: attention runs over the indexer's top-k keys, the main model learns from
   the LM loss and the indexer from the KL restricted to the selected set; the indexer's input
   is detached so the two losses train disjoint parameters (the model does the detaching).

Here a small model is first pre-trained densely from scratch (``pretrain_lm``), since we
have no dense checkpoint to start from. IndexCache (THUDM, 2026) adds a training-aware
variant: under an F/S pattern each kept (F) indexer is trained against the averaged attention
of all layers it serves (multi-layer distillation, ``indexer_losses(..., distill=True)``);
and a training-free one, ``greedy_layer_search``, for which ``calibration_loss_fn`` supplies
the LM loss of a pattern on fixed calibration batches.

Determinism: batches are drawn from a ``torch.Generator`` seeded by ``DSATrainConfig.seed``
(a different stream per stage), so a run is reproducible on a given machine and thread count.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import Tensor, nn

from posttrain.attention.indexcache import parse_pattern
from posttrain.attention.model import (
    DSAForCausalLM,
    IndexerLosses,
    freeze_non_indexer,
    indexer_losses,
    indexer_parameters,
)
from posttrain.data.code_corpus import RecallItem
from posttrain.runs import Run

_STAGE_STREAM = {"pretrain": 0, "warmup": 1, "sparse": 2}


@dataclass
class DSATrainConfig:
    """Settings of the three stages.

    ``lr`` is the main model's learning rate (pre-training and sparse stage); ``indexer_lr``
    the indexers' (warm-up and sparse stage; DeepSeek-V3.2 warms up at 1e-3). Each stage
    warms its learning rate up linearly over ``lr_warmup_fraction`` of its steps, then decays
    it with a cosine to ``min_lr_ratio`` of the peak. ``index_pattern`` is the IndexCache F/S
    pattern the warm-up and sparse stages train under (None: the model's own); ``distill``
    chooses IndexCache's multi-layer distillation for the kept indexers (else each F indexer
    learns from its own layer only). ``eval_every`` > 0 evaluates held-out loss every that
    many steps when the stage is given held-out blocks.
    """

    pretrain_steps: int = 300
    warmup_steps: int = 100
    sparse_steps: int = 200
    lr: float = 3e-3
    indexer_lr: float = 1e-3
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    lr_warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.1
    batch_size: int = 8
    block_size: int = 256
    indexer_loss_weight: float = 1.0
    seed: int = 0
    eval_every: int = 0
    eval_batch_size: int = 8
    index_pattern: str | None = None
    distill: bool = True
    progress: bool | None = None


# --- helpers --------------------------------------------------------------------------------


@contextmanager
def _training(model: nn.Module) -> Iterator[None]:
    """A stage: the model in train mode, and afterwards in eval mode with every parameter's
    `requires_grad` as it was (stages freeze parts of it)."""
    saved = [p.requires_grad for p in model.parameters()]
    model.train()
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), saved, strict=True):
            p.requires_grad_(flag)
        model.eval()


def _check_blocks(blocks: Tensor, cfg: DSATrainConfig) -> Tensor:
    if blocks.dim() != 2 or blocks.dtype != torch.long:
        raise ValueError(f"blocks must be a (N, block_size) LongTensor, got {tuple(blocks.shape)}")
    if blocks.shape[1] != cfg.block_size:
        raise ValueError(
            f"blocks have length {blocks.shape[1]} but cfg.block_size is {cfg.block_size}"
        )
    if blocks.shape[0] == 0:
        raise ValueError("no training blocks")
    return blocks


def _batch_indices(n: int, batch_size: int, steps: int, seed: int) -> Iterator[Tensor]:
    """``steps`` batches of row indices: epochs of seeded permutations, cut into batches."""
    g = torch.Generator().manual_seed(seed)
    size = min(batch_size, n)
    perm = torch.randperm(n, generator=g)
    pos = 0
    for _ in range(steps):
        if pos + size > n:
            perm = torch.randperm(n, generator=g)
            pos = 0
        yield perm[pos : pos + size]
        pos += size


def _lr_factor(step: int, steps: int, cfg: DSATrainConfig) -> float:
    """Linear warm-up then cosine decay to ``min_lr_ratio``; ``step`` counts from 0."""
    warm = max(1, int(cfg.lr_warmup_fraction * steps))
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, steps - warm)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def _use_progress(cfg: DSATrainConfig) -> bool:
    if cfg.progress is not None:
        return cfg.progress
    return "pytest" not in sys.modules and "PYTEST_CURRENT_TEST" not in os.environ


class _Bar:
    """A rich progress bar when wanted, otherwise nothing."""

    def __init__(self, name: str, total: int, enabled: bool) -> None:
        self.progress: Progress | None = None
        if enabled:
            self.progress = Progress(
                TextColumn(f"[bold]{name}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self.task = self.progress.add_task(name, total=total, status="")

    def __enter__(self) -> _Bar:
        if self.progress is not None:
            self.progress.start()
        return self

    def update(self, step: int, status: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=step, status=status)

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()


def _non_indexer_parameters(model: DSAForCausalLM) -> list[nn.Parameter]:
    indexer = {id(p) for p in indexer_parameters(model)}
    return [p for p in model.parameters() if id(p) not in indexer]


def _decay_groups(params: Sequence[nn.Parameter], lr: float, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on matrices, none on norms/biases (1-D parameters)."""
    matrices = [p for p in params if p.dim() >= 2]
    vectors = [p for p in params if p.dim() < 2]
    groups = []
    if matrices:
        groups.append({"params": matrices, "lr": lr, "weight_decay": weight_decay})
    if vectors:
        groups.append({"params": vectors, "lr": lr, "weight_decay": 0.0})
    return groups


def _optimizer(groups: list[dict]) -> torch.optim.AdamW:
    for group in groups:
        group["peak_lr"] = group["lr"]
    return torch.optim.AdamW(groups, betas=(0.9, 0.95), eps=1e-8)


def _set_lr(optimizer: torch.optim.Optimizer, factor: float) -> float:
    for group in optimizer.param_groups:
        group["lr"] = group["peak_lr"] * factor
    return float(optimizer.param_groups[0]["lr"])


def _log(run: Run | None, history: list[dict[str, Any]], record: dict[str, Any]) -> None:
    history.append(record)
    if run is not None:
        run.log(record["step"], **{k: v for k, v in record.items() if k != "step"})


def _pattern(model: DSAForCausalLM, pattern: str | None) -> str:
    return parse_pattern(pattern or model.config.index_pattern, model.config.num_hidden_layers)


# --- stages ---------------------------------------------------------------------------------


def pretrain_lm(
    model: DSAForCausalLM,
    blocks: Tensor,
    cfg: DSATrainConfig,
    run: Run | None = None,
    eval_blocks: Tensor | None = None,
    step_offset: int = 0,
) -> list[dict[str, Any]]:
    """Plain LM training from scratch with dense attention (``sparse=False``), AdamW.

    The indexers do not run (dense attention, no scores asked for), so only the main model
    learns. Returns the history: one record per step (``stage``, ``step``, ``loss``, ``lr``),
    plus ``heldout_loss`` on evaluation steps. Metrics are prefixed ``pretrain/`` in ``run``;
    ``step_offset`` shifts the logged step numbers (``train_dsa`` numbers steps across stages).
    Every stage leaves the model in eval mode with its ``requires_grad`` flags as it found them.
    """
    blocks = _check_blocks(blocks, cfg)
    params = _non_indexer_parameters(model)
    with _training(model):
        for p in model.parameters():
            p.requires_grad_(True)

        def step_losses(ids: Tensor) -> tuple[Tensor, dict[str, float]]:
            return model(ids, labels=ids, sparse=False, use_cache=False).loss, {}

        def held() -> float:
            assert eval_blocks is not None  # only asked on evaluation steps
            return heldout_loss(model, eval_blocks, sparse=False, batch_size=cfg.eval_batch_size)

        optimizer = _optimizer(_decay_groups(params, cfg.lr, cfg.weight_decay))
        return stage_loop(
            model,
            "pretrain",
            cfg.pretrain_steps,
            optimizer,
            params,
            blocks,
            cfg,
            step_losses,
            ("heldout_loss", held),
            run,
            eval_blocks,
            step_offset,
        )


def indexer_warmup(
    model: DSAForCausalLM,
    blocks: Tensor,
    cfg: DSATrainConfig,
    run: Run | None = None,
    eval_blocks: Tensor | None = None,
    step_offset: int = 0,
) -> list[dict[str, Any]]:
    """DSA dense warm-up: only the indexers learn, by KL to the dense main attention.

    Everything but the indexers is frozen (``freeze_non_indexer``) for the stage and the
    previous ``requires_grad`` flags are restored afterwards. Each step runs a dense forward
    (``sparse=False``) under ``cfg.index_pattern`` with indexer scores and attention
    probabilities and minimises ``indexer_losses(out, stage="dense")`` (multi-layer
    distillation for the F layers of an IndexCache pattern when ``cfg.distill``). Logs the
    mean KL and each F layer's KL per step, and ``heldout_kl`` on evaluation steps;
    ``run``, ``eval_blocks`` and ``step_offset`` as in ``pretrain_lm``.
    """
    blocks = _check_blocks(blocks, cfg)
    pattern = _pattern(model, cfg.index_pattern)
    with _training(model):
        params = freeze_non_indexer(model)

        def step_losses(batch: Tensor) -> tuple[Tensor, dict[str, float]]:
            losses = _indexer_step_losses(model, batch, pattern, "dense", cfg.distill)
            return losses.total, per_layer_kl(losses.per_layer)

        def heldout_kl() -> float:
            assert eval_blocks is not None  # only asked on evaluation steps
            return indexer_kl(
                model, eval_blocks, pattern, "dense", cfg.distill, cfg.eval_batch_size
            )

        optimizer = _optimizer([{"params": params, "lr": cfg.indexer_lr, "weight_decay": 0.0}])
        return stage_loop(
            model,
            "warmup",
            cfg.warmup_steps,
            optimizer,
            params,
            blocks,
            cfg,
            step_losses,
            ("heldout_kl", heldout_kl),
            run,
            eval_blocks,
            step_offset,
        )


def stage_loop(
    model: nn.Module,
    stage: str,
    steps: int,
    optimizer: torch.optim.Optimizer,
    params: list[nn.Parameter],
    blocks: Tensor,
    cfg: DSATrainConfig,
    step_losses: Callable[[Tensor], tuple[Tensor, dict[str, float]]],
    heldout: tuple[str, Callable[[], float]],
    run: Run | None = None,
    eval_blocks: Tensor | None = None,
    step_offset: int = 0,
) -> list[dict[str, Any]]:
    """The steps of a training stage, for any DSA model (posttrain's own or transformers'):
    batches seeded per stage, the LR schedule, ``step_losses(batch)`` -> (the loss to
    minimise, extra metrics), gradient clipping on ``params``, and on evaluation steps
    ``heldout = (name, fn)``. Logs ``<stage>/<metric>`` records; the caller freezes and
    restores parameters (``_training``)."""
    history: list[dict[str, Any]] = []
    batches = _batch_indices(len(blocks), cfg.batch_size, steps, _seed(cfg, stage))
    loss_name = "kl" if stage == "warmup" else "loss"
    label = {"pretrain": "pretrain", "warmup": "indexer warm-up"}.get(stage, stage)
    with _Bar(label, steps, _use_progress(cfg)) as bar:
        for step, idx in enumerate(batches, start=1):
            lr = _set_lr(optimizer, _lr_factor(step - 1, steps, cfg))
            loss, extra = step_losses(blocks[idx].to(model.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            record: dict[str, Any] = {
                "step": step_offset + step,
                "stage": stage,
                f"{stage}/{loss_name}": float(loss.detach()),
                f"{stage}/lr": lr,
                **{f"{stage}/{k}": v for k, v in extra.items()},
            }
            if _eval_now(cfg, step, steps, eval_blocks):
                name, evaluate = heldout
                record[f"{stage}/{name}"] = evaluate()
                model.train()
            _log(run, history, record)
            bar.update(step, f"{loss_name} {record[f'{stage}/{loss_name}']:.4g}")
    return history


def per_layer_kl(per_layer: dict[int, Tensor]) -> dict[str, float]:
    """Each kept layer's warm-up KL as `kl_layer<i>` metrics."""
    return {f"kl_layer{i}": float(v.detach()) for i, v in per_layer.items()}


def sparse_stage(
    model: DSAForCausalLM,
    blocks: Tensor,
    cfg: DSATrainConfig,
    run: Run | None = None,
    eval_blocks: Tensor | None = None,
    step_offset: int = 0,
) -> list[dict[str, Any]]:
    """DSA sparse training: top-k attention, loss = LM loss + weight * sparse indexer KL.

    Runs ``sparse=True`` under ``cfg.index_pattern``; the indexer loss is
    ``indexer_losses(out, stage="sparse", pattern, distill=cfg.distill)``, i.e. the KL
    restricted to each F layer's selected keys, against the averaged attention of all layers
    that F layer serves when distilling. The model detaches the indexer input and the KL
    target is detached, so the LM loss trains the main model and the KL trains the indexers
    (with ``cfg.lr`` and ``cfg.indexer_lr``). Logs ``loss``, ``lm_loss``, ``indexer_kl`` and,
    on evaluation steps, the sparse ``heldout_loss``; arguments as in ``pretrain_lm``.
    """
    blocks = _check_blocks(blocks, cfg)
    pattern = _pattern(model, cfg.index_pattern)
    with _training(model):
        for p in model.parameters():
            p.requires_grad_(True)
        main = _non_indexer_parameters(model)
        index = indexer_parameters(model, active_only=False)
        groups = _decay_groups(main, cfg.lr, cfg.weight_decay)
        groups.append({"params": index, "lr": cfg.indexer_lr, "weight_decay": 0.0})
        optimizer = _optimizer(groups)
        history: list[dict[str, Any]] = []
        batches = _batch_indices(
            len(blocks), cfg.batch_size, cfg.sparse_steps, _seed(cfg, "sparse")
        )
        with _Bar("sparse stage", cfg.sparse_steps, _use_progress(cfg)) as bar:
            for step, idx in enumerate(batches, start=1):
                lr = _set_lr(optimizer, _lr_factor(step - 1, cfg.sparse_steps, cfg))
                ids = blocks[idx].to(model.device)
                out = model(
                    ids,
                    labels=ids,
                    sparse=True,
                    index_pattern=pattern,
                    return_indexer_scores=True,
                    output_attentions=True,
                    use_cache=False,
                )
                kl = indexer_losses(out, stage="sparse", pattern=pattern, distill=cfg.distill)
                loss = out.loss + cfg.indexer_loss_weight * kl.total
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(main, cfg.grad_clip)
                torch.nn.utils.clip_grad_norm_(index, cfg.grad_clip)
                optimizer.step()
                record: dict[str, Any] = {
                    "step": step_offset + step,
                    "stage": "sparse",
                    "sparse/loss": float(loss.detach()),
                    "sparse/lm_loss": float(out.loss.detach()),
                    "sparse/indexer_kl": float(kl.total.detach()),
                    "sparse/lr": lr,
                }
                if _eval_now(cfg, step, cfg.sparse_steps, eval_blocks):
                    record["sparse/heldout_loss"] = heldout_loss(
                        model, eval_blocks, True, pattern, cfg.eval_batch_size
                    )
                    model.train()
                _log(run, history, record)
                bar.update(step, f"lm {record['sparse/lm_loss']:.3f} kl {kl.total.item():.4f}")
    return history


def _seed(cfg: DSATrainConfig, stage: str) -> int:
    return cfg.seed * 1000 + _STAGE_STREAM[stage]


def _eval_now(cfg: DSATrainConfig, step: int, steps: int, eval_blocks: Tensor | None) -> bool:
    if eval_blocks is None or cfg.eval_every <= 0:
        return False
    return step % cfg.eval_every == 0 or step == steps


def _indexer_step_losses(
    model: DSAForCausalLM, ids: Tensor, pattern: str, stage: str, distill: bool
) -> IndexerLosses:
    out = model(
        ids,
        sparse=stage == "sparse",
        index_pattern=pattern,
        return_indexer_scores=True,
        output_attentions=True,
        use_cache=False,
    )
    return indexer_losses(out, stage=stage, pattern=pattern, distill=distill)


# --- evaluation -----------------------------------------------------------------------------


@torch.no_grad()
def heldout_loss(
    model: DSAForCausalLM,
    blocks: Tensor,
    sparse: bool,
    index_pattern: str | None = None,
    batch_size: int = 8,
) -> float:
    """Mean next-token cross-entropy over all predicted tokens of ``blocks`` (no grad).

    ``sparse`` chooses DSA top-k attention or the dense baseline; ``index_pattern`` an
    IndexCache pattern for this evaluation only (the model's config is not changed).
    """
    was_training = model.training
    model.eval()
    total = 0.0
    count = 0
    try:
        for start in range(0, len(blocks), batch_size):
            ids = blocks[start : start + batch_size].to(model.device)
            out = model(ids, sparse=sparse, index_pattern=index_pattern, use_cache=False)
            logits = out.logits[:, :-1].float()
            ce = F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum"
            )
            total += float(ce)
            count += ids[:, 1:].numel()
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("no tokens to evaluate")
    return total / count


@torch.no_grad()
def indexer_kl(
    model: DSAForCausalLM,
    blocks: Tensor,
    index_pattern: str | None = None,
    stage: str = "dense",
    distill: bool = True,
    batch_size: int = 8,
) -> float:
    """The indexer loss (``indexer_losses(...).total``) averaged over batches of ``blocks``."""
    was_training = model.training
    model.eval()
    pattern = _pattern(model, index_pattern)
    values = []
    weights = []
    try:
        for start in range(0, len(blocks), batch_size):
            ids = blocks[start : start + batch_size].to(model.device)
            values.append(float(_indexer_step_losses(model, ids, pattern, stage, distill).total))
            weights.append(len(ids))
    finally:
        model.train(was_training)
    return sum(v * w for v, w in zip(values, weights, strict=True)) / max(1, sum(weights))


@torch.no_grad()
def recall_accuracy(
    model: DSAForCausalLM,
    tokenizer: Any,
    recall_items: Sequence[RecallItem],
    sparse: bool = True,
    index_pattern: str | None = None,
) -> dict[str, float]:
    """Teacher-forced recall on the answer spans of ``recall_items``.

    Every token whose characters overlap an answer span is an answer token (found with the
    fast tokenizer's offset mapping). Returns ``recall_loss`` (mean CE of answer tokens),
    ``recall_token_accuracy`` (argmax hits among them) and ``recall_exact`` (fraction of
    answers whose tokens are all predicted right). Each item runs as one unpadded sequence.
    """

    def logits_of(ids: Tensor) -> Tensor:
        return model(ids, sparse=sparse, index_pattern=index_pattern, use_cache=False).logits

    was_training = model.training
    model.eval()
    try:
        return recall_from_logits(logits_of, tokenizer, recall_items, model.device)
    finally:
        model.train(was_training)


@torch.no_grad()
def recall_from_logits(
    logits_of: Callable[[Tensor], Tensor],
    tokenizer: Any,
    recall_items: Sequence[RecallItem],
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """``recall_accuracy``'s scoring for any causal LM: ``logits_of(ids [1, L])`` gives its
    logits [1, L, vocab] (shared with the transformers DSA models' tools)."""
    ce_sum = 0.0
    hits = 0
    n_tokens = 0
    exact = 0
    n_answers = 0
    for item in recall_items:
        enc = tokenizer(
            item.text, add_special_tokens=False, return_offsets_mapping=True, verbose=False
        )
        ids = torch.tensor([enc["input_ids"]], dtype=torch.long, device=device)
        offsets = enc["offset_mapping"]
        logits = logits_of(ids)[0].float()
        for start, end in item.answer_spans:
            positions = [t for t, (a, b) in enumerate(offsets) if t > 0 and a < end and b > start]
            if not positions:
                continue
            pos = torch.tensor(positions)
            pred_logits = logits[pos - 1]
            target = ids[0, pos]
            ce_sum += float(F.cross_entropy(pred_logits, target, reduction="sum"))
            right = pred_logits.argmax(-1) == target
            hits += int(right.sum())
            n_tokens += len(positions)
            exact += int(bool(right.all()))
            n_answers += 1
    if n_tokens == 0:
        raise ValueError("no answer tokens found in the recall items")
    return {
        "recall_loss": ce_sum / n_tokens,
        "recall_token_accuracy": hits / n_tokens,
        "recall_exact": exact / n_answers,
    }


def calibration_loss_fn(
    model: DSAForCausalLM, calib_blocks: Tensor, batch_size: int = 8
) -> Callable[[str], float]:
    """``pattern -> LM loss`` on fixed calibration blocks with sparse attention under it.

    For ``indexcache.greedy_layer_search`` (training-free IndexCache): the blocks are copied
    once, every call evaluates the same batches of them with ``sparse=True`` and the given
    pattern (the model's config is left alone), and results are memoised per pattern.
    """
    if len(calib_blocks) == 0:
        raise ValueError("no calibration blocks")
    fixed = calib_blocks.detach().clone()
    memo: dict[str, float] = {}

    def loss_fn(pattern: str) -> float:
        pattern = parse_pattern(pattern, model.config.num_hidden_layers)
        if pattern not in memo:
            memo[pattern] = heldout_loss(model, fixed, True, pattern, batch_size)
        return memo[pattern]

    return loss_fn


def train_dsa(
    model: DSAForCausalLM,
    blocks: Tensor,
    cfg: DSATrainConfig,
    run: Run | None = None,
    eval_blocks: Tensor | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The three stages in order (pre-training, dense warm-up, sparse); a stage with 0 steps
    is skipped. Steps are numbered on across the stages in ``run``'s metrics. Returns each
    stage's history under its name."""
    out: dict[str, list[dict[str, Any]]] = {}
    offset = 0
    stages = (
        ("pretrain", cfg.pretrain_steps, pretrain_lm),
        ("warmup", cfg.warmup_steps, indexer_warmup),
        ("sparse", cfg.sparse_steps, sparse_stage),
    )
    for name, steps, fn in stages:
        if steps > 0:
            out[name] = fn(model, blocks, cfg, run, eval_blocks, step_offset=offset)
            offset += steps
    return out


__all__ = [
    "DSATrainConfig",
    "calibration_loss_fn",
    "heldout_loss",
    "indexer_kl",
    "indexer_warmup",
    "pretrain_lm",
    "recall_accuracy",
    "recall_from_logits",
    "sparse_stage",
    "train_dsa",
]
