"""The training loop every DSA stage shares: settings, batches, learning-rate schedule, logging.

The stages themselves (dense pre-training, DeepSeek-V3.2's dense indexer warm-up and sparse
stage, IndexCache's multi-layer distillation) are in `posttrain.attention.hf_train`, over
transformers' DSA models; this module holds what does not depend on the model: the settings
(``DSATrainConfig``), seeded batches, linear warm-up then cosine decay, AdamW groups,
gradient clipping, progress bars, held-out evaluation steps and metric records
(``stage_loop``), and teacher-forced recall scoring from any causal LM's logits
(``recall_from_logits``).

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
    pattern the warm-up and sparse stages train under (None: the model's own);
    ``indexer_loss_weight`` scales the sparse stage's indexer KL against its LM loss (the
    two train disjoint parameters, so it acts as a learning-rate factor); ``distill``
    chooses IndexCache's multi-layer distillation for the kept indexers (else each F indexer
    learns from its own layer only). ``eval_every`` > 0 evaluates held-out loss every that
    many steps when the stage is given held-out blocks.
    """

    pretrain_steps: int = 300
    warmup_steps: int = 100
    sparse_steps: int = 200
    lr: float = 3e-3
    indexer_lr: float = 1e-3
    sparse_lr: float = 3e-4
    """The main model's peak learning rate in the sparse stage: it continues a trained model,
    as DeepSeek-V3.2's sparse stage does at a far lower rate than pre-training
    (arXiv:2512.02556, 2.1.1). At the pre-training peak (3e-3) 30 sparse steps raised the
    micro GLM-5's dense held-out loss from 4.160 to 4.325."""
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


# --- the loop -------------------------------------------------------------------------------


def stage_loop(
    model: nn.Module,
    stage: str,
    steps: int,
    optimizer: torch.optim.Optimizer,
    clip_groups: Sequence[Sequence[nn.Parameter]],
    blocks: Tensor,
    cfg: DSATrainConfig,
    step_losses: Callable[[Tensor], tuple[Tensor, dict[str, float]]],
    heldout: tuple[str, Callable[[], float]],
    run: Run | None = None,
    eval_blocks: Tensor | None = None,
    step_offset: int = 0,
) -> list[dict[str, Any]]:
    """The steps of a training stage, for any model: batches seeded per stage, the LR
    schedule, ``step_losses(batch)`` -> (the loss to minimise, extra metrics), each of
    ``clip_groups`` clipped to ``cfg.grad_clip`` on its own (the sparse stage's two losses
    train disjoint parameter sets, so neither's gradient norm scales the other's), and on
    evaluation steps ``heldout = (name, fn)``. Logs ``<stage>/<metric>`` records, steps
    numbered from ``step_offset + 1``; the caller freezes and restores parameters
    (``_training``)."""
    history: list[dict[str, Any]] = []
    batches = _batch_indices(len(blocks), cfg.batch_size, steps, _seed(cfg, stage))
    loss_name = "kl" if stage == "warmup" else "loss"
    label = {"warmup": "indexer warm-up", "sparse": "sparse stage"}.get(stage, stage)
    with _Bar(label, steps, _use_progress(cfg)) as bar:
        for step, idx in enumerate(batches, start=1):
            lr = _set_lr(optimizer, _lr_factor(step - 1, steps, cfg))
            loss, extra = step_losses(blocks[idx].to(model.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for group in clip_groups:
                torch.nn.utils.clip_grad_norm_(group, cfg.grad_clip)
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
    """Each kept layer's indexer KL as `kl_layer<i>` metrics."""
    return {f"kl_layer{i}": float(v.detach()) for i, v in per_layer.items()}


def _seed(cfg: DSATrainConfig, stage: str) -> int:
    return cfg.seed * 1000 + _STAGE_STREAM[stage]


def _eval_now(cfg: DSATrainConfig, step: int, steps: int, eval_blocks: Tensor | None) -> bool:
    if eval_blocks is None or cfg.eval_every <= 0:
        return False
    return step % cfg.eval_every == 0 or step == steps


# --- evaluation -----------------------------------------------------------------------------


@torch.no_grad()
def recall_from_logits(
    logits_of: Callable[[Tensor], Tensor],
    tokenizer: Any,
    recall_items: Sequence[RecallItem],
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Teacher-forced recall on the answer spans of ``recall_items`` for any causal LM:
    ``logits_of(ids [1, L])`` gives its logits [1, L, vocab].

    Every token whose characters overlap an answer span is an answer token (found with the
    fast tokenizer's offset mapping). Returns ``recall_loss`` (mean CE of answer tokens),
    ``recall_token_accuracy`` (argmax hits among them) and ``recall_exact`` (fraction of
    answers whose tokens are all predicted right). Each item runs as one unpadded sequence.
    """
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


__all__ = [
    "DSATrainConfig",
    "per_layer_kl",
    "recall_from_logits",
    "stage_loop",
]
