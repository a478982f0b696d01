"""Verifiable instructions and rule verifiers: deciding by code whether a response complies.

- IFEval instructions (Zhou et al. 2023, arXiv:2311.07911), checked by the official
  implementation (`posttrain.rewards.ifeval`, lm-evaluation-harness's packaging of Google's
  code): a spec `{"id": ID, **kwargs}` with one of IFEval's 25 ids and its official kwargs is
  checked by `check_instruction`, and several are combined by `instruction_score` (also
  registered as the `instruction_following` reward).
- Rule verifiers for rubric items (`verify`, validated by `check_verifier`): a regex, keywords,
  or an IFEval instruction, so an item a rule can decide is never sent to an LLM judge.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from posttrain.rewards.builtin import Completion, completion_text
from posttrain.rewards.ifeval import check_row, follow, ifeval_ids
from posttrain.rewards.registry import register_reward

__all__ = [
    "check_instruction",
    "check_verifier",
    "instruction_following_reward",
    "instruction_ids",
    "instruction_score",
    "verify",
]


def _has_phrase(text: str, phrase: str) -> bool:
    """Case-insensitive whole-word match of a word or phrase (inner whitespace flexible)."""
    words = phrase.split()
    if not words:
        return False
    pattern = r"\s+".join(re.escape(w) for w in words)
    return re.search(rf"(?<!\w){pattern}(?!\w)", text, re.IGNORECASE) is not None


def _as_strings(value: Any, name: str) -> list[str]:
    """A keyword argument given as one string or a list of them (a parquet cell may hold a
    numpy array)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise ValueError(f"{name} must be a list, got {type(value).__name__}")
    values = list(value)
    if not values or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{name} must be a string or a non-empty list of strings")
    return values


# --- IFEval instructions ------------------------------------------------------------------------


def instruction_ids() -> list[str]:
    """IFEval's instruction ids, sorted."""
    return ifeval_ids()


