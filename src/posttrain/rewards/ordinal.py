"""Ordinal reward models (WildReward): rewards from graded user feedback, not preference pairs.

Each item is (history + user message, assistant reply) with a label y in 1..K. The model puts
K-1 threshold logits z_k on a sequence classifier and trains them with binary cross-entropy
on the targets [y > 1, ..., y > K-1]; the reward is the expected label 1 + sum_k sigmoid(z_k).
Heads:

- `thresholds` (WildReward): K-1 independent logits, a K-1-output classifier plus free biases;
- `coral` (CORAL): one shared score s plus ordered biases, z_k = s + b_k with
  b_1 >= b_2 >= ... (cumulative negative softplus), so the thresholds can never cross;
- `regression` (a baseline): one output trained with MSE on y.

The Bradley–Terry baseline needs no code here beyond `pairs_from_labels`, which turns labelled
items into preference rows for `posttrain.rewards.reward_model.train_reward_model`.
Text goes through the same `format_pair` / `encode` path as the Bradley–Terry model: the
tokenizer's chat template over the whole conversation when it has one (plain-string prompts and
responses become user and assistant messages), in training and scoring alike.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from posttrain import atomic
from posttrain.config import to_dict
from posttrain.data.io import read_records
from posttrain.rewards.reward_model import (
    SEPARATOR,
    Scorer,
    Text,
    as_text,
    batched_logits,
    check_pairs,
    check_training_fields,
    encode,
    is_messages,
    load_classifier,
    message_text,
    quiet_training,
    resolve_device,
    right_padded,
    warn_if_plain,
)
from posttrain.runs import Run

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

HEADS = ("thresholds", "coral", "regression")
"""Ordinal heads: WildReward's independent thresholds, CORAL, and the MSE regression baseline."""

META_FILE = "ordinal.json"
"""Written next to the weights: K, the head, its biases and the max_length trained with."""


@dataclass
class OrdinalRewardConfig:
    """How to train an ordinal reward model. Defaults are the CPU default (a tiny model)."""

    model: str | None = None
    """A sequence-classification (or causal-LM) model directory to start from; its head is
    replaced by one with the outputs `head` needs. None builds a fresh tiny seq-cls model with
    a tokenizer trained on the rows."""
    model_size: str = "micro"
    """Tiny model size when `model` is None: nano, micro, mini or small."""
    vocab_size: int = 512
    """Tokenizer vocabulary when a fresh tiny model is built."""
    train_file: str | None = None
    """JSONL/parquet/dataset of labelled rows: `history` + `messages` (user then assistant) or
    `prompt` + `response`, and an integer `label` in 1..num_levels."""
    head: str = "thresholds"
    """thresholds (WildReward), coral (shared score + ordered biases) or regression (MSE)."""
    num_levels: int = 4
    """K, the number of ordered labels (WildReward: 4, from a 5-level scale without neutral)."""
    steps: int | None = None
    """Optimizer steps; None trains for `epochs` passes over the rows."""
    epochs: float = 1.0
    """Passes over the rows when `steps` is None."""
    batch_size: int = 16
    """Items per optimizer step."""
    learning_rate: float = 1e-3
    """Suits a tiny model trained from scratch; use about 1e-5 for a pretrained checkpoint."""
    max_length: int = 256
    """Token limit per item: longer items keep their last tokens (the classifier reads the last
    one), in training and in scoring alike, so long histories lose their start, not the reply."""
    seed: int = 0
    """Seeds the tiny model, the new head's initialisation and the data order."""
    output_dir: str = "outputs/ordinal-reward-model"
    """The trained model goes to `output_dir/final`."""

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {list(HEADS)}, got {self.head!r}")
        if isinstance(self.num_levels, bool) or self.num_levels < 2:
            raise ValueError(f"num_levels must be at least 2, got {self.num_levels!r}")
        check_training_fields(self)


def num_outputs(head: str, num_levels: int) -> int:
    """Classifier outputs a head needs: K-1 for thresholds, one shared score otherwise."""
    if head not in HEADS:
        raise ValueError(f"head must be one of {list(HEADS)}, got {head!r}")
    return num_levels - 1 if head == "thresholds" else 1


