"""Bradley–Terry reward models: train with TRL's RewardTrainer, score, and use as a reward.

A reward model reads a conversation (prompt, then response) and returns one scalar. Training
minimises TRL's pairwise loss `-log sigmoid(r_chosen - r_rejected [- margin])` (+ an optional
centring term); scoring reuses exactly the formatting and tokenisation TRL applied in training
(`format_pair` and `encode` below), so a served score is the number the trainer optimised.

How a pair is rendered is a property of the tokenizer, the same in training and in every
scoring path (`RewardModel.score`, `reward-model:DIR` in RL, rm-bench, best-of-n, serve-rm):

- With a chat template (a real checkpoint such as Skywork-Reward, or posttrain's tiny models,
  which carry ChatML), the whole conversation goes through `apply_chat_template`: a plain-string
  prompt becomes one user message, a plain-string response the assistant message, and message
  lists (history, system prompt, multi-turn completions) are kept whole. Plain-text preference
  rows are therefore trained as one-turn conversations: TRL's RewardTrainer gets them as
  messages and applies the template itself, so training and scoring see the same tokens.
- Without one, the plain format: the prompt (messages' texts joined by a blank line) +
  "\\n\\n" + the response + EOS, as TRL formats plain-text rows. `RewardModel` says so once
  per model in the log, since a chat model scored this way sees input it was not trained on.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl

from posttrain import atomic
from posttrain.config import to_dict
from posttrain.data.io import DataError, read_records
from posttrain.rewards.registry import RewardFunc
from posttrain.runs import Run

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase
    from trl import RewardTrainer

logger = logging.getLogger(__name__)

Messages = list[dict[str, Any]]
Text = str | Messages
"""A prompt or response: a plain string, or a conversation as a list of chat messages."""

SEPARATOR = "\n\n"
"""Joins prompt and response (and messages) when the tokenizer has no chat template."""


@dataclass
class RewardModelConfig:
    """How to train a reward model. Defaults are the embedded CPU default (a tiny model)."""

    model: str | None = None
    """A model directory to start from (sequence-classification, or a causal LM whose head TRL
    replaces); None builds a fresh tiny seq-cls model with a tokenizer trained on the rows."""
    model_size: str = "micro"
    """Tiny model size when `model` is None: nano, micro, mini or small."""
    vocab_size: int = 512
    """Tokenizer vocabulary when a fresh tiny model is built."""
    train_file: str | None = None
    """JSONL/parquet/dataset of preference rows: `prompt`, `chosen`, `rejected` (strings, or
    lists of chat messages), plus `margin` when `margin` is true."""
    eval_file: str | None = None
    """Held-out preference rows, same layout; adds eval loss and pairwise accuracy to the run."""
    steps: int | None = None
    """Optimizer steps; None trains for `epochs` passes over the training rows."""
    epochs: float = 1.0
    """Passes over the training rows when `steps` is None."""
    batch_size: int = 16
    """Preference pairs per step (each step scores 2 x batch_size sequences)."""
    learning_rate: float = 1e-3
    """Suits a tiny model trained from scratch; use about 1e-5 for a pretrained checkpoint."""
    max_length: int = 256
    """Token limit of prompt + response in training: TRL drops longer pairs (RewardModel, when
    scoring, keeps the last tokens that fit the model's context instead)."""
    margin: bool = False
    """Rows carry a numeric `margin` that TRL subtracts inside the sigmoid (Llama 2's margin
    loss); when false a `margin` column is ignored."""
    center_rewards_coefficient: float | None = None
    """TRL's centring term, coefficient x mean((r_chosen + r_rejected)^2); None turns it off
    (0.01 is the value TRL recommends)."""
    seed: int = 0
    """Seeds the tiny model's initialisation, the data order and the trainer."""
    output_dir: str = "outputs/reward-model"
    """The trained model goes to `output_dir/final`."""
    report_to: list[str] = field(default_factory=list)
    """Trackers TRL reports the training to: tensorboard, trackio, wandb (empty: none)."""

    def __post_init__(self) -> None:
        check_training_fields(self)
        if self.center_rewards_coefficient is not None and self.center_rewards_coefficient < 0:
            raise ValueError(
                f"center_rewards_coefficient must be >= 0 or null, got "
                f"{self.center_rewards_coefficient}"
            )


def check_training_fields(config: Any) -> None:
    """The checks every reward-model training config shares (this one and the ordinal one):
    a known tiny size when no model is given, positive sizes and rates, steps >= 1 or None."""
    from posttrain.models.tiny import SIZES

    if config.model is None and config.model_size not in SIZES:
        raise ValueError(f"model_size must be one of {sorted(SIZES)}, got {config.model_size!r}")
    for name in ("vocab_size", "batch_size", "learning_rate", "max_length", "epochs"):
        value = getattr(config, name)
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    if config.steps is not None and config.steps < 1:
        raise ValueError(f"steps must be at least 1 (or null to use epochs), got {config.steps}")


# --- formatting: one definition for training and scoring -------------------------------------


def is_messages(value: Any) -> bool:
    """Whether `value` is a conversation: a list of dicts with a role and content."""
    return isinstance(value, list) and all(
        isinstance(m, dict) and "role" in m and "content" in m for m in value
    )


def message_text(message: dict[str, Any]) -> str:
    """The text of one chat message (text parts only, for structured content)."""
    content = message.get("content")
    if isinstance(content, list):  # structured parts: keep the text ones
        return "".join(p.get("text", "") for p in content if p.get("type") == "text")
    return "" if content is None else str(content)


def as_text(value: Text) -> str:
    """A prompt or response as plain text: messages joined by SEPARATOR."""
    return SEPARATOR.join(message_text(m) for m in value) if isinstance(value, list) else value


def conversation(prompt: Text, response: Text) -> tuple[Messages, Messages]:
    """(prompt, response) as messages: a plain-string prompt is one user message, a plain-string
    response the assistant's message; message lists are kept whole (history included)."""
    head = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
    tail = response if isinstance(response, list) else [{"role": "assistant", "content": response}]
    return list(head), list(tail)


def has_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether pairs are rendered with the tokenizer's chat template (else the plain format)."""
    return bool(getattr(tokenizer, "chat_template", None))


def format_pair(
    tokenizer: PreTrainedTokenizerBase, prompt: Text, response: Text
) -> tuple[Text, Text]:
    """The (prompt, response) fields TRL's RewardTrainer gets for one pair; scoring uses them too.

    With a chat template, both become messages (`conversation`), so TRL applies the template
    to the whole conversation; without, plain text, the prompt ending in SEPARATOR so that
    TRL's `prompt + response` is `prompt + "\\n\\n" + response`.
    """
    if has_chat_template(tokenizer):
        return conversation(prompt, response)
    return as_text(prompt) + SEPARATOR, as_text(response)


def encode(tokenizer: PreTrainedTokenizerBase, prompt: Text, response: Text) -> list[int]:
    """Token ids of one (prompt, response), as TRL's RewardTrainer preprocessing makes them.

    Mirrors `RewardTrainer._prepare_dataset`: conversations go through `apply_chat_template`
    (prompt + response messages, no tools); plain text gets the EOS token appended (the
    classifier reads the score at the last token) and is tokenised with `tokenizer(text=...)`.
    A unit test checks the two agree.
    """
    head, tail = format_pair(tokenizer, prompt, response)
    if isinstance(head, list) and isinstance(tail, list):
        encoded = tokenizer.apply_chat_template(
            head + tail, tokenize=True, return_dict=True, tools=None
        )
        return list(encoded["input_ids"])
    assert isinstance(head, str) and isinstance(tail, str)
    if not tail.endswith(tokenizer.eos_token):
        tail += tokenizer.eos_token
    return list(tokenizer(text=head + tail)["input_ids"])


_WARNED_PLAIN: set[str] = set()


def warn_if_plain(tokenizer: PreTrainedTokenizerBase, model: str | Path) -> None:
    """Log, once per model, that a tokenizer without a chat template means the plain format."""
    key = str(Path(model).resolve()) if Path(model).exists() else str(model)
    if has_chat_template(tokenizer) or key in _WARNED_PLAIN:
        return
    _WARNED_PLAIN.add(key)
    logger.warning(
        "reward model %s: its tokenizer has no chat template, so pairs are scored as plain "
        "text (prompt + '\\n\\n' + response + EOS, messages joined by blank lines)",
        model,
    )


# --- preference rows ---------------------------------------------------------------------------


def load_preferences(path: str | Path, margin: bool = False) -> list[dict[str, Any]]:
    """Preference rows from `path` in TRL's preference layouts, checked row by row.

    Explicit prompt: `prompt`, `chosen`, `rejected`, each a string or a list of chat messages
    (parquet's arrays of message structs included). Implicit prompt (TRL's layout without a
    `prompt` column, e.g. trl-lib/ultrafeedback_binarized): `chosen` and `rejected` are whole
    conversations, and the messages they share from the start are the prompt. With `margin`,
    a numeric `margin` too. A bad row is a `DataError` naming the file and the row.
    """
    rows = read_records(path)
    if not rows:
        raise DataError("no preference rows", path)
    kept = []
    for number, row in enumerate(rows, start=1):
        where = f"row {number}"
        fields = {key: _pair_field(row, key, path, where) for key in ("chosen", "rejected")}
        if "prompt" in row:
            fields["prompt"] = _pair_field(row, "prompt", path, where)
            fields.update(_drop_repeated_prompt(fields, path, where))
        else:
            fields.update(_split_implicit_prompt(fields["chosen"], fields["rejected"], path, where))
        clean = {key: fields[key] for key in ("prompt", "chosen", "rejected")}
        if margin:
            value = row.get("margin")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise DataError(
                    f"{where}: margin=true needs a numeric 'margin' field, got {value!r}", path
                )
            clean["margin"] = float(value)
        kept.append(clean)
    return kept


def _pair_field(row: dict[str, Any], key: str, path: str | Path, where: str) -> Text:
    """`row[key]` as a string or a list of messages (a tuple or array of them becomes a
    list), else a DataError naming the file, row and field."""
    if key not in row:
        need = "chosen, rejected and prompt (or whole conversations as chosen and rejected)"
        raise DataError(f"{where} has no {key!r} field (need {need})", path)
    value = row[key]
    if isinstance(value, str):
        return value
    if not isinstance(value, dict) and hasattr(value, "__iter__"):
        messages = [dict(m) if isinstance(m, dict) else m for m in value]
        if messages and is_messages(messages):
            return messages
    raise DataError(
        f"{where}: {key!r} must be a string or a non-empty list of chat messages "
        f"(dicts with 'role' and 'content'), got {type(value).__name__}",
        path,
    )


def _drop_repeated_prompt(fields: dict[str, Text], path: str | Path, where: str) -> dict[str, Text]:
    """Rows that give a `prompt` and also repeat it at the start of whole-conversation
    `chosen`/`rejected` (HuggingFaceH4/ultrafeedback_binarized's layout): the repeated
    messages become the prompt, so the user's turn is not rendered twice. Responses that
    start with an assistant message are completions and are left as they are."""
    chosen, rejected, prompt = fields["chosen"], fields["rejected"], fields["prompt"]
    if not isinstance(chosen, list) or not isinstance(rejected, list):
        return {}
    if chosen[0].get("role") == "assistant" or chosen[0] != rejected[0]:
        return {}
    split = _split_implicit_prompt(chosen, rejected, path, where)
    head = split["prompt"]
    assert isinstance(head, list)
    last_user = next((m for m in reversed(head) if m.get("role") == "user"), None)
    if prompt == head or (last_user is not None and prompt == message_text(last_user)):
        return split
    raise DataError(
        f"{where}: 'chosen' and 'rejected' start with the same conversation, which does not "
        "end with the 'prompt'; give either the prompt with the responses alone, or whole "
        "conversations without a 'prompt' field",
        path,
    )


def _split_implicit_prompt(
    chosen: Text, rejected: Text, path: str | Path, where: str
) -> dict[str, Text]:
    """An implicit-prompt row's (prompt, chosen, rejected): the messages both conversations
    start with are the prompt, the rest of each its response (TRL's `extract_prompt`)."""
    if not isinstance(chosen, list) or not isinstance(rejected, list):
        raise DataError(
            f"{where} has no 'prompt' field, so 'chosen' and 'rejected' must be whole "
            "conversations (lists of chat messages) that start with the same prompt",
            path,
        )
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    if shared == 0 or shared == len(chosen) or shared == len(rejected):
        raise DataError(
            f"{where} has no 'prompt' field and its 'chosen' and 'rejected' conversations "
            f"{'share no first message' if shared == 0 else 'leave one of them no response'};"
            " give the prompt in a 'prompt' field",
            path,
        )
    return {"prompt": chosen[:shared], "chosen": chosen[shared:], "rejected": rejected[shared:]}


def _trl_rows(tokenizer: PreTrainedTokenizerBase, rows: list[dict[str, Any]]) -> list[dict]:
    """Rows in TRL's explicit-prompt preference layout, formatted by `format_pair`: all
    conversational when the tokenizer has a chat template, all plain text otherwise (TRL
    decides how to tokenise a whole dataset from its first row)."""
    out = []
    for row in rows:
        head, chosen = format_pair(tokenizer, row["prompt"], row["chosen"])
        _, rejected = format_pair(tokenizer, row["prompt"], row["rejected"])
        trl_row = {"prompt": head, "chosen": chosen, "rejected": rejected}
        if "margin" in row:
            trl_row["margin"] = row["margin"]
        out.append(trl_row)
    return out


def _corpus(rows: list[dict[str, Any]]) -> list[str]:
    """Texts to train a fresh tiny model's tokenizer on."""
    texts = [SEPARATOR]
    for row in rows:
        texts.extend(as_text(row[key]) for key in ("prompt", "chosen", "rejected"))
    return texts


# --- training ----------------------------------------------------------------------------------


@contextmanager
def quiet_training() -> Iterator[None]:
    """No per-call progress bars (datasets' map/filter, transformers' load/save) and no
    known-harmless warnings, so the training bar is the only thing drawn; state restored after."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets_bars, hf_bars = (
        datasets.is_progress_bar_enabled(),
        hf_logging.is_progress_bar_enabled(),
    )
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            # TRL still passes transformers' old `gradient_checkpointing` name.
            warnings.filterwarnings("ignore", "`gradient_checkpointing` is deprecated")
            yield
    finally:
        if datasets_bars:
            datasets.enable_progress_bars()
        if hf_bars:
            hf_logging.enable_progress_bar()


_METRIC_NAMES = {
    "loss": "rm_loss",
    "accuracy": "rm_train_accuracy",
    "margin": "rm_margin",
    "mean_reward": "rm_mean_reward",
    "learning_rate": "learning_rate",
    "eval_loss": "rm_eval_loss",
    "eval_accuracy": "rm_eval_accuracy",
}
"""TRL's log keys -> the run's metric names (prefixed: a recipe's run may also hold RL metrics)."""


def _callbacks(run: Run | None) -> list[Any]:
    from transformers import TrainerCallback
    from transformers.trainer_callback import ProgressCallback

    class QuietProgress(ProgressCallback):
        """The training bar alone: no printed log dicts, no extra bar per evaluation."""

        def on_log(self, *args: Any, **kwargs: Any) -> None:
            pass

        def on_prediction_step(self, *args: Any, **kwargs: Any) -> None:
            pass

    class RunLogger(TrainerCallback):
        """Stream TRL's logs into the run's metrics.jsonl as they happen."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            record = {new: logs[old] for old, new in _METRIC_NAMES.items() if old in (logs or {})}
            if run is not None and record:
                run.log(state.global_step, **record)

    return [QuietProgress(), RunLogger()]


def _reward_config(
    config: RewardModelConfig, total_steps: int, evaluate: bool, output_dir: str | Path
) -> Any:
    import torch
    from trl import RewardConfig

    from posttrain.tracking import trl_report_to

    log_every = max(1, total_steps // 20)  # about 20 points on the loss curve
    return RewardConfig(
        output_dir=str(output_dir),
        max_steps=config.steps or -1,
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        weight_decay=0.0,
        max_length=config.max_length,
        center_rewards_coefficient=config.center_rewards_coefficient,
        logging_steps=log_every,
        eval_strategy="steps" if evaluate else "no",
        eval_steps=log_every * 5,
        save_strategy="no",
        report_to=trl_report_to(config.report_to),
        # Recomputing activations only costs time for models this small.
        gradient_checkpointing=False,
        # bf16 where a GPU supports it; otherwise plain fp32 on the CPU.
        bf16=torch.cuda.is_available() and torch.cuda.is_bf16_supported(),
        use_cpu=not torch.cuda.is_available(),
        seed=config.seed,
        data_seed=config.seed,
        model_init_kwargs={"dtype": torch.float32},
    )


def build_reward_trainer(
    config: RewardModelConfig,
    model_dir: str | Path,
    rows: list[dict[str, Any]],
    eval_rows: list[dict[str, Any]] | None = None,
    output_dir: str | Path | None = None,
    run: Run | None = None,
) -> RewardTrainer:
    """A TRL RewardTrainer over `rows` (from `load_preferences`), starting from `model_dir`.

    TRL does all the preprocessing (EOS, prompt + response, tokenising, the max_length
    filter); we only hand it rows formatted by `format_pair`, which scoring shares.
    """
    from datasets import Dataset
    from transformers import AutoTokenizer
    from transformers.trainer_callback import ProgressCallback
    from trl import RewardTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if not config.margin:  # TRL subtracts a `margin` column whenever one is present
        rows = [{k: v for k, v in row.items() if k != "margin"} for row in rows]
    train_set = Dataset.from_list(_trl_rows(tokenizer, rows))
    eval_set = Dataset.from_list(_trl_rows(tokenizer, eval_rows)) if eval_rows else None
    total = config.steps or math.ceil(len(train_set) / config.batch_size * config.epochs)
    output_dir = output_dir or Path(config.output_dir) / "trainer"
    with quiet_training():
        args = _reward_config(config, total, eval_set is not None, output_dir)
        trainer = RewardTrainer(
            model=str(model_dir),  # a path: TRL puts a 1-label head on a causal-LM checkpoint
            args=args,
            train_dataset=train_set,
            eval_dataset=eval_set,
            processing_class=tokenizer,
        )
    trainer.remove_callback(ProgressCallback)
    for callback in _callbacks(run):
        trainer.add_callback(callback)
    if len(trainer.train_dataset) == 0:
        raise ValueError(
            f"all {len(rows)} training pairs are longer than max_length={config.max_length} tokens"
        )
    return trainer


def train_reward_model(config: RewardModelConfig, run: Run | None = None) -> Path:
    """Train a Bradley–Terry reward model; return `output_dir/final` (model + tokenizer).

    `final/reward_model.json` records the config, step count, time and final eval metrics.
    """
    if config.train_file is None:
        raise ValueError("train_file is required: a JSONL of prompt, chosen, rejected rows")
    rows = load_preferences(config.train_file, config.margin)
    eval_rows = load_preferences(config.eval_file, config.margin) if config.eval_file else None
    out = Path(config.output_dir)
    final, scratch = out / "final", out / "trainer"
    with quiet_training():
        base: str | Path | None = config.model
        if base is None:
            from posttrain.models.tiny import build_tiny_model

            base = build_tiny_model(
                out / "base",
                _corpus(rows),
                size=config.model_size,
                vocab_size=config.vocab_size,
                kind="seq-cls",
                seed=config.seed,
            )
        started = time.perf_counter()
        trainer = build_reward_trainer(config, base, rows, eval_rows, scratch, run)
        trainer.train()
        seconds = time.perf_counter() - started
        summary: dict[str, Any] = {
            "train_seconds": round(seconds, 2),
            "steps": trainer.state.global_step,
            "n_train": len(rows),
            "n_train_kept": len(trainer.train_dataset),
            "config": to_dict(config),
        }
        if eval_rows:
            summary.update(_final_eval(trainer))
        shutil.rmtree(final, ignore_errors=True)
        trainer.save_model(str(final))
        trainer.processing_class.save_pretrained(final)
    # Written last, after the weights are durable: stages trust a model that has it.
    atomic.mark_complete(final, "reward_model.json", json.dumps(summary, indent=2))
    shutil.rmtree(scratch, ignore_errors=True)
    if config.model is None:
        shutil.rmtree(out / "base", ignore_errors=True)
    if run is not None:
        run.link_checkpoint(final)
        run.log(trainer.state.global_step, rm_train_seconds=summary["train_seconds"])
    return final


def _final_eval(trainer: RewardTrainer) -> dict[str, float]:
    """Eval metrics after the last step, evaluating again only if the schedule did not."""
    step = trainer.state.global_step
    done = [e for e in trainer.state.log_history if e.get("step") == step and "eval_loss" in e]
    metrics = done[-1] if done else trainer.evaluate()
    return {k: metrics[k] for k in ("eval_loss", "eval_accuracy") if k in metrics}


# --- scoring -----------------------------------------------------------------------------------


@runtime_checkable
class Scorer(Protocol):
    """Anything that scores (prompt, response) pairs: RewardModel, HTTPRewardModel, a stub."""

    def score(self, prompts: Sequence[Text], responses: Sequence[Text]) -> list[float]: ...


def check_pairs(prompts: Sequence[Any], responses: Sequence[Any]) -> None:
    """Refuse prompt and response lists of different lengths, naming both."""
    if len(prompts) != len(responses):
        raise ValueError(
            f"prompts has {len(prompts)} items but responses has {len(responses)}; "
            "they must be the same length"
        )


DTYPES = ("auto", "float32", "bfloat16", "float16")
"""`torch_dtype` choices; auto is the checkpoint's own dtype on a GPU and float32 on the CPU."""


def resolve_device(device: str | None) -> torch.device:
    """`device` as a torch device; None or "auto" is cuda when available, else the CPU."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"device {device!r} is not a torch device (cpu, cuda, cuda:1, ...)"
        ) from err


def resolve_dtype(torch_dtype: str, device: torch.device) -> Any:
    """The `dtype` to load weights in: a named one, or for auto the checkpoint's (transformers'
    "auto") on an accelerator and float32 on the CPU, where half precision is slow and lossy."""
    import torch

    if torch_dtype not in DTYPES:
        raise ValueError(f"torch_dtype must be one of {list(DTYPES)}, got {torch_dtype!r}")
    if torch_dtype == "auto":
        return torch.float32 if device.type == "cpu" else "auto"
    return getattr(torch, torch_dtype)


def load_classifier(
    model_dir: str | Path, device: torch.device, torch_dtype: str = "auto", **extra: Any
) -> tuple[PreTrainedTokenizerBase, Any]:
    """Tokenizer and sequence classifier of `model_dir`, on `device`, in eval mode, with a pad
    id the classifier knows (as RewardTrainer sets it: EOS pads when there is no pad token,
    and the classifier finds each row's last real token by it)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from posttrain.models.model_dir import require_model_dir

    require_model_dir(model_dir)
    dtype = resolve_dtype(torch_dtype, device)
    with quiet_training():
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=dtype, **extra)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.get_text_config().pad_token_id = tokenizer.pad_token_id
    return tokenizer, model.to(device).eval()


MODEL_OPTIONS = {"torch_dtype": str, "device": str, "batch_size": int, "max_length": int}
"""Options a reward-model spec may carry after `?` (`DIR?torch_dtype=bfloat16&device=cuda:1`)."""


def parse_model_options(query: str, spec: str) -> dict[str, Any]:
    """The `key=value&...` after a reward-model directory's `?` (`posttrain.specs` splits it
    off) as keyword arguments for `RewardModel` / `OrdinalRewardModel`, checked against
    `MODEL_OPTIONS` ("" -> none); errors quote `spec`, the whole spec they came from. A URL's
    query is never parsed: a server has its own settings."""
    if not query:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ValueError(
            f"reward model {spec!r}: options must read key=value&key=value after '?'"
        ) from None
    options: dict[str, Any] = {}
    for key, value in pairs:
        if key not in MODEL_OPTIONS:
            raise ValueError(
                f"reward model {spec!r}: unknown option {key!r}; "
                f"choose from {', '.join(MODEL_OPTIONS)}"
            )
        try:
            options[key] = MODEL_OPTIONS[key](value)
        except ValueError:
            raise ValueError(
                f"reward model {spec!r}: {key} must be an integer, got {value!r}"
            ) from None
    if "torch_dtype" in options and options["torch_dtype"] not in DTYPES:
        raise ValueError(
            f"reward model {spec!r}: torch_dtype must be one of {list(DTYPES)}, "
            f"got {options['torch_dtype']!r}"
        )
    return options


class RewardModel:
    """A trained reward model directory, scoring (prompt, response) pairs in batches.

    Batches are right-padded, as TRL's collator pads them: with causal attention the padding
    comes after every real token, so a row's score does not depend on its batch-mates.
    `torch_dtype` (one of `DTYPES`) and `device` choose how the weights are loaded; a real
    checkpoint usually runs in bfloat16 on a GPU.
    """

    def __init__(
        self,
        model_dir: str | Path,
        batch_size: int = 16,
        max_length: int | None = None,
        device: str | None = None,
        torch_dtype: str = "auto",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model_dir = Path(model_dir)
        self.name = self.model_dir.name
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.tokenizer, self.model = load_classifier(model_dir, self.device, torch_dtype)
        if self.model.config.num_labels != 1:
            raise ValueError(
                f"{model_dir}: a reward model has num_labels=1, this one has "
                f"{self.model.config.num_labels}"
            )
        warn_if_plain(self.tokenizer, model_dir)
        limits = [self.tokenizer.model_max_length]
        limits.append(getattr(self.model.config, "max_position_embeddings", None) or limits[0])
        self.max_length = max_length or int(min(limits))

    def encode(self, prompt: Text, response: Text) -> list[int]:
        """Token ids as trained on (the chat template's rendering of the whole conversation,
        when the tokenizer has one), keeping the last `max_length` (the score reads the end)."""
        return encode(self.tokenizer, prompt, response)[-self.max_length :]

    def score(self, prompts: Sequence[Text], responses: Sequence[Text]) -> list[float]:
        """One scalar reward per (prompt, response); plain strings or chat-message lists."""
        check_pairs(prompts, responses)
        ids = [self.encode(p, r) for p, r in zip(prompts, responses, strict=True)]
        logits = batched_logits(
            self.model, ids, self.batch_size, self.tokenizer.pad_token_id, self.device
        )
        return [float(v) for v in logits[:, 0]]


def right_padded(ids: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and mask: with causal attention, padding after the last real token
    never changes that token's logits, so a score does not depend on its batch-mates."""
    import torch

    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = torch.tensor(x)
        mask[row, : len(x)] = 1
    return input_ids, mask


def batched_logits(
    model: Any, ids: list[list[int]], batch_size: int, pad: int, device: Any
) -> torch.Tensor:
    """A sequence classifier's logits (n, num_labels) for token-id rows, in input order, on
    the CPU; similar lengths share a batch (less padding, and padding changes no score)."""
    import torch

    result = torch.zeros((len(ids), model.config.num_labels))
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            input_ids, mask = right_padded([ids[i] for i in batch], pad)
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
            result[batch] = logits.float().cpu()
    return result


# --- as a reward function ----------------------------------------------------------------------


def as_pair_item(value: Any) -> Text:
    """A TRL prompt or completion as the scorer takes it: a string, or the message list whole
    (history, system prompt, tool turns) as a list, also when it arrives as a tuple or an
    array (verl's parquet columns); anything else is refused with its type."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict) and hasattr(value, "__iter__"):
        messages = list(value)
        if is_messages(messages):
            return messages
    raise TypeError(
        f"a prompt or completion must be a string or a list of chat messages "
        f"(dicts with 'role' and 'content'), got {type(value).__name__}"
    )


def reward_model_reward(scorer: Scorer, name: str = "reward_model") -> RewardFunc:
    """A TRL-signature reward function scoring each (prompt, completion) with `scorer`.

    The scorer gets whole conversations: TRL's conversational prompts keep their history and
    system message, and a conversational completion all its messages. Not registered by name:
    a reward model is an instance (a directory or a server), so callers build one and pass the
    callable to the RL engine or TRL's GRPOTrainer.
    """
    if not isinstance(scorer, Scorer):
        raise TypeError(f"scorer must have a score(prompts, responses) method, got {scorer!r}")
    if not name or not isinstance(name, str):
        raise ValueError(f"reward name must be a non-empty string, got {name!r}")

    def reward(
        prompts: list[Any], completions: list[Any], completion_ids: Any = None, **columns: Any
    ) -> list[float | None]:
        check_pairs(prompts, completions)
        if not completions:
            return []
        heads = [as_pair_item(p) for p in prompts]
        tails = [as_pair_item(c) for c in completions]
        return [float(s) for s in scorer.score(heads, tails)]

    reward.__name__ = reward.__qualname__ = name  # TRL logs rewards under __name__
    return reward
