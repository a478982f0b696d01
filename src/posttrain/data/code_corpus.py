"""A language-modelling corpus that needs no download: Python sources plus long-range recall.

Why: training a DeepSeek Sparse Attention model (DSA, DeepSeek-V3.2, arXiv:2512.02556) from
scratch on a CPU, and then sharing its indexers across layers with IndexCache (THUDM, 2026),
needs text with two properties. It must be real enough that a tiny LM learns something, and it
must reward attending *far back*, or a sparse top-k selection is never tested against anything
a local window would not also find. The running interpreter ships the first: the Python
standard library's ``.py`` files (``stdlib_sources``). The second is generated
(``recall_sequences``): a block of ``key = "value"`` assignments, a long filler of code, then
the same assignments again in another order, whose values can only be predicted by looking back.

``build_lm_corpus`` mixes the two, splits train and held-out *by file* (a file's text never
appears in both, and the filler of held-out recall sequences comes from held-out files only).
``token_blocks`` packs texts into fixed-length token blocks for training; ``aligned_blocks``
starts a block at every recall sequence, because one cut in two teaches nothing about recall.
"""

from __future__ import annotations

import functools
import keyword
import math
import os
import random
import string
import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

# Directories of the standard library that hold test suites or third-party code.
_SKIP_DIRS = frozenset(
    {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
)


@dataclass(frozen=True)
class SourceFile:
    """One standard-library file: its path relative to the stdlib root, and its text."""

    name: str
    text: str


def stdlib_root() -> Path:
    """The running interpreter's standard-library directory."""
    return Path(sysconfig.get_paths()["stdlib"])


@functools.lru_cache(maxsize=4)
def _candidate_files(root: Path) -> tuple[Path, ...]:
    """Non-empty ``.py`` files under ``root``, sorted, skipping tests and site-packages."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS]
        for name in filenames:
            if not name.endswith(".py") or name.startswith("test_"):
                continue
            path = Path(dirpath) / name
            try:
                if not path.is_file() or path.stat().st_size == 0:
                    continue
            except OSError:
                continue
            files.append(path)
    return tuple(sorted(files, key=lambda p: p.relative_to(root).as_posix()))


def _truncate_at_line(text: str, max_chars: int) -> str:
    """The first ``max_chars`` characters, cut back to the last complete line if there is one."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    cut = head.rfind("\n")
    return head[: cut + 1] if cut > 0 else head


def stdlib_sources(
    max_files: int = 200, max_chars: int = 20_000, seed: int = 0
) -> list[SourceFile]:
    """Up to ``max_files`` standard-library ``.py`` files read from the running interpreter.

    Deterministic: the candidate files (skipping test directories, ``test_*.py`` and
    site-packages) are sorted by relative path, a ``seed``-ed sample of ``max_files`` is
    drawn, and the sample is returned sorted by name. Each text is cut to ``max_chars`` at a
    line boundary; files that are not UTF-8 or are blank are skipped, so fewer than
    ``max_files`` may come back.
    """
    if max_files < 1:
        raise ValueError(f"max_files must be >= 1, got {max_files}")
    if max_chars < 1:
        raise ValueError(f"max_chars must be >= 1, got {max_chars}")
    root = stdlib_root()
    candidates = _candidate_files(root)
    if not candidates:
        raise RuntimeError(f"no Python sources found under {root}")
    chosen = random.Random(seed).sample(list(candidates), min(max_files, len(candidates)))
    out: list[SourceFile] = []
    for path in sorted(chosen, key=lambda p: p.relative_to(root).as_posix()):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        text = _truncate_at_line(text, max_chars)
        if text.strip():
            out.append(SourceFile(path.relative_to(root).as_posix(), text))
    return out


# --- synthetic long-range recall ------------------------------------------------------------


@dataclass
class RecallItem:
    """A recall sequence and where its answers are.

    ``answer_spans[i]`` is the ``(start, end)`` character range of the i-th queried value in
    ``text``; ``key_spans[i]`` is where that key was assigned, always before the answer.
    ``keys``/``values`` are in query order.
    """

    text: str
    answer_spans: list[tuple[int, int]]
    key_spans: list[tuple[int, int]]
    keys: list[str]
    values: list[str]


_LOWER = string.ascii_lowercase
_VALUE_CHARS = string.ascii_lowercase + string.digits


def _random_key(rng: random.Random, taken: set[str]) -> str:
    while True:
        key = rng.choice(_LOWER) + "".join(rng.choices(_LOWER + "_", k=rng.randint(2, 4)))
        if key not in taken and not keyword.iskeyword(key):
            taken.add(key)
            return key


def _code_like_line(rng: random.Random) -> str:
    """A random line that looks like Python, for filler when no sources are given."""
    name = rng.choice(["x", "y", "total", "item", "count", "data", "node", "buf", "value"])
    other = rng.choice(["a", "b", "size", "step", "i", "j", "offset", "limit"])
    indent = "    " * rng.randint(0, 2)
    shapes = [
        f"{name} = {other} + {rng.randint(0, 99)}",
        f"if {name} > {other}:",
        f"for {other} in range({rng.randint(1, 64)}):",
        f"{name}.append({other})",
        f"return {name} * {other}",
        f"def {name}_{other}(self, {other}):",
        f"{name} = [{other} for {other} in {name}]",
        f"# {name} and {other}",
    ]
    return indent + rng.choice(shapes)


def _filler(rng: random.Random, n_chars: int, sources: Sequence[str]) -> str:
    """About ``n_chars`` of code: a random window of the sources, else code-like lines."""
    if n_chars <= 0:
        return ""
    usable = [s for s in sources if s.strip()]
    if usable:
        parts: list[str] = []
        have = 0
        while have < n_chars:
            src = rng.choice(usable)
            lines = src.splitlines(keepends=True)
            start = rng.randrange(len(lines))
            for line in lines[start:]:
                parts.append(line)
                have += len(line)
                if have >= n_chars:
                    break
        text = "".join(parts)
    else:
        lines = []
        have = 0
        while have < n_chars:
            line = _code_like_line(rng) + "\n"
            lines.append(line)
            have += len(line)
        text = "".join(lines)
    text = _truncate_at_line(text, n_chars)
    return text if text.endswith("\n") else text + "\n"


def recall_sequences(
    n: int,
    length_chars: int = 2000,
    seed: int = 0,
    n_pairs: int = 6,
    n_queries: int | None = None,
    value_chars: int = 4,
    in_order: bool = True,
    filler_sources: Sequence[str] = (),
) -> list[RecallItem]:
    """``n`` synthetic sequences whose answers can only be found far back in the text.

    Each one is, in order: ``n_pairs`` lines ``key = "value"`` (random 3-5 letter keys, random
    values of ``value_chars`` letters and digits), a filler of code (a random window of
    ``filler_sources``, else random code-like lines) sized so the whole text is about
    ``length_chars`` long, and ``n_queries`` (default ``n_pairs``) of the same lines again, in
    the same order (``in_order``) or shuffled. The value in a repeated line is the answer;
    ``RecallItem.answer_spans`` gives its character offsets so that an evaluation can score
    recall on those characters alone.

    Why the repeat is word for word: a value's tokens then follow the same tokens as the first
    time, so a copying (induction) circuit can recall them by looking back past the filler. A
    query in another format (``key? value``) tokenizes the value differently; the GLM-5 micro
    model trained for 400-750 steps stayed at chance on it (1-4% of value tokens), and on
    shuffled repeats too (2-3%). In order, every line but the first is a continuation of the
    passage it copies.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be >= 1, got {n_pairs}")
    if value_chars < 1:
        raise ValueError(f"value_chars must be >= 1, got {value_chars}")
    n_queries = n_pairs if n_queries is None else n_queries
    if not 1 <= n_queries <= n_pairs:
        raise ValueError(f"n_queries must be in [1, {n_pairs}], got {n_queries}")
    rng = random.Random(seed)
    items: list[RecallItem] = []
    for _ in range(n):
        taken: set[str] = set()
        keys = [_random_key(rng, taken) for _ in range(n_pairs)]
        values = ["".join(rng.choices(_VALUE_CHARS, k=value_chars)) for _ in range(n_pairs)]
        text = "# remember these\n"
        key_at: dict[str, tuple[int, int]] = {}
        for key, value in zip(keys, values, strict=True):
            key_at[key] = (len(text), len(text) + len(key))
            text += f'{key} = "{value}"\n'
        queried = rng.sample(range(n_pairs), n_queries)
        if in_order:
            queried.sort()
        query_chars = len("# recall\n") + sum(len(keys[i]) + len(values[i]) + 6 for i in queried)
        text += _filler(rng, length_chars - len(text) - query_chars, filler_sources)
        text += "# recall\n"
        spans: list[tuple[int, int]] = []
        for i in queried:
            text += f'{keys[i]} = "'
            spans.append((len(text), len(text) + len(values[i])))
            text += values[i] + '"\n'
        items.append(
            RecallItem(
                text=text,
                answer_spans=spans,
                key_spans=[key_at[keys[i]] for i in queried],
                keys=[keys[i] for i in queried],
                values=[values[i] for i in queried],
            )
        )
    return items


# --- the mixed corpus -----------------------------------------------------------------------


@dataclass
class CodeCorpusConfig:
    """How ``build_lm_corpus`` draws and mixes its text.

    ``recall_mix`` is the fraction of the *training characters* that are recall sequences
    (the rest are standard-library files). Recall sequences are sized to
    ``recall_fill * seq_tokens * chars_per_token`` characters, so with a rough
    characters-per-token estimate for the tokenizer most of one fits in a training block.
    """

    n_files: int = 200
    max_chars: int = 20_000
    heldout_fraction: float = 0.1
    recall_mix: float = 0.25
    seq_tokens: int = 256
    chars_per_token: float = 2.5
    recall_fill: float = 0.6
    """Recall texts tokenize denser than code (a value is about a token per character): at
    0.6 of a block by the code estimate they fit their block (``aligned_blocks`` skips the
    rest)."""
    n_pairs: int = 6
    value_chars: int = 4
    queries_in_order: bool = True
    n_recall_heldout: int = 64
    seed: int = 0

    @property
    def recall_chars(self) -> int:
        return max(64, int(self.recall_fill * self.seq_tokens * self.chars_per_token))


def build_lm_corpus(config: CodeCorpusConfig) -> dict[str, Any]:
    """Train/held-out texts from the standard library mixed with recall sequences.

    Returns a dict with ``"train"`` (list of texts: training files and recall sequences,
    shuffled together; ``"train_code"`` and ``"recall_train"`` hold the two kinds apart),
    ``"heldout"`` (texts of the held-out files), ``"recall_heldout"`` (``RecallItem``s whose
    filler comes from held-out files), and the file names of each side (``"train_files"``,
    ``"heldout_files"``). The split is by file: a file is on one side
    only. Everything is determined by ``config.seed``.
    """
    if not 0.0 < config.heldout_fraction < 1.0:
        raise ValueError(f"heldout_fraction must be in (0, 1), got {config.heldout_fraction}")
    if not 0.0 <= config.recall_mix < 1.0:
        raise ValueError(f"recall_mix must be in [0, 1), got {config.recall_mix}")
    files = stdlib_sources(config.n_files, config.max_chars, config.seed)
    if len(files) < 2:
        raise ValueError("need at least two source files to split train and held-out")
    order = list(range(len(files)))
    random.Random(config.seed + 1).shuffle(order)
    n_heldout = min(len(files) - 1, max(1, round(config.heldout_fraction * len(files))))
    heldout_files = sorted((files[i] for i in order[:n_heldout]), key=lambda f: f.name)
    train_files = sorted((files[i] for i in order[n_heldout:]), key=lambda f: f.name)
    train_texts = [f.text for f in train_files]
    heldout_texts = [f.text for f in heldout_files]

    train_chars = sum(len(t) for t in train_texts)
    n_recall = 0
    if config.recall_mix > 0:
        wanted = config.recall_mix / (1.0 - config.recall_mix) * train_chars
        n_recall = max(1, math.ceil(wanted / config.recall_chars))
    recall_train = recall_sequences(
        n_recall,
        config.recall_chars,
        seed=config.seed + 2,
        n_pairs=config.n_pairs,
        value_chars=config.value_chars,
        in_order=config.queries_in_order,
        filler_sources=train_texts,
    )
    recall_heldout = recall_sequences(
        config.n_recall_heldout,
        config.recall_chars,
        seed=config.seed + 3,
        n_pairs=config.n_pairs,
        value_chars=config.value_chars,
        in_order=config.queries_in_order,
        filler_sources=heldout_texts,
    )
    train = train_texts + [item.text for item in recall_train]
    random.Random(config.seed + 4).shuffle(train)
    return {
        "train": train,
        "train_code": train_texts,
        "recall_train": [item.text for item in recall_train],
        "heldout": heldout_texts,
        "recall_heldout": recall_heldout,
        "train_files": [f.name for f in train_files],
        "heldout_files": [f.name for f in heldout_files],
    }


# --- tokens ---------------------------------------------------------------------------------


def token_blocks(tokenizer: Any, texts: Sequence[str], block_size: int) -> Tensor:
    """Concatenate the token ids of ``texts`` (EOS after each) and cut (N, block_size) blocks.

    The tail that does not fill a whole block is dropped. Raises ValueError when the texts
    do not fill even one block.
    """
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2, got {block_size}")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos_token_id")
    ids: list[int] = []
    for row in _encode(tokenizer, texts):
        ids.extend(row)
        ids.append(eos)
    n_blocks = len(ids) // block_size
    if n_blocks == 0:
        raise ValueError(f"{len(ids)} tokens do not fill one block of {block_size}")
    return torch.tensor(ids[: n_blocks * block_size], dtype=torch.long).view(n_blocks, block_size)


def aligned_blocks(
    tokenizer: Any, texts: Sequence[str], block_size: int, fill: Sequence[int]
) -> tuple[Tensor, int]:
    """One (block_size,) block per text that fits, each starting with its text and EOS.

    The rest of each block is taken from the token stream ``fill`` (in order, cycled; e.g.
    the code blocks of ``token_blocks``, flattened, so nothing is tokenized twice), so no
    position is padding. Returns the blocks and how many texts were skipped because they do
    not fit in a block with their EOS; raises ValueError when none fits.
    """
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2, got {block_size}")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no eos_token_id")
    fill = list(fill)
    if not fill:
        raise ValueError("fill holds no tokens")
    blocks: list[list[int]] = []
    skipped = 0
    at = 0
    for row in _encode(tokenizer, texts):
        ids = [*row, eos]
        if len(ids) > block_size:
            skipped += 1
            continue
        while len(ids) < block_size:
            take = fill[at : at + block_size - len(ids)]
            ids.extend(take)
            at = (at + len(take)) % len(fill)
        blocks.append(ids)
    if not blocks:
        raise ValueError(
            f"none of {len(texts)} texts fits a block of {block_size} tokens "
            "(shorten them: corpus.recall_fill)"
        )
    return torch.tensor(blocks, dtype=torch.long), skipped


def _encode(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    if not texts:
        return []
    return tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]


__all__ = [
    "CodeCorpusConfig",
    "aligned_blocks",
    "RecallItem",
    "SourceFile",
    "build_lm_corpus",
    "recall_sequences",
    "stdlib_root",
    "stdlib_sources",
    "token_blocks",
]
