"""The SFT stage (`posttrain sft --config FILE`): TRL's SFTTrainer on a model directory and
TRL-format rows, writing a run directory with the loss curve and the final model.

TRL's trainer runs on accelerate, so `accelerate launch -m posttrain sft --config FILE`
spreads the same job over several devices or processes; only the main process writes the run.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from posttrain.config import dump_config
from posttrain.data.io import DataError
from posttrain.runs import Run
from posttrain.tracking import PROJECT, check_report_to, trl_report_to

PRECISIONS = ("auto", "no", "fp16", "bf16")
DTYPES = ("auto", "float32", "bfloat16", "float16")

_METRIC_NAMES = {
    "loss": "sft_loss",
    "mean_token_accuracy": "token_accuracy",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
}
"""TRL's log keys -> the run's metric names (`sft_` where a recipe's run also holds RL ones)."""


@dataclass
class SFTStageConfig:
    """Settings of one SFT run; each maps onto the TRL / transformers argument it names."""

    model: str | None = None
    """A model directory (`from_pretrained`): a checkpoint, or one from `posttrain tiny-model`."""
    train_file: str | None = None
    """JSONL / parquet / `datasets` dir of TRL SFT rows: `messages`, or `prompt` + `completion`
    (conversational or plain text); other columns are ignored."""
    output_dir: str = "runs/sft"
    """The run directory: config.yaml, metrics.jsonl, report.html, the model in
    `checkpoints/final`, and TRL's own tracker files (TensorBoard under `runs/`)."""
    steps: int | None = None
    """Optimizer steps (max_steps); None trains for `epochs` passes over the rows."""
    epochs: float = 1.0
    """num_train_epochs, when `steps` is None."""
    batch_size: int = 8
    """Rows per device per forward pass (per_device_train_batch_size)."""
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-5
    """TRL's default, for a pretrained checkpoint; a tiny model from scratch wants about 2e-3."""
    lr_scheduler: str = "linear"
    """lr_scheduler_type: linear, cosine, constant, constant_with_warmup, ..."""
    warmup_steps: float = 0
    """Linear warm-up steps; a value below 1 is a fraction of all steps."""
    max_length: int | None = 1024
    """Tokens kept per row (TRL truncates longer ones); None keeps everything."""
    seed: int = 0
    """Seeds the trainer and the data order."""
    mixed_precision: str | bool = "auto"
    """no, fp16 (a CUDA GPU) or bf16; auto is bf16 on a GPU that supports it, else no. YAML's
    bare `no` (read as false) means no."""
    torch_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """dtype the weights are loaded in; auto keeps the checkpoint's own."""
    gradient_checkpointing: bool = True
    """Recompute activations in the backward pass (TRL's default): less memory, more time."""
    logging_steps: int | None = None
    """Steps between logged points; None gives about 20 points over the run."""
    report_to: list[str] = field(default_factory=list)
    """Trackers TRL reports to: tensorboard, trackio, wandb; empty for none."""

    def __post_init__(self) -> None:
        if self.mixed_precision is False:
            self.mixed_precision = "no"
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(
                f"mixed_precision must be one of {', '.join(PRECISIONS)}, got "
                f"{self.mixed_precision!r}"
            )
        if self.torch_dtype not in DTYPES:
            raise ValueError(
                f"torch_dtype must be one of {', '.join(DTYPES)}, got {self.torch_dtype!r}"
            )
        for name in ("batch_size", "gradient_accumulation_steps", "learning_rate", "epochs"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("steps", "logging_steps", "max_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or null), got {value!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps!r}")
        self.report_to = check_report_to(self.report_to)


def sft_rows(rows: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    """Keep only the columns SFTTrainer reads, checking that every row has the first row's
    layout (TRL handles one layout per dataset). A row's `images` (a vision-language model's
    rows: PIL images or data URLs, one per image placeholder of its prompt) are kept as RGB
    PIL images."""
    kept = []
    for number, row in enumerate(rows, start=1):
        if "messages" in row:
            kept.append({"messages": row["messages"]})
        elif "prompt" in row and "completion" in row:
            kept.append({"prompt": row["prompt"], "completion": row["completion"]})
        else:
            raise DataError(
                f"{source}: row {number} has neither 'messages' nor 'prompt'+'completion'"
            )
        if "images" in row:
            kept[-1]["images"] = _row_images(row["images"], source, number)
        if kept[-1].keys() != kept[0].keys():
            raise DataError(
                f"{source}: row {number} has {'+'.join(kept[-1])} but row 1 has "
                f"{'+'.join(kept[0])}; use one layout for all rows"
            )
    if not kept:
        raise DataError(f"{source}: no rows to train on")
    return kept


def _row_images(images: Any, source: str, number: int) -> list[Any]:
    """A row's images as RGB PIL images (data URLs decoded; nothing is fetched)."""
    from PIL import Image

    from posttrain.models.chat.images import load_image

    if not isinstance(images, list):
        raise DataError(f"{source}: row {number}: 'images' must be a list, got {images!r:.60}")
    loaded = []
    for image in images:
        if isinstance(image, Image.Image):
            loaded.append(image if image.mode == "RGB" else image.convert("RGB"))
        elif isinstance(image, str):
            try:
                loaded.append(load_image(image))
            except ValueError as error:
                raise DataError(f"{source}: row {number}: images: {error}") from None
        else:
            raise DataError(
                f"{source}: row {number}: an image must be a PIL image or a data URL, "
                f"got {type(image).__name__}"
            )
    return loaded


def is_main_process() -> bool:
    """Rank 0 (or no launcher at all): the process that writes the run directory."""
    return os.environ.get("RANK", "0") == "0"


def trl_arguments(
    config: SFTStageConfig,
    output_dir: str | Path,
    n_rows: int,
    world_size: int = 1,
    name: str = "sft",
) -> Any:
    """The `trl.SFTConfig` for `config`: the trainer writes under `output_dir` and names its
    tracker runs `name`."""
    import torch
    from transformers.trainer_utils import SchedulerType
    from trl import SFTConfig

    schedulers = [s.value for s in SchedulerType]
    if config.lr_scheduler not in schedulers:
        raise ValueError(
            f"lr_scheduler must be one of {', '.join(schedulers)}, got {config.lr_scheduler!r}"
        )
    cuda = torch.cuda.is_available()
    precision = config.mixed_precision
    if precision == "auto":
        precision = "bf16" if cuda and torch.cuda.is_bf16_supported() else "no"
    if precision == "fp16" and not cuda:
        raise ValueError("mixed_precision: fp16 needs a CUDA GPU; use no or bf16 on the CPU")
    per_step = config.batch_size * config.gradient_accumulation_steps * world_size
    total = config.steps or max(1, round(n_rows / per_step * config.epochs))
    return SFTConfig(
        output_dir=str(output_dir),
        max_steps=config.steps or -1,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler,
        warmup_steps=config.warmup_steps,
        weight_decay=0.0,
        max_length=config.max_length,
        logging_steps=config.logging_steps or max(1, total // 20),
        save_strategy="no",
        report_to=trl_report_to(config.report_to),
        run_name=name,
        project=PROJECT,  # Trackio's
        gradient_checkpointing=config.gradient_checkpointing,
        fp16=precision == "fp16",
        bf16=precision == "bf16",
        # Left to accelerate where CUDA is present, so `accelerate launch` places the job.
        use_cpu=not cuda,
        seed=config.seed,
        data_seed=config.seed,
    )


def fine_tune(
    config: SFTStageConfig,
    rows: list[dict[str, Any]],
    out: Path,
    trainer_dir: Path,
    run: Run | None = None,
    name: str = "sft",
    callbacks: Sequence[Any] = (),
) -> list[dict[str, Any]]:
    """Fine-tune `config.model` on `rows` (from `sft_rows`) with SFTTrainer; save the model and
    its tokenizer (a vision-language model's processor) to `out`; stream the logs into `run`.
    `trainer_dir` gets what TRL writes itself (its trackers' files); `callbacks` are more
    transformers TrainerCallbacks (`ScoreStop`). Returns TRL's log history."""
    trainer = sft_trainer(config, rows, trainer_dir, run, name, callbacks)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`gradient_checkpointing` is deprecated", FutureWarning)
        trainer.train()
    trainer.save_model(str(out))
    if trainer.is_world_process_zero():
        trainer.processing_class.save_pretrained(out)
    return trainer.state.log_history


def sft_trainer(
    config: SFTStageConfig,
    rows: list[dict[str, Any]],
    trainer_dir: Path,
    run: Run | None = None,
    name: str = "sft",
    callbacks: Sequence[Any] = (),
) -> Any:
    """The `trl.SFTTrainer` that `fine_tune` trains (its arguments as there).

    A vision-language model directory (`is_vision_model_dir`) loads with `AutoProcessor` +
    `AutoModelForImageTextToText`, and the processor is TRL's processing class, so rows with
    `images` go through TRL's vision collator; prompt-completion rows train on the
    completion's tokens only (TRL's default for that layout)."""
    import torch
    from datasets import Dataset
    from trl import SFTTrainer

    if not config.model:
        raise ValueError("model is required: a model directory to fine-tune")
    dtype = "auto" if config.torch_dtype == "auto" else getattr(torch, config.torch_dtype)
    model, processing_class = load_trainable(config.model, dtype)
    if _is_processor(processing_class):
        # TRL picks its vision collator by an `images` column; text-only rows get an empty one.
        rows = [row if "images" in row else {**row, "images": []} for row in rows]
    elif any("images" in row for row in rows):
        raise DataError(
            "the rows have images but the model is a text model (its config.json has no "
            "vision_config)",
            config.model,
        )
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    with warnings.catch_warnings():
        # TRL still passes transformers' old `gradient_checkpointing` name; the warning is noise.
        warnings.filterwarnings("ignore", "`gradient_checkpointing` is deprecated", FutureWarning)
        args = trl_arguments(config, trainer_dir, len(rows), world_size, name)
        return SFTTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=processing_class,
            callbacks=[*([_run_logger(run)] if run is not None else []), *callbacks] or None,
        )


def load_trainable(model_dir: str | Path, dtype: Any = "auto") -> tuple[Any, Any]:
    """(model, tokenizer) of a causal LM directory, or (model, processor) of a vision-language
    one, loaded as their model cards say."""
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForImageTextToText,
        AutoProcessor,
        AutoTokenizer,
    )

    from posttrain.models.chat.hf_vision import is_vision_model_dir

    if is_vision_model_dir(model_dir):
        processor = AutoProcessor.from_pretrained(model_dir)
        return AutoModelForImageTextToText.from_pretrained(model_dir, dtype=dtype), processor
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype), tokenizer


def _is_processor(processing_class: Any) -> bool:
    from transformers import ProcessorMixin

    return isinstance(processing_class, ProcessorMixin)


def _run_logger(run: Run) -> Any:
    from transformers import TrainerCallback

    class RunLogger(TrainerCallback):
        """Stream the trainer's logs into the run's metrics.jsonl as they happen."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            record = {new: logs[old] for old, new in _METRIC_NAMES.items() if old in (logs or {})}
            if record and state.is_world_process_zero:
                run.log(state.global_step, **record)

    return RunLogger()


def score_stop(
    score: Callable[[Any], float],
    every: int,
    target: float,
    scores: list[dict[str, Any]],
    start: int = 0,
) -> Any:
    """A TrainerCallback that scores the model in training every `every` steps from step
    `start` on (`score(model)`, e.g. greedy validation accuracy), appends `{"step", "score"}`
    to `scores`, and ends the training at the first score >= `target`. The model saved is
    the one that scored. A vision-language model's scorer wraps it with its processor
    (`HFVisionChat.from_model(model, processor, name=...)`)."""
    from transformers import TrainerCallback

    if every < 1:
        raise ValueError(f"every must be at least 1, got {every}")

    class ScoreStop(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if state.global_step < start or state.global_step % every:
                return
            model = kw["model"]
            was_training = model.training
            try:
                value = float(score(model))
            finally:
                model.train(was_training)  # generation switches it to eval mode
            scores.append({"step": state.global_step, "score": value})
            if value >= target:
                control.should_training_stop = True

    return ScoreStop()


def train_sft(config: SFTStageConfig) -> Path:
    """Run the SFT stage; return the final model directory, `output_dir/checkpoints/final`.

    SFT does not resume: a rerun into the same directory starts its curve afresh.
    """
    from posttrain.data.io import read_records
    from posttrain.models.model_dir import require_model_dir

    if not config.model:
        raise ValueError("model is required: a model directory to fine-tune")
    require_model_dir(config.model, key="model")
    if not config.train_file:
        raise ValueError("train_file is required: JSONL/parquet/dataset of TRL SFT rows")
    rows = sft_rows(read_records(config.train_file), str(config.train_file))
    out = Path(config.output_dir)
    final = out / "checkpoints" / "final"
    if not is_main_process():
        fine_tune(config, rows, final, out, name=out.name)
        return final
    out.mkdir(parents=True, exist_ok=True)
    dump_config(config, out / "config.yaml")
    # TRL's own trackers (report_to) log the trainer; the run keeps metrics.jsonl.
    with Run(out) as run:
        run.truncate_metrics_after(-1)
        shutil.rmtree(final, ignore_errors=True)
        history = fine_tune(config, rows, final, out, run, name=out.name)
        summary = next((h for h in reversed(history) if "train_runtime" in h), {})
        run.write_json(
            "results.json",
            {
                "model_dir": str(final),
                "n_train": len(rows),
                "steps": summary.get("step"),
                "train_loss": summary.get("train_loss"),
                "train_seconds": summary.get("train_runtime"),
            },
        )
    return final
