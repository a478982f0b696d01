"""IFEval (Zhou et al. 2023, arXiv:2311.07911) checked by its official implementation.

The checking code is Google's, as lm-evaluation-harness packages it (`lm_eval.tasks.ifeval`:
the 25 instruction classes of `instructions_registry.INSTRUCTION_DICT` and
`utils.test_instruction_following_strict` / `_loose`). Nothing here re-implements a check;
this module loads that code and hands it rows in IFEval's own format:

    {"key": 1000, "prompt": "...", "instruction_id_list": ["punctuation:no_comma", ...],
     "kwargs": [{}, ...]}

- `official()` imports it on first use (it takes seconds and brings `langdetect` and `nltk`),
  after pointing nltk at the Punkt sentence model (`punkt_tab`) that sentence counting needs,
  and seeds langdetect so that the language checks give the same verdict on every run.
- `follow(row, response, loose=...)` is the per-instruction verdicts of one row.
- The `ifeval` reward scores IFEval-format rows with TRL's reward signature.

Punkt data: wherever nltk finds `tokenizers/punkt_tab` (`python -m nltk.downloader punkt_tab`,
or lm-eval's own download on import where there is internet), else the byte-identical copy of
NLTK's `punkt_tab.zip` that the `llama-index-core` wheel ships (the `punkt` extra, part of
`dev`, installs it for machines without internet). Without either, checking
`length_constraints:number_sentences` raises an error saying how to install it; every other
instruction needs no data.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from posttrain.rewards.builtin import Completion, completion_text
from posttrain.rewards.registry import register_reward

__all__ = [
    "PUNKT_INSTALL_HINT",
    "check_row",
    "count_sentences",
    "count_words",
    "follow",
    "ifeval_ids",
    "ifeval_reward",
    "official",
]

PUNKT_RESOURCE = "tokenizers/punkt_tab/english/"
PUNKT_INSTALL_HINT = (
    "IFEval counts sentences with NLTK's Punkt model, which is not installed: run "
    "`python -m nltk.downloader punkt_tab` (needs internet), or, offline, "
    "`pip install llama-index-core` (its wheel ships NLTK's punkt_tab data)"
)
# The instructions whose official check loads the Punkt model.
_NEEDS_PUNKT = frozenset({"length_constraints:number_sentences"})


def _bundled_punkt_root() -> Path | None:
    """The nltk data folder inside an installed llama-index-core, if it holds punkt_tab.
    Found without importing llama_index (a large package)."""
    try:
        spec = importlib.util.find_spec("llama_index.core")
    except ModuleNotFoundError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "_static" / "nltk_cache"
    return root if (root / PUNKT_RESOURCE).is_dir() else None


def _point_nltk_at_punkt() -> None:
    """Make `punkt_tab` findable by nltk when only llama-index-core's copy is installed."""
    import nltk

    try:
        nltk.data.find(PUNKT_RESOURCE)
        return
    except LookupError:
        pass
    root = _bundled_punkt_root()
    if root is not None:
        nltk.data.path.append(str(root))


@functools.cache
def official() -> ModuleType:
    """lm-evaluation-harness's `lm_eval.tasks.ifeval.utils` (whose `instructions_registry`
    holds the checkers), imported once."""
    # Before the import, which tries to download punkt_tab when nltk cannot find it. Without
    # it only sentence counting fails, and `follow` / `count_sentences` say how to install it.
    _point_nltk_at_punkt()
    try:
        import langdetect
        from lm_eval.tasks.ifeval import utils
    except ImportError as exc:
        raise ImportError(
            f"IFEval checking needs lm-evaluation-harness's IFEval ({exc}): "
            "pip install 'lm-eval[ifeval]>=0.4.13'"
        ) from exc
    # langdetect draws random samples; a fixed seed makes each detection deterministic.
    langdetect.DetectorFactory.seed = 0
    return utils


def ifeval_ids() -> list[str]:
    """The official instruction ids, sorted (25 in IFEval)."""
    return sorted(official().instructions_registry.INSTRUCTION_DICT)


def count_words(text: str) -> int:
    """Words as IFEval counts them (runs of `\\w`)."""
    official()
    from lm_eval.tasks.ifeval import instructions_util

    return instructions_util.count_words(text)


def count_sentences(text: str) -> int:
    """Sentences as IFEval counts them (NLTK Punkt, English)."""
    official()
    from lm_eval.tasks.ifeval import instructions_util

    try:
        return instructions_util.count_sentences(text)
    except LookupError as exc:
        raise LookupError(PUNKT_INSTALL_HINT) from exc


