"""Per-sample pooled activations of any transformers causal LM at one layer (SAERL, issue 24 §1).

SAERL (Tsinghua, 2026) reads the policy's own residual stream at a middle layer, pools it over
each prompt and uses the pooled vector as the sample's data signal. `pooled_activations` does
that for any `AutoModelForCausalLM` directory (the tiny Qwen2 policies here, a downloaded
checkpoint unchanged):

- **Which activation.** `layer` L (0-based; negative counts from the end, -1 the last block) is
  the residual stream *after decoder block L*, read by a forward hook on that block: the
  block's raw output, before any final norm. It equals transformers'
  `output_hidden_states=True` entry `hidden_states[L + 1]` for every block but the last (whose
  `hidden_states[-1]` transformers replaces by the normed `last_hidden_state`). The forward
  stops right after block L, so a middle layer costs about half a forward.
- **Which tokens.** The prompt's real tokens only (the attention mask): `mean`, `last` (the
  last real token, where a causal model has read the whole prompt) or `max` (per dimension).
  Left and right padding both work: position ids are derived from the mask, so a prompt's
  vector does not depend on its batch mates.
- **Which text.** A string is encoded as it is; chat messages (a list of `{role, content}`)
  and dict rows (their `prompt` column: a string becomes one user message, as the RL engine
  renders it) go through the model's chat template with the generation prompt, so the
  activations are of exactly what the policy reads before it answers.
- **Cache.** With `cache_dir`, the result is stored under a key of the model directory's
  content (every file's bytes), the layer, the pooling, the dtype, the length limit and the
  rendered texts, so a rerun loads it without loading the model.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posttrain.atomic import write_bytes, write_text
from posttrain.errors import InputError
from posttrain.models.model_dir import require_model_dir

POOLINGS = ("mean", "last", "max")
CACHE_VERSION = 1
"""Bumped when what a cached array holds changes, so old entries are never reused."""


class _StopForward(Exception):
    """Raised by the hook after block L: the later blocks and the LM head are not needed."""


# --------------------------------------------------------------------------- inputs


def render_texts(tokenizer: Any, items: Sequence[Any], prompt_key: str = "prompt") -> list[str]:
    """The text the model reads for each item: strings as they are, chat messages (or a dict
    row's `prompt_key`, a bare string being one user message) through the chat template with
    the generation prompt. A bad item is an InputError naming its index."""
    texts = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            texts.append(item)
            continue
        if isinstance(item, Mapping):
            if prompt_key not in item:
                raise InputError(f"row {index} has no {prompt_key!r} column", key=prompt_key)
            item = item[prompt_key]
            if isinstance(item, str):
                item = [{"role": "user", "content": item}]
        if not isinstance(item, Sequence) or not all(isinstance(m, Mapping) for m in item):
            raise InputError(
                f"item {index} is neither a string, chat messages nor a row: {type(item).__name__}",
                key=prompt_key,
            )
        if not getattr(tokenizer, "chat_template", None):
            raise InputError(
                f"item {index} is chat messages but the model's tokenizer has no chat template"
            )
        texts.append(
            tokenizer.apply_chat_template(list(item), tokenize=False, add_generation_prompt=True)
        )
    return texts


# --------------------------------------------------------------------------- the model


def decoder_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The model's list of decoder blocks, found by shape so any architecture works: the
    `ModuleList` whose length is the config's layer count (`model.layers` of Llama / Qwen,
    `transformer.h` of GPT-2, ...)."""
    count = num_layers(model)
    found = [
        (name.rpartition(".")[2] not in ("layers", "h", "blocks", "layer"), module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.ModuleList) and len(module) == count
    ]
    if found:  # a conventional name first, then the first such list
        return min(found, key=lambda pair: pair[0])[1]
    raise InputError(
        f"found no list of {count} decoder blocks in {type(model).__name__}", key="layer"
    )


def num_layers(model: torch.nn.Module) -> int:
    config = model.config
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(text_config.num_hidden_layers)


def middle_layer(model_dir: str | Path) -> int:
    """The middle decoder block of the model in `model_dir` (n_layers // 2, SAERL's choice),
    read from its config without loading the weights."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(model_dir))
    return int(config.get_text_config().num_hidden_layers) // 2


def resolve_layer(layer: int, count: int) -> int:
    """`layer` as a 0-based block index; out of range is an InputError naming both."""
    if not -count <= layer < count:
        raise InputError(
            f"layer {layer} is out of range: the model has {count} layers "
            f"(0..{count - 1}, or -{count}..-1 from the end)",
            key="layer",
        )
    return layer % count


def load_causal_lm(model_dir: str | Path, device: str | None = None, dtype: Any = "auto"):
    """(model, tokenizer) in eval mode on `device` (default: CUDA when present)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = require_model_dir(model_dir, key="model")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(source)
    return model, tokenizer


# --------------------------------------------------------------------------- pooling


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """[batch, seq, d] hidden states, [batch, seq] attention mask -> [batch, d] in float32,
    over the real (mask 1) tokens only, wherever the padding is."""
    hidden = hidden.float()
    real = mask.bool()
    if pooling == "mean":
        weights = real.unsqueeze(-1).float()
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
    if pooling == "last":
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
        last = torch.where(real, positions, -1).max(dim=1).values
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    if pooling == "max":
        return hidden.masked_fill(~real.unsqueeze(-1), float("-inf")).max(dim=1).values
    raise InputError(f"unknown pooling {pooling!r}; choose one of {list(POOLINGS)}", key="pooling")


def pooled_from_model(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    layer: int,
    pooling: str = "mean",
    batch_size: int = 32,
    max_length: int | None = None,
    padding_side: str = "right",
    progress: bool | None = None,
) -> np.ndarray:
    """[len(texts), d] float32 pooled activations of an already loaded model (see the module
    docstring for the layer and the pooling). Texts are batched by length, so little padding
    is computed; the result is in the order of `texts`."""
    if pooling not in POOLINGS:
        raise InputError(
            f"unknown pooling {pooling!r}; choose one of {list(POOLINGS)}", key="pooling"
        )
    if padding_side not in ("left", "right"):
        raise InputError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}", key="batch_size")
    block = decoder_blocks(model)[resolve_layer(layer, num_layers(model))]
    if not texts:
        return np.zeros((0, _width(model)), dtype=np.float32)
    if tokenizer.pad_token_id is None:  # GPT-2-style tokenizers: any id works, it is masked
        tokenizer.pad_token = tokenizer.eos_token
    device = next(model.parameters()).device
    takes_positions = "position_ids" in inspect.signature(model.forward).parameters
    encoded = [_encode(tokenizer, text, max_length) for text in texts]
    if empty := [i for i, ids in enumerate(encoded) if not ids]:
        raise InputError(f"item {empty[0]} encodes to no tokens")
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        captured.append(output[0] if isinstance(output, tuple) else output)
        raise _StopForward

    out = np.zeros((len(texts), _width(model)), dtype=np.float32)
    show = len(batches) >= 20 if progress is None else progress
    handle = block.register_forward_hook(hook)
    try:
        from tqdm.auto import tqdm

        for batch in tqdm(batches, desc=f"activations (layer {layer})", disable=not show):
            inputs = tokenizer.pad(
                {"input_ids": [encoded[i] for i in batch]},
                padding=True,
                padding_side=padding_side,
                return_tensors="pt",
            ).to(device)
            kwargs = dict(inputs)
            if takes_positions:  # left padding: real tokens still count from position 0
                kwargs["position_ids"] = (inputs["attention_mask"].cumsum(-1) - 1).clamp(min=0)
            captured.clear()
            with torch.inference_mode(), contextlib.suppress(_StopForward):
                model(**kwargs, use_cache=False)
            if not captured:
                raise RuntimeError(f"decoder block {layer} did not run in the forward")
            pooled = pool(captured[0], inputs["attention_mask"], pooling)
            out[batch] = pooled.cpu().numpy()
    finally:
        handle.remove()
    return out