# --- rows --------------------------------------------------------------------------------------


def row_pair(row: Mapping[str, Any]) -> tuple[Text, Text]:
    """(prompt, response) of a labelled row: history + messages[:-1], and the final reply.

    WildReward rows carry `history` (earlier turns) and `messages` ([user, assistant]); rows
    with `prompt` and `response` (strings or messages) are taken as they are.
    """
    if "messages" in row:
        messages = row["messages"]
        if not is_messages(messages) or not messages:
            raise ValueError("'messages' must be a non-empty list of chat messages")
        if messages[-1].get("role") != "assistant":
            raise ValueError(
                f"the last message must be the assistant's reply, got role "
                f"{messages[-1].get('role')!r}"
            )
        history = row.get("history") or []
        if not is_messages(history):
            raise ValueError("'history' must be a list of chat messages")
        prompt = [*history, *messages[:-1]]
        if not prompt:
            raise ValueError("no prompt: 'history' and 'messages' hold only the reply")
        return prompt, [messages[-1]]
    if "prompt" in row and "response" in row:
        for key in ("prompt", "response"):
            if not isinstance(row[key], str) and not is_messages(row[key]):
                raise ValueError(f"{key!r} must be a string or a list of chat messages")
        return row["prompt"], row["response"]
    raise ValueError("a row needs 'messages' (+ 'history') or 'prompt' and 'response'")


def row_label(row: Mapping[str, Any], num_levels: int) -> int:
    """The row's integer label, refused unless it lies in 1..num_levels."""
    label = row.get("label")
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    if isinstance(label, bool) or not isinstance(label, int) or not 1 <= label <= num_levels:
        raise ValueError(f"'label' must be an integer in 1..{num_levels}, got {label!r}")
    return label


def check_rows(rows: Sequence[Mapping[str, Any]], num_levels: int, source: str = "rows") -> None:
    """Refuse rows without a usable (prompt, response) or label, naming the row."""
    if not rows:
        raise ValueError(f"{source}: no labelled rows")
    for number, row in enumerate(rows, start=1):
        try:
            row_pair(row)
            row_label(row, num_levels)
        except ValueError as err:
            raise ValueError(f"{source}: row {number}: {err}") from None


def load_ordinal_rows(path: str | Path, num_levels: int = 4) -> list[dict[str, Any]]:
    """Labelled rows from `path` (JSONL, parquet or a datasets directory), checked."""
    rows = read_records(path)
    check_rows(rows, num_levels, str(path))
    return rows


def ordinal_corpus(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Texts to train a fresh tiny model's tokenizer on (every message of every row)."""
    texts = [SEPARATOR]
    for row in rows:
        prompt, response = row_pair(row)
        texts.extend([as_text(prompt), as_text(response)])
    return texts


# --- the head ----------------------------------------------------------------------------------


def threshold_targets(labels: torch.Tensor, num_levels: int) -> torch.Tensor:
    """[y > 1, ..., y > K-1] as floats, shape (n, K-1)."""
    import torch

    ks = torch.arange(1, num_levels, device=labels.device)
    return (labels.unsqueeze(-1) > ks).float()


def ordinal_loss(logits: torch.Tensor, labels: torch.Tensor, num_levels: int) -> torch.Tensor:
    """Mean binary cross-entropy over items and thresholds (WildReward's and CORAL's loss)."""
    import torch

    targets = threshold_targets(labels, num_levels)
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)


def expected_label(logits: torch.Tensor) -> torch.Tensor:
    """The reward: 1 + sum_k sigmoid(z_k), the expected label when each z_k = logit P(y > k)."""
    return 1 + logits.sigmoid().sum(-1)


def label_distribution(threshold_probs: Any) -> np.ndarray:
    """P(y = k) for k in 1..K from P(y > k): successive differences. Independent thresholds
    can cross (P(y>2) > P(y>1)); the negative mass that gives is clipped and the rest
    renormalised, so each row is a distribution."""
    p = np.asarray(threshold_probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"threshold probabilities must be 2-dimensional, got shape {p.shape}")
    ones, zeros = np.ones((len(p), 1)), np.zeros((len(p), 1))
    mass = np.clip(np.hstack([ones, p]) - np.hstack([p, zeros]), 0.0, None)
    return mass / mass.sum(axis=1, keepdims=True)


