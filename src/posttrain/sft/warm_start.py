"""Warm start: the SFT stage applied to a (tiny) model and a task corpus, with defaults that
give the embedded arithmetic policy (`posttrain warm-start`).

Results are cached under a content hash of (corpus, config, base model files), so a rerun
with the same inputs reuses the trained model instead of training again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posttrain import atomic
from posttrain.config import to_dict
from posttrain.data.arithmetic import ArithmeticTask, make_splits, tokenizer_corpus
from posttrain.data.io import DataError, read_records, require_columns
from posttrain.runs import Run
from posttrain.sft.trainer import SFTStageConfig, fine_tune, sft_rows
from posttrain.tracking import check_report_to

META_FILE = "warm_start.json"
"""Written last into a cached model: its presence is what makes a cache entry complete."""
_OLD_SCRATCH = re.compile(r"^[0-9a-f]{16}\.tmp-(\d+)$")


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
    steps: int = 800
    """Mid-range held-out accuracy on the default task (about 50-70%): learnable, unsolved.

    Accuracy rises steeply between 600 and 900 steps and where exactly varies between
    runs (floating-point order), so 800 keeps a margin on both sides of the test's 10-90%."""
    batch_size: int = 32
    learning_rate: float = 2e-3
    lr_scheduler: str = "constant_with_warmup"
    warmup_steps: int = 20
    max_length: int = 64
    seed: int = 0
    eval_max_tokens: int = 8
    cache_dir: str | None = None
    """Where trained models are cached; default $POSTTRAIN_CACHE or ~/.cache/posttrain."""
    report_to: list[str] = field(default_factory=list)
    """Trackers TRL reports the training to (tensorboard, trackio, wandb); a cache hit trains
    nothing and reports nothing."""

    def __post_init__(self) -> None:
        self.report_to = check_report_to(self.report_to)


@dataclass
class WarmStartResult:
    model_dir: Path
    accuracy: float | None
    cached: bool
    train_seconds: float


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
        test = read_records(config.test_file)
        if not test:
            raise DataError("no rows", config.test_file)
    if test:
        require_columns(test, ["prompt", "answer"], str(config.test_file))
    return train, test


def _hash_dir(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def content_key(config: WarmStartConfig, train: list[dict[str, Any]]) -> str:
    """Hash of everything that determines the trained weights."""
    # The rows themselves are hashed below, so where they were read from does not matter;
    # trackers only watch. A new field that changes the weights must stay out of `ignored`.
    ignored = ("cache_dir", "test_file", "train_file", "report_to")
    settings = {k: v for k, v in to_dict(config).items() if k not in ignored}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(json.dumps(train, sort_keys=True).encode())
    if config.base_model:
        digest.update(_hash_dir(Path(config.base_model)).encode())
    return digest.hexdigest()[:16]


def warm_start(config: WarmStartConfig, run: Run | None = None) -> WarmStartResult:
    """Fine-tune (or reuse from cache) and return the model directory and held-out accuracy."""
    if config.base_model:
        from posttrain.models.model_dir import require_model_dir

        require_model_dir(config.base_model, key="base_model")
    train, test = _rows(config)
    rows = sft_rows(train, str(config.train_file or "arithmetic task"))
    key = content_key(config, rows)
    out = cache_root(config) / key
    meta_path = out / META_FILE
    clean_cache(out.parent)
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        _log_history(run, out, meta.get("history", []), meta["accuracy"], cached=True)
        return WarmStartResult(out, meta["accuracy"], cached=True, train_seconds=0.0)
    if out.is_symlink() or out.exists():  # no warm_start.json: never finished, never trusted
        atomic.retire(out, missing_ok=True)

    # Train in a scratch directory that only a finished run publishes (warm_start.json is
    # written last; the rename is atomic), so a kill never leaves a model the cache trusts.
    with atomic.staged_dir(out, replace=False) as scratch:
        started = time.perf_counter()
        history = _train(config, rows, scratch, run)
        train_seconds = time.perf_counter() - started
        accuracy = _evaluate(scratch, test, config) if test else None
        meta = {
            "key": key,
            "accuracy": accuracy,
            "train_seconds": round(train_seconds, 2),
            "config": to_dict(config),
            "n_train": len(rows),
            "n_test": len(test),
            "history": history,
        }
        (scratch / META_FILE).write_text(json.dumps(meta, indent=2))
    # Another process may have published the same key first: the cache holds its copy.
    _log_history(run, out, history, accuracy, cached=False)
    return WarmStartResult(out, accuracy, cached=False, train_seconds=train_seconds)


def _log_history(
    run: Run | None,
    model_dir: Path,
    history: list[dict[str, Any]],
    accuracy: float | None,
    cached: bool,
) -> None:
    """Put the SFT curve in the run, whether it was trained now or long ago (cache hit)."""
    if run is None:
        return
    run.link_checkpoint(model_dir)
    for record in history:
        run.log(**record)
    last = history[-1]["step"] if history else 0
    run.log(last, heldout_accuracy=accuracy, cached=cached)


def _train(
    config: WarmStartConfig, rows: list[dict[str, Any]], out: Path, run: Run | None
) -> list[dict[str, Any]]:
    """Run the SFT stage into `out`; return the loss curve as metric records."""
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
        report_to=config.report_to,
    )
    # TRL's tracker files (TensorBoard's) go to the run; the trainer's scratch goes away.
    trainer_dir = run.path if run is not None and config.report_to else out / "trainer"
    log_history = fine_tune(settings, rows, out, trainer_dir, name="warm-start")
    shutil.rmtree(out / "trainer", ignore_errors=True)
    shutil.rmtree(out / "base", ignore_errors=True)
    return [
        {
            "step": entry["step"],
            "sft_loss": entry["loss"],
            "token_accuracy": entry.get("mean_token_accuracy"),
        }
        for entry in log_history
        if "loss" in entry
    ]


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