def _encode(tokenizer: Any, text: str, max_length: int | None) -> list[int]:
    """Token ids of `text` with the tokenizer's special tokens (a Llama's BOS), unless the
    text already begins with its BOS, as a rendered chat template does."""
    bos = getattr(tokenizer, "bos_token", None)
    special = not (bos and text.startswith(bos))
    limit = {"truncation": True, "max_length": max_length} if max_length is not None else {}
    return tokenizer(text, add_special_tokens=special, **limit)["input_ids"]


def _width(model: torch.nn.Module) -> int:
    config = model.config
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(text_config.hidden_size)


# --------------------------------------------------------------------------- cache


_FINGERPRINTS: dict[tuple, str] = {}
"""Fingerprints hashed in this process, by the files' (name, size, mtime): a real checkpoint
is gigabytes, read once per process rather than once per call."""


def model_fingerprint(model_dir: str | Path) -> str:
    """sha256 of every file of a model directory (names and bytes). For a Hub name that is
    not a local directory, the name itself (its files live in the Hub cache)."""
    root = Path(model_dir).expanduser()
    if not root.is_dir():
        return hashlib.sha256(str(model_dir).encode()).hexdigest()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    stamp = (
        str(root.resolve()),
        *((p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files),
    )
    if stamp in _FINGERPRINTS:
        return _FINGERPRINTS[stamp]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
    _FINGERPRINTS[stamp] = digest.hexdigest()
    return _FINGERPRINTS[stamp]


def cache_key(
    fingerprint: str,
    texts: Sequence[str],
    layer: int,
    pooling: str,
    dtype: str,
    max_length: int | None,
) -> str:
    """The cache key of one request; the padding side and the batch size are left out, since
    the result does not depend on them."""
    digest = hashlib.sha256(
        json.dumps(
            [CACHE_VERSION, fingerprint, layer, pooling, dtype, max_length], sort_keys=True
        ).encode()
    )
    for text in texts:
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()[:32]


def pooled_activations(
    model_dir: str | Path,
    texts_or_rows: Sequence[Any],
    layer: int,
    pooling: str = "mean",
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
    *,
    prompt_key: str = "prompt",
    max_length: int | None = None,
    device: str | None = None,
    dtype: Any = "auto",
    padding_side: str = "right",
    progress: bool | None = None,
) -> np.ndarray:
    """[n, d] float32 pooled activations of the causal LM in `model_dir` at decoder block
    `layer` for each string, chat conversation or row (module docstring). With `cache_dir`,
    a rerun with the same model files, layer, pooling, dtype and texts reads the cached array
    and loads no model."""
    if pooling not in POOLINGS:
        raise InputError(
            f"unknown pooling {pooling!r}; choose one of {list(POOLINGS)}", key="pooling"
        )
    require_model_dir(model_dir, key="model")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    texts = render_texts(tokenizer, texts_or_rows, prompt_key)
    target = None
    if cache_dir is not None:
        key = cache_key(model_fingerprint(model_dir), texts, layer, pooling, str(dtype), max_length)
        target = Path(cache_dir) / f"activations-{key}.npy"
        if target.is_file():
            return np.load(target)
    model, _ = load_causal_lm(model_dir, device=device, dtype=dtype)
    matrix = pooled_from_model(
        model, tokenizer, texts, layer, pooling, batch_size, max_length, padding_side, progress
    )
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.save(buffer, matrix)
        write_bytes(target, buffer.getvalue())
        meta = {"model": str(model_dir), "layer": layer, "pooling": pooling, "n": len(texts)}
        write_text(target.with_suffix(".json"), json.dumps(meta, indent=1) + "\n")
    return matrix