def coral_biases(raw: torch.Tensor) -> torch.Tensor:
    """Ordered biases b_1 >= b_2 >= ... from free parameters: b_1 = raw_1 and each next one
    steps down by softplus(raw_k), so no update can make two thresholds cross."""
    import torch

    steps = -torch.nn.functional.softplus(raw[1:])
    return torch.cat([raw[:1], raw[:1] + torch.cumsum(steps, 0)])


def head_outputs(logits: torch.Tensor, head: str, biases: torch.Tensor) -> torch.Tensor:
    """Threshold logits z (n, K-1) from classifier logits, or the regression value (n,)."""
    if head == "thresholds":
        return logits + biases
    if head == "coral":
        return logits[:, :1] + biases
    return logits[:, 0] + biases[0]


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


def _initial_biases(labels: Sequence[int], head: str, num_levels: int) -> list[float]:
    """Start at the training prior (logit of P(y > k), or the mean label): the backbone then
    learns what distinguishes items instead of first spending steps on the label frequencies."""
    if head == "regression":
        return [sum(labels) / len(labels)]
    priors = [sum(y > k for y in labels) / len(labels) for k in range(1, num_levels)]
    logits = [math.log(p / (1 - p)) for p in (min(max(p, 0.01), 0.99) for p in priors)]
    if head == "thresholds":
        return logits
    gaps = [max(a - b, 1e-2) for a, b in zip(logits, logits[1:], strict=False)]
    return [logits[0], *(_inverse_softplus(g) for g in gaps)]  # coral's raw parameters


def _ordinal_module(backbone: PreTrainedModel, head: str, initial: list[float]) -> Any:
    import torch

    class OrdinalHead(torch.nn.Module):
        """The backbone plus the head's biases (free for thresholds, ordered for CORAL)."""

        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            self.raw = torch.nn.Parameter(torch.tensor(initial, dtype=torch.float32))

        def biases(self) -> torch.Tensor:
            return coral_biases(self.raw) if head == "coral" else self.raw

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            logits = self.backbone(input_ids=input_ids, attention_mask=attention_mask).logits
            return head_outputs(logits, head, self.biases())

    return OrdinalHead()


# --- loading -----------------------------------------------------------------------------------


@contextmanager
def _errors_only() -> Iterator[None]:
    """Silence transformers' notes about the head it re-initialises (that is the point)."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)


def _load(
    model_dir: str | Path,
    num_labels: int | None = None,
    device: str | None = "cpu",
    torch_dtype: str = "float32",
) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """Tokenizer and classifier; `num_labels` replaces the head when its size differs."""
    extra: dict[str, Any] = {}
    if num_labels is not None:
        extra = {"num_labels": num_labels, "ignore_mismatched_sizes": True}
    with _errors_only():
        return load_classifier(model_dir, resolve_device(device), torch_dtype, **extra)


def _context_limit(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel) -> int:
    limits = [tokenizer.model_max_length]
    limits.append(getattr(model.config, "max_position_embeddings", None) or limits[0])
    return int(min(limits))


# --- training ----------------------------------------------------------------------------------


def _batch_orders(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """One epoch of batches: shuffled, then sorted by length within chunks of 16 batches, so
    batches pad little (CPU time is mostly padding otherwise) yet stay randomly composed."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * 16
    batches = []
    for start in range(0, len(order), chunk):
        group = sorted(order[start : start + chunk], key=lengths.__getitem__)
        batches.extend(group[i : i + batch_size] for i in range(0, len(group), batch_size))
    rng.shuffle(batches)
    return batches