def _instruction(spec: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The id and kwargs of `{"id": ..., **kwargs}` or `{"id": ..., "kwargs": {...}}`,
    validated against the official instruction (its id and the arguments it needs)."""
    if not isinstance(spec, Mapping) or "id" not in spec:
        raise ValueError(f"an instruction must be a mapping with an 'id', got {spec!r}")
    if isinstance(spec.get("kwargs"), Mapping):
        kwargs = dict(spec["kwargs"])
    else:
        kwargs = {k: v for k, v in spec.items() if k not in ("id", "type")}
    _row(spec["id"], kwargs)
    return spec["id"], kwargs


def _row(instruction_id: Any, kwargs: dict[str, Any], prompt: str = "") -> dict[str, Any]:
    """One instruction as an IFEval row, validated (`posttrain.rewards.ifeval.check_row`)."""
    row = {"prompt": prompt, "instruction_id_list": [instruction_id], "kwargs": [kwargs]}
    check_row(row, where=f"instruction {instruction_id!r}")
    return row


def check_instruction(
    response: str, spec: Mapping[str, Any], *, prompt: str = "", loose: bool = False
) -> bool:
    """Whether `response` follows one IFEval instruction, by the official strict test (or the
    loose one); bad arguments are a ValueError naming the instruction."""
    instruction_id, kwargs = _instruction(spec)
    try:
        return follow(_row(instruction_id, kwargs, prompt), response, loose=loose)[0]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"instruction {instruction_id!r}: bad arguments {kwargs}: {exc}") from None


def instruction_score(
    response: str,
    instructions: Sequence[Mapping[str, Any]],
    combine: Literal["min", "sum", "average"] | str = "min",
) -> float:
    """IFEval score over several instructions: "sum" counts those followed, "min" is 1
    only when all are (IFEval's strict prompt-level accuracy), "average" is the fraction.
    No instructions: vacuously followed (min/average 1.0, sum 0.0)."""
    if combine not in ("min", "sum", "average"):
        raise ValueError(f"unknown combine {combine!r}; expected 'min', 'sum' or 'average'")
    passed = [check_instruction(response, spec) for spec in instructions]
    if combine == "sum":
        return float(sum(passed))
    if not passed:
        return 1.0
    if combine == "min":
        return float(all(passed))
    return sum(passed) / len(passed)


# --- rule verifiers for rubric items ------------------------------------------------------------

_VERIFIER_TYPES = ("regex", "keywords", "instruction")


def check_verifier(verifier: Mapping[str, Any]) -> None:
    """Raise a ValueError saying what is wrong with a rule verifier (see `verify`)."""
    kind = verifier.get("type")
    if kind == "regex":
        pattern = verifier.get("pattern")
        if not isinstance(pattern, str):
            raise ValueError("a regex verifier needs a string 'pattern'")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"bad regex {pattern!r}: {exc}") from None
        if verifier.get("present_if", "match") not in ("match", "no_match"):
            raise ValueError("'present_if' must be 'match' or 'no_match'")
    elif kind == "keywords":
        if not verifier.get("all") and not verifier.get("any"):
            raise ValueError("a keywords verifier needs a non-empty 'all' or 'any' list")
        for key in ("all", "any"):
            if verifier.get(key):
                _as_strings(verifier[key], key)
    elif kind == "instruction":
        _instruction(verifier)
    else:
        raise ValueError(f"unknown verifier type {kind!r}; expected one of {_VERIFIER_TYPES}")


def verify(verifier: Mapping[str, Any], response: str) -> bool:
    """Decide a rubric item by code (True = PRESENT):

    - `{"type": "regex", "pattern": P, "present_if": "match" | "no_match", "ignore_case": bool}`;
    - `{"type": "keywords", "all": [...], "any": [...]}`: case-insensitive whole-word matches,
      every word of `all` and at least one of `any` (either may be left out);
    - `{"type": "instruction", "id": ID, **kwargs}`: an IFEval instruction with its official
      kwargs (`check_instruction`).
    """
    check_verifier(verifier)
    kind = verifier["type"]
    if kind == "regex":
        flags = re.IGNORECASE if verifier.get("ignore_case") else 0
        found = re.search(verifier["pattern"], response, flags) is not None
        return found if verifier.get("present_if", "match") == "match" else not found
    if kind == "keywords":
        every = _as_strings(verifier["all"], "all") if verifier.get("all") else []
        some = _as_strings(verifier["any"], "any") if verifier.get("any") else []
        return all(_has_phrase(response, k) for k in every) and (
            not some or any(_has_phrase(response, k) for k in some)
        )
    return check_instruction(response, verifier)


# --- TRL reward ---------------------------------------------------------------------------------


@register_reward("instruction_following")
def instruction_following_reward(
    prompts: list[Any],
    completions: list[Completion],
    completion_ids: list[Any] | None = None,
    **columns: Any,
) -> list[float | None]:
    """IFEval instructions checked by the official code: each row's `instructions` (a list of
    `{"id", **kwargs}`), combined by its `instruction_combine` ("min" unless given: all must
    hold, as IFEval's strict accuracy); None for a row without instructions. Rows in IFEval's
    own format (`instruction_id_list`, `kwargs`) take the `ifeval` reward instead."""
    n = len(completions)
    if "instructions" not in columns:
        raise ValueError(
            "reward 'instruction_following' needs an 'instructions' column (a list of "
            f"{{'id': ..., **kwargs}} per row); got columns {sorted(columns)}"
        )
    instructions = list(columns["instructions"])
    combines = list(columns.get("instruction_combine") or ["min"] * n)
    if len(instructions) != n or len(combines) != n:
        raise ValueError(f"reward 'instruction_following': columns of another length than {n}")
    return [
        None
        if not row
        else instruction_score(completion_text(completion), row, combine=mode or "min")
        for completion, row, mode in zip(completions, instructions, combines, strict=True)
    ]
