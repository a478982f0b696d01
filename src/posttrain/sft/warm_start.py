"""Warm start: the SFT stage applied to a (tiny) model and a task corpus, with defaults that
give the embedded arithmetic policy (`posttrain warm-start`).

Results are cached under a content hash of (corpus, config, base model files), so a rerun
with the same inputs reuses the trained model instead of training again.

Accuracy climbs steeply over a few hundred SFT steps, and where the climb starts moves with
floating-point order (thread count, machine). A fixed step count therefore lands anywhere
on the climb; stopping at a validation accuracy (`stop_at_accuracy`) lands near the same
accuracy on every machine, at whatever step that takes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain import atomic
from posttrain.config import to_dict
from posttrain.data.arithmetic import (
    ArithmeticTask,
    make_splits,
    tokenizer_corpus,
    validation_split,
)
from posttrain.data.io import DataError, read_records, require_columns
from posttrain.runs import Run
from posttrain.sft.trainer import SFTStageConfig, fine_tune, score_stop, sft_rows
from posttrain.tracking import check_report_to

META_FILE = "warm_start.json"
"""Written last into a cached model: its presence is what makes a cache entry complete."""
_OLD_SCRATCH = re.compile(r"^[0-9a-f]{16}\.tmp-(\d+)$")
log = logging.getLogger(__name__)


@dataclass
class WarmStartConfig:
    """How to build and fine-tune the warm-start policy. Defaults are the CPU embedded default."""

    base_model: str | None = None
    """A model directory to fine-tune; None builds a fresh tiny model of `size`."""
    size: str = "micro"
    """Tiny model size when `base_model` is None: nano, micro, mini or small."""
    vocab_size: int = 256
    """Tokenizer vocabulary when a fresh tiny model is built."""
    task: ArithmeticTask = field(default_factory=ArithmeticTask)
    """The generated arithmetic task, used unless `train_file` is given."""
    train_file: str | None = None
    """JSONL/parquet/dataset of TRL SFT rows (`prompt` + `completion`, or `messages`)."""
    test_file: str | None = None
    """Held-out rows with a chat `prompt` and a reference `answer`, for accuracy."""
    validation_file: str | None = None
    """Rows with a chat `prompt` and a reference `answer` that `stop_at_accuracy` watches;
    None uses the task's validation split, or none at all when `train_file` is given."""
    steps: int = 1200
    """Optimizer steps, at most: with `stop_at_accuracy` the default task stops sooner."""
    stop_at_accuracy: float | None = 0.5
    """Stop SFT at the first evaluation (every `eval_every` steps) whose greedy accuracy on
    the validation rows reaches this, keeping that model: a mid-range policy (learnable,
    unsolved) on every machine, where a fixed step count lands anywhere on the steep climb.
    Off (all `steps` are trained) when it is None, when there are no validation rows (a
    `train_file` without a `validation_file`), or when no evaluation step (`eval_start`,
    then every `eval_every`) falls within `steps`."""
    eval_every: int = 25
    """Steps between validation evaluations for `stop_at_accuracy`."""
    eval_start: int = 400
    """No validation evaluation before this step: each costs about ten SFT steps, and the
    default task scores near 0% until about step 500."""
    batch_size: int = 32
    learning_rate: float = 2e-3
    lr_scheduler: str = "constant_with_warmup"
    warmup_steps: int = 20
    max_length: int = 64
    seed: int = 0
    eval_max_tokens: int = 8
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (the SFT stage's and TRL's default). Off:
    a tiny model's activations are small, and recomputing them made a micro model's step
    about 18% slower for bitwise-identical weights (so it is not in the cache key). Turn it
    on for a large `base_model` that runs out of memory."""
    cache_dir: str | None = None
    """Where trained models are cached; default $POSTTRAIN_CACHE or ~/.cache/posttrain."""
    report_to: list[str] = field(default_factory=list)
    """Trackers TRL reports the training to (tensorboard, trackio, wandb); a cache hit trains
    nothing and reports nothing."""

    def __post_init__(self) -> None:
        self.report_to = check_report_to(self.report_to)
        if self.stop_at_accuracy is not None and not 0 < self.stop_at_accuracy <= 1:
            raise ValueError(f"stop_at_accuracy must be in (0, 1], got {self.stop_at_accuracy!r}")
        if self.eval_every < 1:
            raise ValueError(f"eval_every must be at least 1, got {self.eval_every!r}")
        if self.eval_start < 0:
            raise ValueError(f"eval_start must be >= 0, got {self.eval_start!r}")

    def first_eval_step(self) -> int:
        """The first step `stop_at_accuracy` evaluates at: a multiple of `eval_every`."""
        return max(1, -(-self.eval_start // self.eval_every)) * self.eval_every


@dataclass
class WarmStartResult:
    model_dir: Path
    accuracy: float | None
    cached: bool
    train_seconds: float
    stopped_at_step: int | None = None
    """The step whose model was kept; None where SFT ran all `steps` (or the entry predates it)."""


def clean_cache(root: Path) -> None:
    """Remove the scratch that killed warm starts left in the cache (their process is gone),
    including the `<key>.tmp-<pid>` of posttrain before `posttrain.atomic`."""
    atomic.clean_stale(root)
    if not root.is_dir():
        return
    for entry in root.iterdir():
        old = _OLD_SCRATCH.match(entry.name)
        if old is not None and not atomic.pid_alive(int(old[1])):
            atomic.retire(entry, missing_ok=True)  # jobs sharing a cache may clean it at once


def cache_root(config: WarmStartConfig) -> Path:
    base = config.cache_dir or os.environ.get("POSTTRAIN_CACHE") or Path.home() / ".cache/posttrain"
    return Path(base) / "warm-start"


def _rows(config: WarmStartConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if config.train_file is None:
        train, test = make_splits(config.task)
    else:
        train, test = read_records(config.train_file), []
    if config.test_file:  # replaces the task's held-out split too: a given file is never ignored
        test = _eval_rows(config.test_file)
    if test:
        require_columns(test, ["prompt", "answer"], str(config.test_file))
    return train, test


def _eval_rows(path: str) -> list[dict[str, Any]]:
    rows = read_records(path)
    if not rows:
        raise DataError("no rows", path)
    require_columns(rows, ["prompt", "answer"], path)
    return rows


def _validation_rows(config: WarmStartConfig) -> list[dict[str, Any]]:
    """What `stop_at_accuracy` watches; [] where stopping is off."""
    if config.stop_at_accuracy is None or config.first_eval_step() > config.steps:
        return []
    if config.validation_file:
        return _eval_rows(config.validation_file)
    if config.train_file is None and config.task.n_validation:
        return validation_split(config.task)
    return []


def _hash_dir(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def content_key(
    config: WarmStartConfig,
    train: list[dict[str, Any]],
    validation_from_file: list[dict[str, Any]] | None = None,
) -> str:
    """Hash of everything that determines the trained weights; `validation_from_file`: the
    rows of `validation_file`, which decide where SFT stops (the task's own split is
    determined by `task`, already in the settings)."""
    # The rows themselves are hashed below, so where they were read from does not matter;
    # trackers only watch. A new field that changes the weights must stay out of `ignored`.
    # Activation checkpointing changes memory, not weights (bitwise equal on a micro model).
    ignored = (
        "cache_dir",
        "test_file",
        "train_file",
        "validation_file",
        "report_to",
        "gradient_checkpointing",
    )
    settings = {k: v for k, v in to_dict(config).items() if k not in ignored}
    if config.base_model:  # its files are hashed below: a copy elsewhere is the same model
        del settings["base_model"]
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(json.dumps(train, sort_keys=True).encode())
    if validation_from_file:
        digest.update(json.dumps(validation_from_file, sort_keys=True).encode())
    if config.base_model:
        digest.update(_hash_dir(Path(config.base_model)).encode())
    return digest.hexdigest()[:16]


def warm_start(config: WarmStartConfig, run: Run | None = None) -> WarmStartResult:
    """Fine-tune (or reuse from cache) and return the model directory and held-out accuracy."""
    if config.base_model:
        from posttrain.models.model_dir import require_model_dir

        require_model_dir(config.base_model, key="base_model")
    train, test = _rows(config)
    validation = _validation_rows(config)
    rows = sft_rows(train, str(config.train_file or "arithmetic task"))
    key = content_key(config, rows, validation if config.validation_file else None)
    out = cache_root(config) / key
    meta_path = out / META_FILE
    clean_cache(out.parent)
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        stopped = meta.get("stopped_at_step")
        _log_history(run, out, meta.get("history", []), meta["accuracy"], True, stopped)
        return WarmStartResult(out, meta["accuracy"], True, 0.0, stopped)
    if out.is_symlink() or out.exists():  # no warm_start.json: never finished, never trusted
        atomic.retire(out, missing_ok=True)

    # Train in a scratch directory that only a finished run publishes (warm_start.json is
    # written last; the rename is atomic), so a kill never leaves a model the cache trusts.
    with atomic.staged_dir(out, replace=False) as scratch:
        started = time.perf_counter()
        history, stopped = _train(config, rows, validation, scratch, run)
        train_seconds = time.perf_counter() - started
        accuracy = _evaluate(scratch, test, config) if test else None
        meta = {
            "key": key,
            "accuracy": accuracy,
            "stopped_at_step": stopped,
            "train_seconds": round(train_seconds, 2),
            "config": to_dict(config),
            "n_train": len(rows),
            "n_validation": len(validation),
            "n_test": len(test),
            "history": history,
        }
        (scratch / META_FILE).write_text(json.dumps(meta, indent=2))
    # Another process may have published the same key first: the cache holds its copy.
    _log_history(run, out, history, accuracy, False, stopped)
    return WarmStartResult(out, accuracy, False, train_seconds, stopped)


def _log_history(
    run: Run | None,
    model_dir: Path,
    history: list[dict[str, Any]],
    accuracy: float | None,
    cached: bool,
    stopped_at_step: int | None = None,
) -> None:
    """Put the SFT curve in the run, whether it was trained now or long ago (cache hit)."""
    if stopped_at_step is not None:
        log.info("warm start %s stopped at step %d", model_dir.name, stopped_at_step)
    if run is None:
        return
    run.link_checkpoint(model_dir)
    for record in history:
        run.log(**record)
    last = history[-1]["step"] if history else 0
    extra = {} if stopped_at_step is None else {"stopped_at_step": stopped_at_step}
    run.log(last, heldout_accuracy=accuracy, cached=cached, **extra)


def _train(
    config: WarmStartConfig,
    rows: list[dict[str, Any]],
    validation: list[dict[str, Any]],
    out: Path,
    run: Run | None,
) -> tuple[list[dict[str, Any]], int | None]:
    """Run the SFT stage into `out`; return the loss and validation curves as metric records,
    and the step it stopped at when `stop_at_accuracy` was reached (else None)."""
    from posttrain.models.tiny import build_tiny_model

    base = config.base_model
    if base is None:
        corpus = tokenizer_corpus(config.task) if config.train_file is None else _texts(rows)
        base = build_tiny_model(
            out / "base", corpus, size=config.size, vocab_size=config.vocab_size, seed=config.seed
        )
    settings = SFTStageConfig(
        model=str(base),
        steps=config.steps,
        batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        lr_scheduler=config.lr_scheduler,
        warmup_steps=config.warmup_steps,
        max_length=config.max_length,
        seed=config.seed,
        gradient_checkpointing=config.gradient_checkpointing,
        report_to=config.report_to,
    )
    # TRL's tracker files (TensorBoard's) go to the run; the trainer's scratch goes away.
    trainer_dir = run.path if run is not None and config.report_to else out / "trainer"
    scores: list[dict[str, Any]] = []
    extra = {}
    if validation:  # only then: callers that never stop early keep fine_tune's old signature
        assert config.stop_at_accuracy is not None  # _validation_rows returns [] otherwise
        scorer = _greedy_accuracy(Path(base), validation, config.eval_max_tokens)
        extra["callbacks"] = [
            score_stop(
                scorer, config.eval_every, config.stop_at_accuracy, scores, config.eval_start
            )
        ]
    log_history = fine_tune(settings, rows, out, trainer_dir, name="warm-start", **extra)
    shutil.rmtree(out / "trainer", ignore_errors=True)
    shutil.rmtree(out / "base", ignore_errors=True)
    history = [
        {
            "step": entry["step"],
            "sft_loss": entry["loss"],
            "token_accuracy": entry.get("mean_token_accuracy"),
        }
        for entry in log_history
        if "loss" in entry
    ]
    history += [{"step": s["step"], "validation_accuracy": s["score"]} for s in scores]
    history.sort(key=lambda record: record["step"])  # stable: loss before validation
    reached = scores and scores[-1]["score"] >= (config.stop_at_accuracy or 0)
    if validation and not reached:
        log.warning(
            "warm start: validation accuracy never reached %s in %d steps (last: %s)",
            config.stop_at_accuracy,
            config.steps,
            scores[-1]["score"] if scores else None,
        )
    return history, scores[-1]["step"] if reached else None


def _greedy_accuracy(
    tokenizer_dir: Path, rows: list[dict[str, Any]], max_tokens: int
) -> Callable[[Any], float]:
    """Greedy accuracy on `rows` of a model in memory, through the same chat and scoring as
    `_evaluate` gives the saved model (`exact_match_accuracy`)."""
    from transformers import AutoTokenizer

    from posttrain.eval.exact_match import exact_match_accuracy
    from posttrain.models.chat.base import GenerationParams
    from posttrain.models.chat.hf import HFChat

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, padding_side="left")
    params = GenerationParams(max_tokens=max_tokens)

    def score(model: Any) -> float:
        chat = HFChat.from_model(model, tokenizer, name="in-training")
        return exact_match_accuracy(chat, rows, params)[0]

    return score


def _texts(rows: list[dict[str, Any]]) -> list[str]:
    texts = []
    for row in rows:
        messages = row.get("messages") or [*row["prompt"], *row["completion"]]
        texts.extend(m["content"] for m in messages)
    return texts


def _evaluate(model_dir: Path, test: list[dict[str, Any]], config: WarmStartConfig) -> float:
    from posttrain.eval.exact_match import exact_match_accuracy
    from posttrain.models.chat.base import GenerationParams
    from posttrain.models.chat.hf import HFChat

    chat = HFChat(model_dir)
    accuracy, _ = exact_match_accuracy(
        chat, test, GenerationParams(max_tokens=config.eval_max_tokens)
    )
    return accuracy