def train_ordinal_reward_model(
    config: OrdinalRewardConfig,
    run: Run | None = None,
    rows: Sequence[Mapping[str, Any]] | None = None,
) -> Path:
    """Train an ordinal (or regression) reward model; return `output_dir/final`.

    A plain PyTorch loop rather than TRL's RewardTrainer: that trainer is pairwise (its
    batches are chosen/rejected pairs and its loss -log sigmoid(r_c - r_r)), while here each
    item stands alone with a label. `rows` (already loaded) replaces `train_file`. The run
    gets `ordinal_loss` and `learning_rate` about 20 times, and `ordinal_train_seconds`;
    `final/ordinal.json` holds what `OrdinalRewardModel` needs plus a training summary.
    """
    import torch

    if rows is None:
        if config.train_file is None:
            raise ValueError("train_file is required: labelled rows (messages or prompt/response)")
        rows = load_ordinal_rows(config.train_file, config.num_levels)
    else:
        check_rows(rows, config.num_levels)
    k = config.num_levels
    labels = [row_label(r, k) for r in rows]
    out = Path(config.output_dir)
    final = out / "final"
    base: str | Path | None = config.model
    if base is None:
        from posttrain.models.tiny import build_tiny_model

        with quiet_training():
            base = build_tiny_model(
                out / "base",
                ordinal_corpus(rows),
                size=config.model_size,
                vocab_size=config.vocab_size,
                kind="seq-cls",
                seed=config.seed,
            )
    torch.manual_seed(config.seed)  # the replaced head's initialisation
    tokenizer, backbone = _load(base, num_outputs(config.head, k))
    if config.head == "thresholds":
        backbone.config.id2label = {i: f"y>{i + 1}" for i in range(k - 1)}
        backbone.config.label2id = {v: i for i, v in backbone.config.id2label.items()}
    max_length = min(config.max_length, _context_limit(tokenizer, backbone))
    ids = [encode(tokenizer, *row_pair(r))[-max_length:] for r in rows]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    module = _ordinal_module(backbone, config.head, _initial_biases(labels, config.head, k))
    module.to(device).train()
    target = torch.tensor(labels, dtype=torch.float32)

    total = config.steps or max(1, math.ceil(len(rows) / config.batch_size * config.epochs))
    optimizer = torch.optim.AdamW(module.parameters(), lr=config.learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 - s / total)
    log_every = max(1, total // 20)
    rng = random.Random(config.seed)
    step, window, last_loss = 0, [], float("nan")
    started = time.perf_counter()
    while step < total:
        for batch in _batch_orders([len(x) for x in ids], config.batch_size, rng):
            input_ids, mask = right_padded([ids[i] for i in batch], tokenizer.pad_token_id)
            y = target[batch].to(device)
            outputs = module(input_ids.to(device), mask.to(device))
            if config.head == "regression":
                loss = torch.nn.functional.mse_loss(outputs, y)
            else:
                loss = ordinal_loss(outputs, y, k)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            window.append(loss.item())
            if step % log_every == 0 or step == total:
                last_loss = sum(window) / len(window)
                if run is not None:
                    rate = optimizer.param_groups[0]["lr"]
                    run.log(step, ordinal_loss=last_loss, learning_rate=rate)
                window = []
            if step == total:
                break
    seconds = time.perf_counter() - started

    with torch.no_grad():
        biases = [float(b) for b in module.biases()]
    meta = {
        "num_levels": k,
        "head": config.head,
        "biases": biases,
        "max_length": max_length,
        "train": {
            "train_seconds": round(seconds, 2),
            "steps": step,
            "n_train": len(rows),
            "label_counts": {str(y): labels.count(y) for y in range(1, k + 1)},
            "final_loss": last_loss,
            "config": to_dict(config),
        },
    }
    shutil.rmtree(final, ignore_errors=True)
    with quiet_training():
        backbone.cpu().save_pretrained(final)
        tokenizer.save_pretrained(final)
    # Written last, after the weights are durable: stages trust a model that has it.
    atomic.mark_complete(final, META_FILE, json.dumps(meta, indent=2))
    if config.model is None:
        shutil.rmtree(out / "base", ignore_errors=True)
    if run is not None:
        run.link_checkpoint(final)
        run.log(step, ordinal_train_seconds=meta["train"]["train_seconds"])
    return final


# --- scoring -----------------------------------------------------------------------------------


class OrdinalRewardModel:
    """A trained ordinal (or regression) reward model directory, scoring in batches.

    `score` returns the expected label (a `Scorer`, so `reward_model_reward` takes it);
    `predict` adds threshold probabilities and the most likely label per row. `torch_dtype`
    and `device` as for `RewardModel`.
    """

    def __init__(
        self,
        model_dir: str | Path,
        batch_size: int = 16,
        max_length: int | None = None,
        device: str | None = None,
        torch_dtype: str = "auto",
    ) -> None:
        import torch

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model_dir = Path(model_dir)
        meta_path = self.model_dir / META_FILE
        if not meta_path.is_file():
            raise ValueError(
                f"{model_dir}: no {META_FILE}, so not an ordinal reward model (a Bradley–Terry "
                "model loads with posttrain.rewards.reward_model.RewardModel)"
            )
        meta = json.loads(meta_path.read_text())
        self.name = self.model_dir.name
        self.head: str = meta["head"]
        self.num_levels: int = int(meta["num_levels"])
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.tokenizer, self.model = _load(model_dir, None, str(self.device), torch_dtype)
        expected = num_outputs(self.head, self.num_levels)
        if self.model.config.num_labels != expected:
            raise ValueError(
                f"{model_dir}: head {self.head!r} with {self.num_levels} levels needs "
                f"num_labels={expected}, the model has {self.model.config.num_labels}"
            )
        self.biases = torch.tensor(meta["biases"], dtype=torch.float32)  # applied on the CPU
        warn_if_plain(self.tokenizer, model_dir)
        # The trained length by default, so a score is the number training optimised.
        limit = _context_limit(self.tokenizer, self.model)
        self.max_length = min(max_length or meta.get("max_length") or limit, limit)

    def encode(self, prompt: Text, response: Text) -> list[int]:
        """Token ids as trained on, keeping the last `max_length` (the score reads the end)."""
        return encode(self.tokenizer, prompt, response)[-self.max_length :]

    def outputs(self, prompts: Sequence[Text], responses: Sequence[Text]) -> torch.Tensor:
        """Threshold logits z, shape (n, K-1), or the regression value, shape (n,); on CPU."""
        check_pairs(prompts, responses)
        ids = [self.encode(p, r) for p, r in zip(prompts, responses, strict=True)]
        logits = batched_logits(
            self.model, ids, self.batch_size, self.tokenizer.pad_token_id, self.device
        )
        return head_outputs(logits, self.head, self.biases)

    def score(self, prompts: Sequence[Text], responses: Sequence[Text]) -> list[float]:
        """The expected label per (prompt, response) (regression: the predicted value)."""
        values = self.outputs(prompts, responses)
        if self.head != "regression":
            values = expected_label(values)
        return [float(v) for v in values]

    def predict(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Per row: `score`, `expected_label` (in 1..K), `label` (the most likely one),
        `threshold_probs` [P(y>1), ...] and `label_probs` (None for the regression head)."""
        pairs = [row_pair(r) for r in rows]
        values = self.outputs([p for p, _ in pairs], [r for _, r in pairs])
        k = self.num_levels
        if self.head == "regression":
            return [
                {
                    "score": float(v),
                    "expected_label": min(max(float(v), 1.0), float(k)),
                    "label": int(min(max(round(float(v)), 1), k)),
                    "threshold_probs": None,
                    "label_probs": None,
                }
                for v in values
            ]
        probs = values.sigmoid()
        distribution = label_distribution(probs.numpy())
        return [
            {
                "score": float(1 + p.sum()),
                "expected_label": float(1 + p.sum()),
                "label": int(d.argmax()) + 1,
                "threshold_probs": [float(x) for x in p],
                "label_probs": [float(x) for x in d],
            }
            for p, d in zip(probs, distribution, strict=True)
        ]


# --- the Bradley–Terry baseline's data --------------------------------------------------------


def conversation_text(prompt: Text, response: Text) -> str:
    """One item as role-tagged plain text ("user: ...\\n\\nassistant: ...")."""
    parts = []
    for value, role in ((prompt, "user"), (response, "assistant")):
        if isinstance(value, list):
            parts.extend(f"{m.get('role', role)}: {message_text(m)}" for m in value)
        else:
            parts.append(f"{role}: {value}")
    return SEPARATOR.join(parts)


def pairs_from_labels(
    rows: Sequence[Mapping[str, Any]],
    seed: int = 0,
    max_pairs_per_prompt_group: int = 4,
    pairs_per_item: int = 1,
    num_levels: int = 4,
) -> list[dict[str, Any]]:
    """Preference rows for `train_reward_model` from labelled items: chosen = higher label.

    In-the-wild feedback rarely has two replies to one prompt, so besides pairs within a prompt
    group (rows sharing history + user message; at most `max_pairs_per_prompt_group` per
    group) each item is paired with `pairs_per_item` random items of a different label and a
    different prompt. A cross-item pair has no shared prompt, so each side is the whole
    conversation (`conversation_text`) with an empty `prompt`; score such a model through
    `WholeConversationScorer`, which feeds it exactly that text. Rows also carry `margin`
    (the label gap, for the margin loss), `pair` ("same-prompt" or "cross-item") and the
    item ids. Deterministic for a seed.
    """
    if max_pairs_per_prompt_group < 0 or pairs_per_item < 0:
        raise ValueError(
            "max_pairs_per_prompt_group and pairs_per_item must be >= 0, got "
            f"{max_pairs_per_prompt_group} and {pairs_per_item}"
        )
    check_rows(rows, num_levels)
    rng = random.Random(seed)
    texts, labels, keys = [], [], []
    groups: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        prompt, response = row_pair(row)
        texts.append(conversation_text(prompt, response))
        labels.append(row_label(row, num_levels))
        keys.append(json.dumps(prompt, sort_keys=True, ensure_ascii=False))
        groups.setdefault(keys[-1], []).append(index)
    ids = [row.get("id", index) for index, row in enumerate(rows)]
    seen: set[tuple[int, int]] = set()
    pairs: list[dict[str, Any]] = []

    def add(i: int, j: int, kind: str) -> bool:
        if labels[i] == labels[j] or (min(i, j), max(i, j)) in seen:
            return False
        seen.add((min(i, j), max(i, j)))
        hi, lo = (i, j) if labels[i] > labels[j] else (j, i)
        pairs.append(
            {
                "prompt": "",
                "chosen": texts[hi],
                "rejected": texts[lo],
                "margin": float(labels[hi] - labels[lo]),
                "pair": kind,
                "chosen_id": ids[hi],
                "rejected_id": ids[lo],
            }
        )
        return True

    for members in groups.values():
        within = [
            (a, b)
            for n, a in enumerate(members)
            for b in members[n + 1 :]
            if labels[a] != labels[b]
        ]
        rng.shuffle(within)
        for a, b in within[:max_pairs_per_prompt_group]:
            add(a, b, "same-prompt")

    by_label: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    order = list(range(len(rows)))
    rng.shuffle(order)
    for i in order:
        others = [y for y in sorted(by_label) if y != labels[i]]
        if not others:
            continue
        weights = [len(by_label[y]) for y in others]
        for _ in range(pairs_per_item):
            for _attempt in range(10):  # a few tries past duplicates and shared prompts
                j = rng.choice(by_label[rng.choices(others, weights)[0]])
                if keys[j] != keys[i] and add(i, j, "cross-item"):
                    break
    rng.shuffle(pairs)
    return pairs


class WholeConversationScorer:
    """Scores (prompt, response) with a reward model trained on `pairs_from_labels` rows:
    the model sees an empty prompt and the whole conversation as text, as in training."""

    def __init__(self, inner: Scorer) -> None:
        if not isinstance(inner, Scorer):
            raise TypeError(f"inner must have a score(prompts, responses) method, got {inner!r}")
        self.inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)

    def score(self, prompts: Sequence[Text], responses: Sequence[Text]) -> list[float]:
        check_pairs(prompts, responses)
        texts = [conversation_text(p, r) for p, r in zip(prompts, responses, strict=True)]
        return self.inner.score([""] * len(texts), texts)