def check_row(row: Mapping[str, Any], where: str = "") -> tuple[list[str], list[dict]]:
    """The validated `instruction_id_list` and `kwargs` of an IFEval-format row.

    Errors (ValueErrors, prefixed with `where` when given) name the id and the argument: an
    unknown id, kwargs of another length, or an argument the instruction needs left out (the
    official code would draw a random value for it instead of checking what was asked)."""

    def bad(detail: str) -> ValueError:
        return ValueError(f"{where}: {detail}" if where else detail)

    for column in ("instruction_id_list", "kwargs"):
        if column not in row:
            raise bad(f"no {column!r} (an IFEval row has instruction_id_list and kwargs)")
    value = row["instruction_id_list"]
    if isinstance(value, str | Mapping) or not isinstance(value, Iterable):
        raise bad(f"'instruction_id_list' must be a list of instruction ids, got {value!r:.80}")
    ids = list(value)  # a parquet cell may hold a numpy array
    kwargs = row["kwargs"]
    if isinstance(kwargs, str | Mapping) or not isinstance(kwargs, Iterable):
        raise bad(f"'kwargs' must be a list of mappings, one per instruction, got {kwargs!r:.80}")
    kwargs = list(kwargs)
    if len(kwargs) != len(ids):
        raise bad(
            f"{len(ids)} instruction ids but {len(kwargs)} kwargs; IFEval gives one kwargs "
            "mapping per instruction"
        )
    registry = official().instructions_registry.INSTRUCTION_DICT
    for instruction_id, given in zip(ids, kwargs, strict=True):
        if instruction_id not in registry:
            raise bad(
                f"unknown IFEval instruction {instruction_id!r}; known: "
                f"{', '.join(sorted(registry))}"
            )
        if not isinstance(given, Mapping):
            raise bad(f"the kwargs of {instruction_id!r} must be a mapping, got {given!r:.80}")
        needed = set(registry[instruction_id](instruction_id).get_instruction_args_keys())
        # The official code drops empty values (`if v`) and draws the missing ones at random.
        present = {k for k, v in given.items() if v}
        missing = sorted(needed - present - {"prompt"})
        if missing:
            raise bad(f"{instruction_id!r} needs {', '.join(missing)} in its kwargs")
    return ids, [dict(given) for given in kwargs]


def follow(row: Mapping[str, Any], response: str, *, loose: bool = False) -> list[bool]:
    """Whether `response` follows each instruction of an IFEval-format row, by the official
    strict test, or its loose one (the best of eight variants of the response: with its first
    and/or last line and/or every `*` removed)."""
    ids, kwargs = check_row(row)
    utils = official()
    example = utils.InputExample(
        key=row.get("key", 0),
        instruction_id_list=ids,
        prompt=str(row.get("prompt") or ""),
        kwargs=kwargs,
    )
    test = (
        utils.test_instruction_following_loose if loose else utils.test_instruction_following_strict
    )
    try:
        return list(test(example, response).follow_instruction_list)
    except LookupError as exc:
        if _NEEDS_PUNKT & set(ids):
            raise LookupError(PUNKT_INSTALL_HINT) from exc
        raise


def _prompt_text(prompt: Any) -> str:
    """A TRL prompt as text: the string, or the last user message of a conversation."""
    if isinstance(prompt, str):
        return prompt
    for message in reversed(list(prompt or [])):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return completion_text([{**message, "role": "assistant"}])
    return ""


@register_reward("ifeval")
def ifeval_reward(
    prompts: list[Any],
    completions: list[Completion],
    completion_ids: list[Any] | None = None,
    **columns: Any,
) -> list[float | None]:
    """IFEval's strict prompt-level verdict for rows in its format (`instruction_id_list` and
    `kwargs` columns): 1.0 when every instruction is followed, else 0.0; None for a row
    without instructions."""
    for column in ("instruction_id_list", "kwargs"):
        if column not in columns:
            raise ValueError(
                f"reward 'ifeval' needs the IFEval columns 'instruction_id_list' and 'kwargs'; "
                f"got columns {sorted(columns)}"
            )
    ids, kwargs = list(columns["instruction_id_list"]), list(columns["kwargs"])
    if not len(ids) == len(kwargs) == len(completions) == len(prompts):
        raise ValueError(f"reward 'ifeval': columns of another length than {len(completions)}")
    scores: list[float | None] = []
    for i, completion in enumerate(completions):
        row = {
            "prompt": _prompt_text(prompts[i]),
            "instruction_id_list": ids[i],
            "kwargs": kwargs[i],
        }
        if ids[i] is None or len(ids[i]) == 0:
            scores.append(None)
            continue
        scores.append(float(all(follow(row, completion_text(completion)))))
    return scores
